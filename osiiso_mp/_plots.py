"""The two small plots of the HTML summary: how long attempts took (a histogram, stacked by
outcome) and how busy each worker was (one bar per worker). Standard library only; the theme
rules are :mod:`._svgkit`'s.
"""

from __future__ import annotations

import math
from collections import Counter
from html import escape
from typing import TYPE_CHECKING

from ._svgkit import (
    OUTCOME_COLOURS,
    OUTCOME_ORDER,
    SVG,
    duration_text,
    ink_colour,
    svg_open,
    ticks,
)

if TYPE_CHECKING:
    from ._summary import RunSummary

__all__ = ["duration_histogram_svg", "utilisation_svg"]

_BINS = 24
_LOG_ABOVE = 50.0  # log-spaced bins when the longest attempt is this many times the shortest
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 24, 38
_BUSY = "#4c78a8"


def duration_histogram_svg(summary: RunSummary, width: int = 440, *, inline: bool = False) -> SVG:
    """A histogram of the started attempts' durations, each bin stacked by outcome; the bins
    are log-spaced when the durations span more than a factor of 50."""
    ink = ink_colour(inline)
    durations = [
        (a.duration, a.outcome)
        for r in summary.results
        for a in r.attempt_log
        if a.started_at is not None
    ]
    height, plot_h = 200, 200 - _TOP - _BOTTOM
    title = "Attempt durations"
    if not durations:
        return _empty(width, title, "no attempt started", inline)
    lo = max(min(d for d, _ in durations), 1e-7)
    hi = max(max(d for d, _ in durations), lo * 1.001)
    log = hi / lo > _LOG_ABOVE
    a, b = (math.log10(lo), math.log10(hi)) if log else (0.0, hi)
    edges = [a + (b - a) * k / _BINS for k in range(_BINS + 1)]
    if log:
        edges = [10**e for e in edges]
    bins: list[Counter[str]] = [Counter() for _ in range(_BINS)]
    for d, outcome in durations:
        x = (math.log10(max(d, lo)) if log else d) - a
        bins[min(max(int(x / (b - a) * _BINS), 0), _BINS - 1)][outcome] += 1
    top = max(sum(c.values()) for c in bins)
    plot_w = width - _LEFT - _RIGHT
    bin_w = plot_w / _BINS
    scale = "log scale" if log else "linear"
    about = f"{len(durations):,} attempts from {duration_text(min(d for d, _ in durations))} "
    about += f"to {duration_text(hi)} ({scale})"
    out = [
        svg_open(width, height, title, f"{title}: {about}", inline),
        f'<text x="{_LEFT}" y="14" fill="{ink}">{escape(title)} ({scale})</text>',
    ]
    base = _TOP + plot_h
    for k, seen in enumerate(bins):
        y = float(base)
        tip = f"{duration_text(edges[k])} to {duration_text(edges[k + 1])}: "
        tip += ", ".join(f"{n:,} {o}" for o, n in seen.most_common()) or "none"
        parts = []
        for kind in sorted(seen, key=lambda o: OUTCOME_ORDER.index(o)):
            h = max(seen[kind] / top * plot_h, 2.0)
            y -= h
            parts.append(
                f'<rect x="{_LEFT + k * bin_w + 0.5:.1f}" y="{y:.1f}" width="{bin_w - 1:.1f}" '
                f'height="{h:.1f}" fill="{OUTCOME_COLOURS.get(kind, ink)}"/>'
            )
        if parts:
            out.append(f"<g><title>{escape(tip)}</title>{''.join(parts)}</g>")
    out.append(_frame(plot_w, plot_h, ink))
    for value, label in ticks(top, min(4, top), ""):
        y = base - value / top * plot_h
        out.append(
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="{ink}">{label}</text>'
        )
    for k in range(0, _BINS + 1, 6):
        anchor = "end" if k == _BINS else "middle"
        out.append(
            f'<text x="{_LEFT + k * bin_w:.1f}" y="{base + 16}" text-anchor="{anchor}" '
            f'fill="{ink}">{escape(duration_text(edges[k]) if k else _first(edges[0]))}</text>'
        )
    out.append("</svg>")
    return SVG("".join(out))


def _empty(width: int, title: str, why: str, inline: bool) -> SVG:
    """A plot with nothing to show: its title and why."""
    return SVG(
        svg_open(width, 40, title, f"{title}: {why}", inline)
        + f'<text x="{_LEFT}" y="24" fill="{ink_colour(inline)}">{escape(f"{title}: {why}")}</text>'
        "</svg>"
    )


def _first(edge: float) -> str:
    """The label of the axis's first edge (0 on a linear axis)."""
    return "0" if edge == 0 else duration_text(edge)


def _frame(plot_w: float, plot_h: float, ink: str) -> str:
    """The left and bottom axis lines of a plot."""
    x, y = _LEFT, _TOP + plot_h
    return (
        f'<line x1="{x}" y1="{_TOP}" x2="{x}" y2="{y}" stroke="{ink}"/>'
        f'<line x1="{x}" y1="{y}" x2="{x + plot_w}" y2="{y}" stroke="{ink}"/>'
    )


def utilisation_svg(summary: RunSummary, width: int = 440, *, inline: bool = False) -> SVG:
    """One horizontal bar per worker: its busy share of the run's duration."""
    ink = ink_colour(inline)
    workers = summary.telemetry.workers
    title = "Worker utilisation"
    if not workers:
        return _empty(width, title, "no worker ran", inline)
    row = max(8, min(20, 320 // len(workers)))
    left = 70
    plot_w = width - left - 48
    height = _TOP + len(workers) * row + 30
    mean = sum(w.utilisation for w in workers) / len(workers)
    about = f"{len(workers)} workers, busy {mean:.0%} of the run on average"
    out = [
        svg_open(width, height, title, f"{title}: {about}", inline),
        f'<text x="{left}" y="14" fill="{ink}">{escape(title)} (mean {mean:.0%})</text>',
    ]
    label_every = math.ceil(12 / row)
    for i, w in enumerate(workers):
        y = _TOP + i * row
        share = max(0.0, min(w.utilisation, 1.0))
        tip = f"worker {w.worker}: busy {duration_text(w.busy_time)} ({w.utilisation:.0%}), "
        tip += f"{w.attempts:,} attempts, pids {', '.join(str(p) for p in w.pids) or '-'}"
        bar_h = row - 4 if row > 10 else row - 2
        out.append(
            f"<g><title>{escape(tip)}</title>"
            f'<rect x="{left}" y="{y + 1}" width="{plot_w}" height="{bar_h}" fill="{ink}" '
            f'fill-opacity="0.15"/>'
            f'<rect x="{left}" y="{y + 1}" width="{plot_w * share:.1f}" height="{bar_h}" '
            f'fill="{_BUSY}"/></g>'
        )
        if i % label_every == 0:
            mid = y + 1 + bar_h / 2 + 4
            out.append(
                f'<text x="{left - 6}" y="{mid:.1f}" text-anchor="end" fill="{ink}">'
                f"worker {w.worker}</text>"
                f'<text x="{left + plot_w + 4}" y="{mid:.1f}" fill="{ink}">'
                f"{w.utilisation:.0%}</text>"
            )
    axis_y = _TOP + len(workers) * row + 2
    for value, label in ticks(1.0, 5, "%"):
        x = left + value * plot_w
        out.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="{ink}"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="{ink}">'
            f"{label}</text>"
        )
    out.append("</svg>")
    return SVG("".join(out))
