"""The run report: reads what the stages left in a run directory (docs/design.md §3, §11) and writes one
self-contained HTML page about it.

Nothing on the page is fetched: curves are inline SVG (report/svg.py), images are data: URIs, styles are
inline, and a Content-Security-Policy meta tag forbids every other source, so the page shows the same
offline, from a mail attachment or from a cluster's scratch disk. Each part is optional: what a run lacks
is left out with a short note, and a damaged line of a JSONL log is skipped with a note on the page and
one warning line for stderr.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path

from stylegan_cli.core import rundir
from stylegan_cli.core.errors import UsageError
from stylegan_cli.report.svg import line_chart

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_FAKES = 24  # fakes grids shown in the timeline at most (evenly spaced, first and last always)
MAX_REJECTS = 50

# train/log.jsonl's keys, grouped into charts: (title, y label, keys). Loss terms are every `loss*` key;
# numeric keys not named anywhere here get a chart each, so a new log field still shows.
_CHARTS = (
    ("Regularisers", "value", ("r1", "gp", "pl")),
    ("Augmentation (ADA): p and the overfitting heuristic r_t", "value", ("aug_p", "r_t", "ada_target")),
    ("Speed", "s/kimg", ("sec_per_kimg",)),
    ("Learning rate", "lr", ("lr",)),
    ("Fade-in alpha", "alpha", ("alpha",)),
    ("Resolution", "pixels", ("resolution",)),
)
_NOT_PLOTTED = {"kimg", "batch", "time", "img_per_sec", "memory_gib"}

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:16px 0 4px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f5f5f5;padding:1px 4px;word-break:break-all}
.note{color:#666;font-style:italic}.notes{background:#fff8e1;border:1px solid #f0d98c;padding:6px 12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee}
figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
figcaption{font-size:12px;color:#555;text-align:center}
img{image-rendering:pixelated;max-width:100%;height:auto;border:1px solid #eee}
"""


@dataclass
class Page:
    """A built report: the HTML, the names of the sections it has, and what was skipped."""

    html: str
    sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown on the page
    warnings: list[str] = field(default_factory=list)  # one line each for stderr


