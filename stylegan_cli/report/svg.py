"""Line charts as inline SVG text.

The report draws its own plots rather than using a plotting library: that adds no dependency, the
SVG renders in every browser (and in mail, wikis, file viewers) with nothing to fetch, and a chart
is plain text that a test can read.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 40
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MARKERS_UP_TO = 60  # points per series drawn as dots as well as the line


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 2.5 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.6g}"


def _span(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:  # one value: a band around it, so the line sits in the middle
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def line_chart(series: dict[str, list[tuple[float, float]]], x_label: str = "kimg", y_label: str = "",
               title: str = "") -> str:
    """An SVG chart with one polyline per named series of (x, y) points; non-finite points are left out.
    Returns "" when no series has a point."""
    clean = {name: sorted((x, y) for x, y in points if _finite(x) and _finite(y)) for name, points in series.items()}
    clean = {name: points for name, points in clean.items() if points}
    if not clean:
        return ""
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    x0, x1 = (min(xs), max(xs)) if max(xs) > min(xs) else _span(xs)
    y0, y1 = _span(ys)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + (y1 - y) / (y1 - y0) * plot_h

    parts = [f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title or y_label)}">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#bbb"/>')
    for tick in nice_ticks(y0, y1):
        y = py(tick)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{_label(tick)}</text>')
    for tick in nice_ticks(x0, x1):
        x = px(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 4}" stroke="#888"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 17}" text-anchor="middle" font-size="11">'
                     f"{_label(tick)}</text>")
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12">'
                 f"{escape(x_label)}</text>")
    if y_label:
        parts.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" font-size="12" '
                     f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    for i, (name, points) in enumerate(clean.items()):
        color = COLORS[i % len(COLORS)]
        coords = [(px(x), py(y)) for x, y in points]
        if len(coords) == 1:  # a lone point still gets a (zero-length) line, and its dot shows it
            coords = coords * 2
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{color}" '
                     f'stroke-width="1.5" points="{text}"/>')
        if len(points) <= MARKERS_UP_TO:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in coords)
        parts.append(f'<text x="{LEFT + plot_w - 6}" y="{TOP + 14 + 14 * i}" text-anchor="end" font-size="11" '
                     f'fill="{color}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
