"""A task's plot (leaderboard/plot.py) as a self-contained SVG: no script, no font or file fetched.

Every label is XML-escaped; a result's mathtext symbol ($\\hat{p}$) is shown
as the plain text it reads as (p̂), since SVG renders no TeX.
"""

from __future__ import annotations

import html
import math
import re

from polymodal.leaderboard.plot import Plot
from polymodal.leaderboard.text import plain

WIDTH, HEIGHT = 820, 400
LEFT, RIGHT, TOP, BOTTOM = 60, 250, 30, 50  # the legend sits in the right margin
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
LEVEL_DASHES = ("2 3", "6 3", "1 5")
GREYS = ("#000000", "#555555", "#888888")


def render_svg(plot: Plot, title: str) -> str:
    xs = [p[0] for c in plot.curves for p in c.points] + [x for lv in plot.levels for s in lv.segments for x in s[:2]]
    ys = ([v for c in plot.curves for p in c.points for v in p[1:] if v is not None]
          + [s[2] for lv in plot.levels for s in lv.segments])
    x0, x1 = _span(xs)
    y0, y1 = _span(ys + [0.0])
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * inner_w

    def sy(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * inner_h

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">'),
           f'<title>{_text(title)}</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>']
    for tick in _ticks(y0, y1):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + inner_w}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in sorted({p[0] for c in plot.curves for p in c.points}):  # the x values that were run
        out.append(f'<text x="{sx(tick):.1f}" y="{TOP + inner_h + 16}" text-anchor="middle">{tick:g}</text>')
    out.append(f'<text x="{LEFT + inner_w / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
               f'{_text(_untex(plot.symbol))} (dataset parameter {_text(plot.x_param)})</text>')
    out.append(f'<text x="14" y="{TOP + inner_h / 2}" transform="rotate(-90 14 {TOP + inner_h / 2})" '
               f'text-anchor="middle">{_text(plot.y_label)}</text>')
    legend = []
    for i, level in enumerate(plot.levels):
        style = f'stroke="{GREYS[i % len(GREYS)]}" stroke-width="2" stroke-dasharray="{LEVEL_DASHES[i % len(LEVEL_DASHES)]}"'
        for start, end, y in level.segments:
            out.append(f'<line class="level" x1="{sx(start):.1f}" x2="{sx(end):.1f}" y1="{sy(y):.1f}" '
                       f'y2="{sy(y):.1f}" {style}/>')
        legend.append((f'<line x1="0" x2="24" y1="0" y2="0" {style}/>', level.label))
    for i, curve in enumerate(plot.curves):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _, _ in curve.points)
        out.append(f'<polyline class="curve" points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for x, y, low, high in curve.points:
            if low is not None:
                out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{sy(low):.1f}" y2="{sy(high):.1f}" '
                           f'stroke="{color}"/>')
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"/>')
        legend.append((f'<line x1="0" x2="24" y1="0" y2="0" stroke="{color}" stroke-width="2"/>', curve.label))
    for i, (mark, label) in enumerate(legend):
        y = TOP + 8 + 18 * i
        out.append(f'<g transform="translate({WIDTH - RIGHT + 16} {y})">{mark}'
                   f'<text x="30" y="4">{_text(label[:40])}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _text(value: object) -> str:
    return html.escape(plain(value), quote=True)


def _untex(symbol: str) -> str:
    """$\\hat{p}$ -> p̂ (a combining circumflex); other TeX commands lose their backslash and braces."""
    text = re.sub(r"\\hat\{(\w)\}", "\\1\u0302", symbol.replace("$", ""))
    return re.sub(r"[\\{}]", "", text)


def _span(values: list[float]) -> tuple[float, float]:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.05 or max(abs(low), 1.0) * 0.05
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10((high - low) / count))
    step *= next(m for m in (1, 2, 5, 10) if (high - low) / (step * m) <= count)
    return [round(k * step, 12) for k in range(math.ceil(low / step), math.floor(high / step) + 1)]
