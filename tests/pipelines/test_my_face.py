"""pipelines/my_face.sh, the README's walk from a published network to your own face, run end to end: a small
stand-in for the network `ffhq-1024` names (StyleGAN2-ADA's PyTorch ffhq.pkl: its format and layout, tiny widths,
64x64 so that fine styles exist) and two photos from examples/faces-frl, aligned with dlib's landmarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest
from conftest import FACES, REPO

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SCRIPT = REPO / "pipelines" / "my_face.sh"
PHOTOS = (FACES / "001_03.jpg", FACES / "002_03.jpg")
NAMES = ("001_03", "002_03")
TIMEOUT = 300  # generous: only reached when something is wrong


def my_face(tmp: Path, *photos: Path, **settings: str) -> subprocess.CompletedProcess:
    """Runs the script as a user would, with `sgan` on PATH being this checkout's."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sgan").write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m stylegan_cli "$@"\n')
    (bin_dir / "sgan").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SGAN_RUN"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(REPO), **settings)
    return subprocess.run(["bash", str(SCRIPT), *map(str, photos)], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def walked(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """(the run directory, the finished script) after the walk with a stand-in network and two projector steps."""
    tmp = tmp_path_factory.mktemp("my_face")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tests" / "nvidia"))
        import nvidia_files
    network = tmp / "ffhq.pkl"
    nvidia_files.write_stylegan2_pt(network, 64, channel_base=128, channel_max=16, z_dim=16, w_dim=16,
                                    mapping_layers=2)
    done = my_face(tmp, *PHOTOS, NETWORK=str(network), RUN="runs/me", STEPS="2")
    return tmp / "runs" / "me", done


def test_the_walk_imports_projects_mixes_and_reports(walked):
    run, done = walked
    assert done.returncode == 0, done.stderr
    assert (run / "checkpoints" / "ckpt-0000000.pt").is_file()
    project = json.loads((run / "project" / "project.json").read_text())
    assert [t["name"] for t in project["targets"]] == list(NAMES) and project["failed"] == []
    assert project["settings"]["landmarks"] == "dlib" and project["settings"]["steps"] == 2
    for name in NAMES:
        assert (run / "project" / f"{name}.png").is_file() and (run / "project" / f"{name}-target.png").is_file()
    # Each photo's coarse styles with the fine styles of seeds 1-6: a row per photo, a column per seed.
    mixes = sorted(p.name for p in (run / "mix").glob("*-seed*.png"))
    assert mixes == sorted(f"{name}-seed{s:04d}.png" for name in NAMES for s in range(1, 7))
    assert (run / "mix" / "grid.png").is_file()
    assert done.stderr.rstrip().splitlines()[-1].startswith("Done: open runs/me/report.html")


def test_the_report_shows_each_target_beside_its_projection_with_lpips_and_psnr(walked):
    run, _ = walked
    html = (run / "report.html").read_text()
    section = html[html.index('<section id="projections">'):]
    section = section[:section.index("</section>")]
    for target in json.loads((run / "project" / "project.json").read_text())["targets"]:
        name = target["name"]
        assert f'alt="project/{name}-target.png"' in section and f'alt="project/{name}.png"' in section
        assert escape(f"{name}: result, LPIPS {target['lpips']:.4f}, PSNR {target['psnr']:.2f} dB") in section
    assert 'alt="mix/grid.png"' in html


@pytest.mark.parametrize("photos, message", [
    ((), "my_face.sh: name at least one photo of a face: bash pipelines/my_face.sh PHOTO..."),
    ((FACES / "001_03.jpg", Path("missing.jpg")), "my_face.sh: there is no photo at missing.jpg."),
])
def test_no_photo_or_a_missing_one_is_one_sentence_before_anything_runs(tmp_path, photos, message):
    done = my_face(tmp_path, *photos, RUN="runs/me")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == message + "\n"
    assert not (tmp_path / "runs").exists()
