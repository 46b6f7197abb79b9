"""Server-rendered SVG plots for the metrics page: no chart library, no JavaScript.

A plot is a list of buckets (label, values by series); bars stack the series, lines draw
one polyline per series. Colours come from CSS classes (`series-<name>`) in the
stylesheet, so the plots follow the page's theme.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import attrs

WIDTH = 720
HEIGHT = 260
# Room for the axis labels around the plot area.
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44


@attrs.frozen
class Bucket:
    label: str
    values: dict[str, float]


def _nice_max(value: float) -> float:
    """A round number at or above `value`, so the axis ticks read well."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 3600:
            return f"{value / 3600:.1f}h"
        if value >= 60:
            return f"{value / 60:.1f}m"
        return f"{value:.0f}s" if value >= 10 or value == 0 else f"{value:.1f}s"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _frame(title: str, top: float, unit: str, labels: Sequence[str],
           series: Sequence[str]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<text class="plot-title" x="{LEFT}" y="16">{escape(title)}</text>']
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(_fmt(top * i / 4, unit))}</text>')
    # At most ~8 x labels, evenly spaced, so they never overlap.
    step = max(1, math.ceil(len(labels) / 8))
    for i in range(0, len(labels), step):
        x = LEFT + plot_w * (i + 0.5) / len(labels)
        parts.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{escape(labels[i])}</text>')
    x = LEFT
    for name in series:
        parts.append(f'<rect class="series-{escape(name)}" x="{x}" y="{HEIGHT - 14}" '
                     f'width="10" height="10"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="{HEIGHT - 5}">'
                     f'{escape(name)}</text>')
        x += 24 + 8 * len(name)
    return parts


def _wrap(parts: list[str], title: str) -> str:
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>{"".join(parts)}</svg>')


def _empty(title: str) -> str:
    return _wrap([f'<text class="plot-title" x="{LEFT}" y="16">{escape(title)}</text>',
                  f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" '
                  'text-anchor="middle">no data in this period</text>'], title)


def stacked_bars(title: str, buckets: Sequence[Bucket], series: Sequence[str],
                 unit: str = "") -> str:
    if not buckets:
        return _empty(title)
    top = _nice_max(max(sum(b.values.get(s, 0) for s in series) for b in buckets))
    parts = _frame(title, top, unit, [b.label for b in buckets], series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(buckets)
    bar = max(1.0, slot * 0.7)
    for i, b in enumerate(buckets):
        base: float = TOP + plot_h
        x = LEFT + slot * i + (slot - bar) / 2
        for name in series:
            value: float = b.values.get(name, 0)
            h = plot_h * value / top
            if h <= 0:
                continue
            base -= h
            parts.append(f'<rect class="series-{escape(name)}" x="{x:.1f}" y="{base:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(b.label)} '
                         f'{escape(name)}: {escape(_fmt(value, unit))}</title></rect>')
    return _wrap(parts, title)


def lines(title: str, buckets: Sequence[Bucket], series: Sequence[str], unit: str = "") -> str:
    values = [b.values[s] for b in buckets for s in series if b.values.get(s) is not None]
    if not values:
        return _empty(title)
    top = _nice_max(max(values))
    parts = _frame(title, top, unit, [b.label for b in buckets], series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for name in series:
        points = []
        for i, b in enumerate(buckets):
            value = b.values.get(name)
            if value is None:
                continue
            x = LEFT + plot_w * (i + 0.5) / len(buckets)
            y = TOP + plot_h - plot_h * value / top
            points.append((x, y, b.label, value))
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        parts.append(f'<polyline class="line series-{escape(name)}" points="{path}"/>')
        for x, y, label, value in points:
            parts.append(f'<circle class="series-{escape(name)}" cx="{x:.1f}" cy="{y:.1f}" '
                         f'r="3"><title>{escape(label)} {escape(name)}: '
                         f'{escape(_fmt(value, unit))}</title></circle>')
    return _wrap(parts, title)
