"""A task's plots (leaderboard/plot.py) as self-contained SVGs: no script, no font or file fetched.

Every label is XML-escaped; a result's mathtext symbol ($\\hat{p}$) is shown
as the plain text it reads as (p̂), since SVG renders no TeX.
"""

from __future__ import annotations

import html
import math
import re

from polymodal.leaderboard.plot import Plot, Sweep
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
        style = _level_style(i)
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


# The sweep: a grid of small panels, one row per dataset and one column per corruption, the legend at the right.
PANEL_W, PANEL_H, PANEL_GAP = 140, 110, 24
SWEEP_LEFT, SWEEP_HEADER, SWEEP_BOTTOM = 60, 28, 34
ROW_HEAD, ROW_FOOT = 38, 22  # a row's title and its panels' titles above, the x ticks below
SWEEP_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)  # p and accuracy alike: both are shares


def render_sweep_svg(sweep: Sweep, title: str) -> str:
    """The robustness sweep: accuracy (0..1) against the share p (0..1) of queries corrupted, per panel."""
    columns = len(sweep.corruptions)
    row_h = ROW_HEAD + PANEL_H + ROW_FOOT
    levels = dict((name, label) for row in sweep.rows for name, label, _ in row.levels)  # name -> label
    style = {name: _level_style(i) for i, name in enumerate(levels)}
    drawn = sorted({curve.model for row in sweep.rows for curves in row.panels.values() for curve in curves})
    legend = len(levels) + len(drawn)
    width = SWEEP_LEFT + columns * PANEL_W + (columns - 1) * PANEL_GAP + RIGHT
    height = max(SWEEP_HEADER + len(sweep.rows) * row_h + SWEEP_BOTTOM, SWEEP_HEADER + 18 * legend + 16)
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'),
           f'<title>{_text(title)}</title>',
           f'<text x="{SWEEP_LEFT}" y="18" font-size="13">{_text(title)}</text>']
    for r, row in enumerate(sweep.rows):
        top = SWEEP_HEADER + r * row_h
        y_panel = top + ROW_HEAD
        shown = row.label + ("" if row.ranked else " (not ranked)") + f"; mean over {', '.join(row.modalities)}"
        out.append('<g class="row">')
        out.append(f'<text x="{SWEEP_LEFT}" y="{top + 13}" font-weight="bold">{_text(shown[:90])}</text>')
        out.append(f'<text x="14" y="{y_panel + PANEL_H / 2}" transform="rotate(-90 14 {y_panel + PANEL_H / 2})" '
                   'text-anchor="middle">accuracy</text>')
        for c, corruption in enumerate(sweep.corruptions):
            x_panel = SWEEP_LEFT + c * (PANEL_W + PANEL_GAP)

            def sx(p: float, x_panel: float = x_panel) -> float:
                return x_panel + p * PANEL_W

            def sy(y: float, y_panel: float = y_panel) -> float:
                return y_panel + (1 - y) * PANEL_H

            out.append(f'<g class="panel" data-corruption="{_text(corruption)}">')
            out.append(f'<text x="{x_panel + PANEL_W / 2}" y="{y_panel - 6}" text-anchor="middle">'
                       f'{_text(corruption)}</text>')
            out.append(f'<rect x="{x_panel}" y="{y_panel}" width="{PANEL_W}" height="{PANEL_H}" fill="none" '
                       'stroke="#999"/>')
            for tick in SWEEP_TICKS:
                out.append(f'<line x1="{x_panel}" x2="{x_panel + PANEL_W}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" '
                           'stroke="#eee"/>')
                if tick in (0.0, 0.5, 1.0):
                    out.append(f'<text x="{sx(tick):.1f}" y="{y_panel + PANEL_H + 15}" text-anchor="middle">'
                               f'{tick:g}</text>')
                    if c == 0:
                        out.append(f'<text x="{x_panel - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
            for name, _, y in row.levels:
                out.append(f'<line class="level" x1="{x_panel}" x2="{x_panel + PANEL_W}" y1="{sy(y):.1f}" '
                           f'y2="{sy(y):.1f}" {style[name]}/>')
            for curve in row.panels.get(corruption, []):
                color = COLORS[curve.model % len(COLORS)]
                points = " ".join(f"{sx(p):.1f},{sy(y):.1f}" for p, y in curve.points)
                out.append(f'<polyline class="curve" points="{points}" fill="none" stroke="{color}" '
                           'stroke-width="1.5"/>')
                out.extend(f'<circle cx="{sx(p):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for p, y in curve.points)
            out.append("</g>")
        out.append("</g>")
    out.append(f'<text x="{SWEEP_LEFT + (width - SWEEP_LEFT - RIGHT) / 2}" y="{height - 10}" text-anchor="middle">'
               'p: share of the test queries with that modality corrupted</text>')
    marks = [(f'<line x1="0" x2="24" y1="0" y2="0" {style[name]}/>', label) for name, label in levels.items()]
    marks += [(f'<line x1="0" x2="24" y1="0" y2="0" stroke="{COLORS[m % len(COLORS)]}" stroke-width="2"/>'
               f'<circle cx="12" cy="0" r="3" fill="{COLORS[m % len(COLORS)]}"/>', sweep.models[m]) for m in drawn]
    for i, (mark, label) in enumerate(marks):
        out.append(f'<g transform="translate({width - RIGHT + 16} {SWEEP_HEADER + 8 + 18 * i})">{mark}'
                   f'<text x="30" y="4">{_text(label[:40])}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _level_style(i: int) -> str:
    return (f'stroke="{GREYS[i % len(GREYS)]}" stroke-width="2" '
            f'stroke-dasharray="{LEVEL_DASHES[i % len(LEVEL_DASHES)]}"')


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
