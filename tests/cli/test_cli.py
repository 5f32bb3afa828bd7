"""The command-line contract every stage shares (docs/design.md §2)."""

from __future__ import annotations

import json
import subprocess
import sys

import typer.main
from conftest import FACES, sgan

from stylegan_cli import __version__
from stylegan_cli.cli.app import _mount, app


def test_version_from_both_entry_points():
    assert sgan("--version").stdout.strip() == f"sgan {__version__}"
    console = subprocess.run(["sgan", "--version"], capture_output=True, text=True)
    assert console.returncode == 0 and console.stdout.strip() == f"sgan {__version__}"


def test_every_command_and_option_has_help_text():
    _mount()
    root = typer.main.get_command(app)

    def walk(command, path):
        assert command.help or command.short_help, f"{path} has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert getattr(param, "help", None), f"{path} {param.opts} has no help text"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "sgan")


def test_run_directory_defaults_to_sgan_run_then_the_current_directory(tmp_path):
    run = tmp_path / "from-env"
    result = sgan("prep", "images", "--src", FACES, "--resolution", 8, "--workers", 1, env={"SGAN_RUN": str(run)})
    assert result.returncode == 0, result.stderr
    assert (run / "data" / "dataset.lmdb").is_dir()
    here = tmp_path / "cwd"
    here.mkdir()
    result = sgan("prep", "images", "--src", FACES, "--resolution", 8, "--workers", 1, cwd=here)
    assert result.returncode == 0, result.stderr
    assert (here / "data" / "dataset.lmdb").is_dir() and (here / "history.jsonl").is_file()


def test_failures_are_recorded_in_history_too(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.jpg").write_text("no image here")
    result = sgan("prep", "images", "--src", src, "-r", tmp_path / "run", "--resolution", 8, "--workers", 1)
    assert result.returncode == 1
    rejects = tmp_path / "run/data/rejects.jsonl"
    assert result.stderr.strip().splitlines()[-1] == f"sgan: Every input was rejected; see {rejects}."
    line = json.loads((tmp_path / "run" / "history.jsonl").read_text().splitlines()[-1])
    assert line["exit_status"] == 1 and line["version"] == __version__
    assert line["start"] <= line["end"]


def test_a_run_path_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("")
    result = sgan("data", "info", "-r", tmp_path / "file")
    assert result.returncode == 2 and "is a file" in result.stderr


def test_python_dash_m_is_the_same_program():
    result = subprocess.run([sys.executable, "-m", "stylegan_cli", "prep", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "ffhq" in result.stdout and "images" in result.stdout
