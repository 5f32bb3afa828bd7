"""`sgan report`: one self-contained HTML page about a run, checked as text and as rendered by headless
Chromium (skipped, saying so, where no such browser is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from stylegan_cli.report.page import CSP
from stylegan_cli.report.svg import line_chart, nice_ticks
from tests.conftest import sgan, sgan_here

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background"}


@pytest.fixture(scope="module")
def full_run(trained, tmp_path_factory) -> Path:
    """A copy of the trained run (the shared one stays as it is) with samples, mixes, truncation and a metric."""
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(trained, run, symlinks=True)
    for args in (("sample", "--seeds", "0-7", "--grid", "4x2"), ("mix", "--coarse", "1,2", "--fine", "3"),
                 ("truncate", "--seeds", "0,1", "--psi", "0,0.7,1"), ("metrics", "msssim20")):
        result = sgan(*args, "-r", run)
        assert result.returncode == 0, result.stderr
    return run


class _Dom(HTMLParser):
    """Every element's tag and attributes, in document order, and the page's text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for t, attrs in self.elements if t == tag]


def _check_page(html: str) -> None:
    """What a report of `full_run` holds, whether read from the file or from the browser's DOM."""
    dom = _Dom(html)
    assert [m.get("content") for m in dom.all("meta") if m.get("http-equiv", "").lower()
            == "content-security-policy"] == [CSP]
    # Nothing can be fetched: no scripts, links or frames, and every URL on the page is a data: URI.
    assert not dom.all("script") and not dom.all("link") and not dom.all("iframe")
    for tag, attrs in dom.elements:
        for name, value in attrs.items():
            if name in URL_ATTRS:
                assert value.startswith("data:") or value.startswith("#"), f"<{tag} {name}={value[:60]!r}>"
    # Curves: charts of the training log with lines that have points.
    curves = [svg for svg in dom.all("figure") if svg.get("class") == "curve"]
    assert {c["data-chart"] for c in curves} >= {"Losses", "Regularisers", "Speed", "Learning rate", "Fade-in alpha",
                                                  "Resolution"}
    lines = dom.all("polyline") + dom.all("path")
    assert len(dom.all("svg")) >= 7 and len(lines) >= 7
    for line in lines:
        coords = (line.get("points") or line.get("d", "")).replace(",", " ").split()
        assert len(coords) >= 2 and all(c.lstrip("ML-").replace(".", "", 1).isdigit() for c in coords if c)
    # Metrics: a chart and a table row per metric.
    assert [f["data-metric"] for f in dom.all("figure") if "data-metric" in f] == ["msssim20"]
    text = " ".join(dom.text)
    assert "msssim20" in text and "0.0" in text
    # Images: the fakes timeline and the three synthesis grids, as PNG data: URIs.
    pngs = [img for img in dom.all("img") if img.get("src", "").startswith("data:image/png;base64,")]
    assert len(pngs) >= 4
    assert {img["alt"] for img in pngs} >= {"fakes-0000000.png", "samples/grid.png", "mix/grid.png",
                                            "truncate/grid.png"}
    # The summary: the training command, the configuration, the dataset, the checkpoints.
    for expected in ("sgan train", "--fmap-base 128", "fmap_max", "kimg reached", "ckpt-0000000.pt", "inputs",
                     "No inputs rejected"):
        assert expected in text, expected


def test_report_of_a_trained_run(full_run, capsys):
    status, out, err = sgan_here(capsys, "report", "-r", full_run)
    assert status == 0, err
    assert out == f"{full_run / 'report.html'}\n"
    _check_page((full_run / "report.html").read_text())
    last = json.loads((full_run / "history.jsonl").read_text().splitlines()[-1])
    assert last["outputs"] == [str(full_run / "report.html")] and last["exit_status"] == 0


def test_report_renders_in_headless_chromium(full_run, tmp_path):
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if browser is None:
        pytest.skip("no headless browser found (chromium, google-chrome): the rendered report is not checked")
    page = tmp_path / "page.html"
    assert sgan("report", "-r", full_run, "--out", page).returncode == 0
    common = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<svg" in dom.stdout
    _check_page(dom.stdout)
    shot = tmp_path / "shot.png"
    result = subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 0
    with Image.open(shot) as image:
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is None or len(colors) > 50, "the screenshot is blank"