class _Reader:
    """Reads the run's files, collecting notes about damaged ones instead of failing."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.run_dir))
        except ValueError:
            return str(path)

    def jsonl(self, path: Path) -> list[dict]:
        if not path.is_file():
            return []
        rows, bad = [], []
        try:
            lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        except OSError as e:
            self._damaged(f"{self.name(path)} could not be read ({e.strerror}); left out.")
            return []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad.append(number)
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            self._damaged(f"{self.name(path)}: skipped {len(bad)} damaged line{'s' if len(bad) > 1 else ''} "
                          f"(line {shown}).")
        return rows

    def json(self, path: Path) -> dict | None:
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError):
            value = None
        if not isinstance(value, dict):
            self._damaged(f"{self.name(path)} is not a readable JSON object; left out.")
            return None
        return value

    def png(self, path: Path) -> tuple[str, int] | None:
        """The PNG as a data: URI and its width, or None (with a note) when it is not a readable PNG."""
        try:
            data = path.read_bytes()
        except OSError as e:
            self._damaged(f"{self.name(path)} could not be read ({e.strerror}); left out.")
            return None
        if not data.startswith(PNG_MAGIC):
            self._damaged(f"{self.name(path)} is not a PNG; left out.")
            return None
        width = int.from_bytes(data[16:20], "big") if len(data) >= 24 else 0  # from the IHDR chunk
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width

    def _damaged(self, message: str) -> None:
        self.notes.append(message)
        self.warnings.append(message)


def has_content(run_dir: Path) -> bool:
    """Whether the folder holds anything a stage writes (docs/design.md §3)."""
    parts = [rundir.history_file(run_dir), rundir.data_dir(run_dir), rundir.train_dir(run_dir),
             rundir.checkpoints_dir(run_dir), rundir.metrics_file(run_dir)]
    parts += [rundir.stage_dir(run_dir, name) for name in ("samples", "mix", "truncate", "project")]
    return run_dir.is_dir() and any(p.exists() for p in parts)


def build(run_dir: Path) -> Page:
    """The report of `run_dir`; a folder with nothing a stage writes is a usage error."""
    if not has_content(run_dir):
        raise UsageError(f"{run_dir} holds no run to report on (no history.jsonl, data/, train/, checkpoints/ "
                         f"or metrics.jsonl).")
    reader = _Reader(run_dir)
    history = reader.jsonl(rundir.history_file(run_dir))
    log = reader.jsonl(rundir.train_dir(run_dir) / "log.jsonl")
    metrics = reader.jsonl(rundir.metrics_file(run_dir))
    sections = [
        ("Summary", _summary(reader, history, log)),
        ("Dataset", _dataset(reader)),
        ("Training curves", _curves(log)),
        ("Metrics", _metrics(metrics)),
        ("Fakes during training", _fakes(reader)),
        ("Samples", _grids(reader)),
        ("Projections", _projections(reader)),
        ("History", _history(history)),
    ]
    present = [title for title, html in sections if not _only_note(html)]
    body = "".join(f'<section id="{_slug(title)}"><h2>{escape(title)}</h2>{html}</section>'
                   for title, html in sections)
    notes = ""
    if reader.notes:
        notes = '<div class="notes" id="notes"><b>Notes</b><ul>' + "".join(
            f"<li>{escape(n)}</li>" for n in reader.notes) + "</ul></div>"
    title = f"sgan report: {run_dir.resolve().name}"
    html = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1><p>Run directory <code>{escape(str(run_dir.resolve()))}</code>, "
            f"report written {escape(datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'))}.</p>"
            f"{notes}{body}</body></html>\n")
    return Page(html=html, sections=present, notes=reader.notes, warnings=reader.warnings)


# --- sections -----------------------------------------------------------------------------------


def _summary(reader: _Reader, history: list[dict], log: list[dict]) -> str:
    run_dir = reader.run_dir
    out = []
    trainings = [h for h in history if _stage_of(h) == "train"]
    if trainings:
        rows = [(f"<code>{escape(_command_text(h))}</code>", escape(str(h.get("start", ""))),
                 _duration(_seconds(h)), escape(str(h.get("exit_status", "")))) for h in trainings]
        out.append("<h3>Training command" + ("s" if len(rows) > 1 else "") + "</h3>"
                   + _table(("command", "start (UTC)", "duration", "exit"), rows))
    else:
        out.append(_note("No training in history.jsonl."))
    facts = []
    kimgs = [row["kimg"] for row in log if _number(row.get("kimg"))]
    checkpoints = _checkpoints(run_dir)
    if kimgs:
        facts.append(("kimg reached", f"{max(kimgs):g}"))
    elif checkpoints:
        facts.append(("kimg reached", f"{checkpoints[-1][1]:g} (from the newest checkpoint's name)"))
    durations = [_seconds(h) for h in trainings]
    if any(d is not None for d in durations):
        facts.append(("training wall time", _duration(sum(d for d in durations if d is not None))))
    last = log[-1] if log else {}
    for key, label in (("resolution", "resolution at the end"), ("sec_per_kimg", "s/kimg at the end"),
                       ("memory_gib", "peak memory (GiB)")):
        if _number(last.get(key)):
            facts.append((label, f"{last[key]:g}"))
    if facts:
        out.append(_table(("", ""), [(escape(k), escape(v)) for k, v in facts], header=False))
    if checkpoints:
        latest = _latest(run_dir)
        rows = [(escape(path.name) + (" <b>(latest)</b>" if path.name == latest else ""), f"{kimg:g}",
                 f"{path.stat().st_size / 2**20:.1f}", escape(_mtime(path))) for path, kimg in checkpoints]
        out.append("<h3>Checkpoints</h3>" + _table(("file", "kimg", "MiB", "modified"), rows, numeric=(1, 2)))
        damaged = sorted(rundir.checkpoints_dir(run_dir).glob("*.damaged"))
        if damaged:
            out.append(_note("Set aside as damaged: " + ", ".join(p.name for p in damaged) + "."))
    else:
        out.append(_note("No checkpoints."))
    config = reader.json(rundir.train_dir(run_dir) / "config.json")
    if config:
        rows = [(escape(str(k)), f"<code>{escape(json.dumps(v))}</code>") for k, v in config.items()]
        out.append("<h3>Configuration (train/config.json)</h3>" + _table(("setting", "value"), rows))
    else:
        out.append(_note("No train/config.json."))
    return "".join(out)


def _dataset(reader: _Reader) -> str:
    data = rundir.data_dir(reader.run_dir)
    prep = reader.json(data / "prep.json")
    rejects = reader.jsonl(data / "rejects.jsonl")
    if prep is None and not rejects:
        return _note("No data/prep.json: the dataset was not prepared in this run (or came from --data).")
    out = []
    if prep:
        settings = prep.get("settings") if isinstance(prep.get("settings"), dict) else {}
        facts = [(k, prep[k]) for k in ("inputs", "images", "rejected", "seconds") if k in prep]
        facts += [(k, settings[k]) for k in ("kind", "src", "resolution", "landmarks") if k in settings]
        if isinstance(prep.get("rejects_by_reason"), dict) and prep["rejects_by_reason"]:
            facts.append(("rejects by reason", ", ".join(f"{k}: {v}" for k, v in prep["rejects_by_reason"].items())))
        out.append(_table(("", ""), [(escape(str(k)), escape(str(v))) for k, v in facts], header=False))
    if rejects:
        rows = [tuple(escape(str(r.get(k, ""))) for k in ("position", "source", "reason", "detail"))
                for r in rejects[:MAX_REJECTS]]
        out.append(f"<h3>Rejects ({len(rejects)})</h3>" + _table(("position", "source", "reason", "detail"), rows))
        if len(rejects) > MAX_REJECTS:
            out.append(_note(f"First {MAX_REJECTS} of {len(rejects)} shown; all are in data/rejects.jsonl."))
    else:
        out.append(_note("No inputs rejected."))
    return "".join(out)


def _curves(log: list[dict]) -> str:
    if not log:
        return _note("No train/log.jsonl: nothing trained yet.")
    keys = []
    for row in log:
        keys += [k for k, v in row.items() if k not in keys and _number(v)]
    charts = [("Losses", "loss", [k for k in keys if k.startswith("loss")])]
    named = {k for _, _, group in _CHARTS for k in group}
    charts += [(title, label, [k for k in group if k in keys]) for title, label, group in _CHARTS]
    charts += [(k, k, [k]) for k in keys if k not in named and k not in _NOT_PLOTTED and not k.startswith("loss")]
    out = []
    for title, label, group in charts:
        series = {k: [(row.get("kimg"), row.get(k)) for row in log] for k in group}
        svg = line_chart(series, "kimg", label, title) if group else ""
        if svg:
            out.append(f'<figure class="curve" data-chart="{escape(title)}">{svg}'
                       f"<figcaption>{escape(title)}</figcaption></figure>")
    if not out:
        return _note("train/log.jsonl has no numeric values over kimg.")
    return f'<p>{len(log)} ticks from train/log.jsonl.</p><div class="charts">{"".join(out)}</div>'


def _metrics(results: list[dict]) -> str:
    results = [r for r in results if isinstance(r.get("metric"), str)]
    if not results:
        return _note("No metrics.jsonl: run `sgan metrics` (or train with --metrics) to add some.")
    names = list(dict.fromkeys(r["metric"] for r in results))
    charts, rows = [], []
    for name in names:
        mine = [r for r in results if r["metric"] == name]
        svg = line_chart({name: [(r.get("kimg"), r.get("value")) for r in mine]}, "kimg", name, name)
        if svg:
            charts.append(f'<figure class="metric" data-metric="{escape(name)}">{svg}'
                          f"<figcaption>{escape(name)}</figcaption></figure>")
        for r in mine:
            value = r.get("value")
            rows.append((escape(name), f"{value:.6g}" if _number(value) else escape(str(value)),
                         f"{r['kimg']:g}" if _number(r.get("kimg")) else "",
                         f"{r['seconds']:.1f}" if _number(r.get("seconds")) else "",
                         escape(Path(str(r.get("checkpoint") or "")).name),
                         escape(", ".join(f"{k}={v}" for k, v in (r.get("settings") or {}).items()
                                          if k in ("resolution", "alpha", "seed", "count")))))
    table = _table(("metric", "value", "kimg", "seconds", "checkpoint", "settings"), rows, numeric=(1, 2, 3))
    return f'<div class="charts">{"".join(charts)}</div>{table}'


def _fakes(reader: _Reader) -> str:
    paths = sorted(rundir.train_dir(reader.run_dir).glob("fakes-*.png"))
    if not paths:
        return _note("No train/fakes-*.png.")
    shown = paths
    if len(paths) > MAX_FAKES:
        picks = {round(i * (len(paths) - 1) / (MAX_FAKES - 1)) for i in range(MAX_FAKES)}
        shown = [p for i, p in enumerate(paths) if i in picks]
    figures = []
    for path in shown:
        png = reader.png(path)
        if png:
            kimg = path.stem.split("-")[-1].lstrip("0") or "0"
            figures.append(_figure(png, f"kimg {kimg}", path.name))
    note = _note(f"{len(shown)} of {len(paths)} grids shown, evenly spaced.") if len(shown) < len(paths) else ""
    return note + "".join(figures)


def _grids(reader: _Reader) -> str:
    run_dir = reader.run_dir
    samples = rundir.stage_dir(run_dir, "samples")
    found = [("sgan sample", samples / "grid.png")]  # then each class's (sgan sample --class NAME)
    found += [(f"sgan sample --class {p.parent.name}", p) for p in sorted(samples.glob("*/grid.png"))]
    mix = rundir.stage_dir(run_dir, "mix")
    found += [("sgan mix", p) for p in sorted(mix.glob("*grid*.png"), key=_mtime_key, reverse=True)]
    found.append(("sgan truncate", rundir.stage_dir(run_dir, "truncate") / "grid.png"))
    figures = []
    for stage, path in found:
        if path.is_file():
            png = reader.png(path)
            if png:
                figures.append(_figure(png, f"{stage}: {reader.name(path)} ({_mtime(path)})", reader.name(path)))
    if not figures:
        return _note("No sample, mix or truncation grids (sgan sample --grid, sgan mix, sgan truncate).")
    return "".join(figures)


def _projections(reader: _Reader) -> str:
    """sgan project's photos: each aligned target beside its reconstruction, with the scores project.json
    holds (docs/design.md §13), and the photos that could not be used."""
    folder = rundir.stage_dir(reader.run_dir, "project")
    state = reader.json(folder / rundir.PROJECT_STATE)
    if state is None:
        return _note("No projections (sgan project --target PHOTO).")
    settings = state.get("settings") if isinstance(state.get("settings"), dict) else {}
    targets = [t for t in _list(state.get("targets")) if isinstance(t, dict) and isinstance(t.get("name"), str)]
    out = []
    if settings.get("checkpoint"):
        kimg = f" (kimg {settings['kimg']:g})" if _number(settings.get("kimg")) else ""
        out.append(f"<p>Projected with <code>--space {escape(str(settings.get('space', 'w')))}</code> into "
                   f"<code>{escape(Path(str(settings['checkpoint'])).name)}</code>{kimg}.</p>")
    rows = []
    for t in targets:
        name, source = t["name"], str(t.get("source", ""))
        result, target = rundir.projection_images(folder, name)
        captions = {target: f"{name}: target ({source})",
                    result: f"{name}: result, LPIPS {_lpips(t, 'lpips')}, PSNR {_psnr(t, 'psnr')}"}
        figures = [_figure(png, caption, reader.name(path)) for path, caption in captions.items()
                   if (png := reader.png(path))]
        out.append(f'<div class="projection" data-name="{escape(name)}">{"".join(figures)}</div>')
        rows.append((escape(name), escape(source), _lpips(t, "lpips"), _psnr(t, "psnr"), _lpips(t, "lpips_start"),
                     _psnr(t, "psnr_start"), escape(str(t.get("steps", ""))),
                     f"{t['seconds']:.1f}" if _number(t.get("seconds")) else ""))
    if rows:
        out.append(_table(("target", "photo", "LPIPS", "PSNR", "LPIPS at the start", "PSNR at the start", "steps",
                           "seconds"), rows, numeric=(2, 3, 4, 5, 6, 7)))
    failed = [f for f in _list(state.get("failed")) if isinstance(f, dict)]
    if failed:
        out.append(_note("Not projected: " + "; ".join(f"{f.get('source', '?')}: {f.get('detail', '?')}"
                                                        for f in failed) + "."))
    return "".join(out) or _note(f"{reader.name(folder / rundir.PROJECT_STATE)} lists no projected targets.")


def _history(history: list[dict]) -> str:
    if not history:
        return _note("No history.jsonl.")
    rows = [(escape(str(h.get("start", ""))), escape(_stage_of(h) or "?"), _duration(_seconds(h)),
             escape(str(h.get("exit_status", ""))), f"<code>{escape(_command_text(h))}</code>") for h in history]
    return _table(("start (UTC)", "stage", "duration", "exit", "command"), rows)


# --- helpers ------------------------------------------------------------------------------------


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _lpips(target: dict, key: str) -> str:
    return f"{target[key]:.4f}" if _number(target.get(key)) else ""


def _psnr(target: dict, key: str) -> str:
    """A PSNR of project.json in dB: null where the two images are identical."""
    if key in target and target[key] is None:
        return "inf"
    return f"{target[key]:.2f} dB" if _number(target.get(key)) else ""


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _args(entry: dict) -> list[str]:
    """The sgan arguments of a history line, without the program (sgan, python -m stylegan_cli, __main__.py)."""
    command = entry.get("command")
    if not isinstance(command, list):
        return []
    return [str(a) for a in command[1:]]


def _stage_of(entry: dict) -> str | None:
    return next((a for a in _args(entry) if not a.startswith("-")), None)


def _command_text(entry: dict) -> str:
    return "sgan " + shlex.join(_args(entry))


def _seconds(entry: dict) -> float | None:
    try:
        start = datetime.fromisoformat(str(entry["start"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(entry["end"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _checkpoints(run_dir: Path) -> list[tuple[Path, float]]:
    folder = rundir.checkpoints_dir(run_dir)
    found = []
    for path in sorted(folder.glob("ckpt-*.pt")) if folder.is_dir() else []:
        m = re.fullmatch(r"ckpt-(\d+)\.pt", path.name)
        if m and path.is_file():
            found.append((path, float(int(m.group(1)))))
    return found


def _latest(run_dir: Path) -> str | None:
    link = rundir.checkpoints_dir(run_dir) / "latest"
    try:
        return Path(link.readlink()).name if link.is_symlink() else None
    except OSError:
        return None


def _mtime_key(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(_mtime_key(path)).astimezone().strftime("%Y-%m-%d %H:%M")


def _only_note(html: str) -> bool:
    """Whether a section is just the note that its part of the run is missing."""
    return html.startswith('<p class="note">') and html.count("<p") == 1 and html.endswith("</p>")


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _figure(png: tuple[str, int], caption: str, alt: str, target: int = 360) -> str:
    """An image shown at least `target` pixels wide when small (whole multiples, so pixels stay square),
    at its own size up to the page's width when larger."""
    uri, width = png
    shown = width * max(1, target // width) if 0 < width <= target else min(width, 2 * target) or target
    return (f'<figure><img src="{uri}" alt="{escape(alt)}" width="{shown}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], numeric: tuple[int, ...] = (),
           header: bool = True) -> str:
    """A table of cells that are already HTML (escaped by the caller)."""
    top = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{top}{body}</table>"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