def test_damaged_log_line_is_skipped_with_a_note(full_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(full_run, run, symlinks=True)
    with open(run / "train" / "log.jsonl", "a") as f:
        f.write('{"kimg": 0.2, "loss_G": \n')
    (run / "metrics.jsonl").write_text("not json\n" + (run / "metrics.jsonl").read_text())
    status, out, err = sgan_here(capsys, "report", "-r", run, "--json")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["report"] == str(run / "report.html") and "Metrics" in doc["sections"]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "train/log.jsonl" in warnings[0] and "line 2" in warnings[0]
    assert "Traceback" not in err
    html = (run / "report.html").read_text()
    assert "train/log.jsonl: skipped 1 damaged line (line 2)." in html
    assert 'data-metric="msssim20"' in html


def test_missing_parts_are_left_out_with_a_note(prepped, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(prepped / "data", run / "data")  # a run with only `sgan prep`'s part
    out = tmp_path / "sub" / "prep-report.html"
    status, stdout, err = sgan_here(capsys, "report", "-r", run, "--out", out)
    assert status == 0, err
    assert stdout == f"{out}\n" and not (run / "report.html").exists()
    html = out.read_text()
    for note in ("No train/log.jsonl", "No metrics.jsonl", "No checkpoints", "No train/fakes-*.png",
                 "No sample, mix or truncation grids", "No projections"):
        assert note in html, note
    assert "<polyline" not in html and "<img" not in html and "rejected" in html


def test_projections_show_each_target_beside_its_result_with_lpips_and_psnr(tmp_path, capsys):
    """What `sgan project` leaves in RUN/project (docs/design.md §13), one reconstruction since lost."""
    folder = tmp_path / "run" / "project"
    folder.mkdir(parents=True)
    for name in ("me.png", "me-target.png", "twin-target.png"):
        Image.new("RGB", (32, 32), "gray").save(folder / name)
    scores = {"lpips_start": 0.5, "psnr_start": 12.0, "steps": 1000, "seconds": 61.0}
    (folder / "project.json").write_text(json.dumps({
        "settings": {"checkpoint": "/runs/me/checkpoints/ckpt-0000000.pt", "kimg": 0.0, "space": "w"},
        "targets": [{"name": "me", "source": "me.jpg", "lpips": 0.1234, "psnr": 21.5, **scores},
                    {"name": "twin", "source": "twin.jpg", "lpips": 0.0, "psnr": None, **scores}],
        "failed": [{"source": "cat.jpg", "reason": "no face", "detail": "no face was found"}]}))
    status, out, err = sgan_here(capsys, "report", "-r", tmp_path / "run", "--json")
    assert status == 0, err
    assert "Projections" in json.loads(out)["sections"]
    html = (tmp_path / "run" / "report.html").read_text()
    section = html[html.index('<section id="projections">'):]
    section = section[:section.index("</section>")]
    dom = _Dom(section)
    assert [(img["alt"], img["src"][:22]) for img in dom.all("img")] == [
        ("project/me-target.png", "data:image/png;base64,"), ("project/me.png", "data:image/png;base64,"),
        ("project/twin-target.png", "data:image/png;base64,")]
    text = " ".join(dom.text)
    for expected in ("ckpt-0000000.pt", "me: target (me.jpg)", "me: result, LPIPS 0.1234, PSNR 21.50 dB",
                     "twin: target (twin.jpg)", "Not projected: cat.jpg: no face was found."):
        assert expected in text, expected
    # The table: the scores after and before the search (a PSNR of null: identical images), steps, seconds.
    assert _cells("me", "me.jpg", "0.1234", "21.50 dB", "0.5000", "12.00 dB", "1000", "61.0") in section
    assert _cells("twin", "twin.jpg", "0.0000", "inf", "0.5000", "12.00 dB", "1000", "61.0") in section
    assert "project/twin.png could not be read" in html and "project/twin.png" in err


def _cells(name: str, photo: str, *numbers: str) -> str:
    return f"<td>{name}</td><td>{photo}</td>" + "".join(f'<td class="num">{n}</td>' for n in numbers)


def test_an_empty_run_is_a_usage_error(tmp_path, capsys):
    status, out, err = sgan_here(capsys, "report", "-r", tmp_path / "nothing")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sgan: ") and "no run to report on" in err
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "empty").mkdir()
    assert sgan_here(capsys, "report", "-r", tmp_path / "empty")[0] == 2
    assert list((tmp_path / "empty").iterdir()) == []


def test_line_chart():
    svg = line_chart({"a": [(0, 1.0), (1, float("nan")), (2, 3.0)], "b": [(1, 2.0)], "c": []}, "kimg", "loss")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<polyline") == 2 and 'data-series="c"' not in svg
    assert line_chart({"a": [(0, float("inf"))]}) == ""
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(3, 3) == [3]
