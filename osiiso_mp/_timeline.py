"""The SVG timeline of a run (``RunSummary.timeline()``, and the one in the HTML summary).

One row per worker, time running left to right from the earliest attempt start, on round
ticks. Up to :data:`AGGREGATE_ABOVE` started attempts, one bar per attempt (``class=
"attempt"``), at least :data:`MIN_BAR` pixels wide so that an attempt of a few microseconds
(a crash) still shows, failures drawn over successes, each with a ``<title>`` tooltip naming
the task. Above it, the run is binned in round time steps: per worker and bin, a band whose
height is the worker's busy share (``<g class="busy">``), stacked by the outcomes of that
time (every outcome but success at least 2 pixels tall), and a full-height mark where an
attempt crashed, timed out or went over its memory cap (``class="failures"``), so that the
picture stays a few thousand elements and well under 200 KB for any number of tasks. See
:mod:`._svgkit` for the theme rules.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING

from ._svgkit import (
    INK,
    LEGEND_ROW,
    MIN_BAR,
    OUTCOME_COLOURS,
    OUTCOME_ORDER,
    SVG,
    duration_text,
    ink_colour,
    legend,
    nice_step,
    svg_open,
    ticks,
)
from ._timeline_bins import bands

if TYPE_CHECKING:
    from ._results import Attempt, TaskResult
    from ._summary import RunSummary

__all__ = ["AGGREGATE_ABOVE", "MIN_BAR", "MIN_WIDTH", "timeline_svg"]

AGGREGATE_ABOVE = 2000
"""Above this many started attempts the timeline is binned in time, not drawn bar by bar."""
_LEFT, _RIGHT, _TOP, _AXIS = 76, 16, 26, 34
MIN_WIDTH = _LEFT + _RIGHT + 100
"""The narrowest timeline ``width`` accepted."""
_BIN_CELLS = 2400  # most worker-bin cells of a binned timeline
_Span = tuple["TaskResult", "Attempt", float, float]


def timeline_svg(summary: RunSummary, width: int = 900, *, inline: bool = False) -> SVG:
    """The timeline of ``summary``'s started attempts, ``width`` pixels wide at most (it
    scales down with its container); ``inline`` for one inside HTML (see :func:`svg_open`)."""
    ink = ink_colour(inline)
    if width < MIN_WIDTH:
        raise ValueError(f"timeline width must be at least {MIN_WIDTH}, got {width!r}")
    spans: list[_Span] = [
        (r, a, a.started_at, max(a.finished_at, a.started_at))
        for r in summary.results
        for a in r.attempt_log
        if a.started_at is not None
    ]
    if not spans:
        return SVG(
            svg_open(width, 40, "Run timeline", "Run timeline: no attempt started", inline)
            + f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" fill="{ink}">'
            "no attempts</text></svg>"
        )
    t0 = min(s for _, _, s, _ in spans)
    span = max(max(f for _, _, _, f in spans) - t0, 1e-6)
    workers = sorted({a.worker for _, a, _, _ in spans})
    row = max(8, min(24, 400 // len(workers)))
    plot_w = width - _LEFT - _RIGHT
    scale = plot_w / span
    counts: Counter[str] = Counter(a.outcome for _, a, _, _ in spans)
    ordered = [(o, counts[o]) for o in OUTCOME_ORDER if counts[o]]
    ordered += sorted((o, n) for o, n in counts.items() if o not in OUTCOME_COLOURS)
    axis_y = _TOP + len(workers) * row
    keys, key_rows = legend(_LEFT, width - _RIGHT, axis_y + _AXIS - 8, ordered, ink)
    height = axis_y + _AXIS + key_rows * LEGEND_ROW
    what = ", ".join(f"{n:,} {o.replace('_', ' ')}" for o, n in ordered)
    about = f"{len(spans):,} attempts on {len(workers)} workers over {duration_text(span)}"
    binned = len(spans) > AGGREGATE_ABOVE
    if binned:
        step = nice_step(span, max(20, min(plot_w // 3, _BIN_CELLS // len(workers))))
        caption = f"{about}, in {duration_text(step)} bins (band height: busy share)"
    else:
        caption = about
    out = [
        svg_open(width, height, "Run timeline", f"Run timeline: {about}: {what}.", inline),
        f'<text x="{_LEFT}" y="16" fill="{ink}">{escape(caption)}</text>',
    ]
    label_every = math.ceil(12 / row)
    for i, wid in enumerate(workers):
        y = _TOP + i * row
        if i % 2 == 0:
            out.append(
                f'<rect x="{_LEFT}" y="{y}" width="{plot_w}" height="{row}" '
                f'fill="{ink}" fill-opacity="0.08"/>'
            )
        if i % label_every == 0:
            out.append(
                f'<text x="{_LEFT - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end" '
                f'fill="{ink}">worker {wid}</text>'
            )
    rows = {w: _TOP + i * row for i, w in enumerate(workers)}
    if binned:
        out.extend(bands(spans, t0, step, (_LEFT, scale, row, max(row - 6, 5)), rows))
    else:
        out.extend(_bars(spans, t0, scale, rows, row))
    out.append(_axis(span, scale, axis_y, plot_w, ink))
    out.append(keys)
    out.append("</svg>")
    return SVG("".join(out))


def _bars(
    spans: list[_Span], t0: float, scale: float, rows: dict[int, int], row: int
) -> Iterable[str]:
    """One bar per attempt, successes first so that failures are drawn over them."""
    bar_h = max(row - 6, 5)
    spans = sorted(spans, key=lambda s: s[1].outcome != "succeeded")
    for r, a, start, finish in spans:
        w = max((finish - start) * scale, MIN_BAR)
        x = _LEFT + (start - t0) * scale
        y = rows[a.worker] + (row - bar_h) / 2
        tip = f"{r.name} #{a.number} {a.outcome} {_seconds(a.duration)}\ntask {r.task_id}"
        tip += f", worker {a.worker}" + ("" if a.pid is None else f", pid {a.pid}")
        if a.error:
            tip += "\n" + (a.error if len(a.error) <= 300 else a.error[:297] + "...")
        yield (
            f'<rect class="attempt" x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{bar_h}" '
            f'fill="{OUTCOME_COLOURS.get(a.outcome, INK)}" data-task-id="{escape(r.task_id)}">'
            f"<title>{escape(tip)}</title></rect>"
        )


def _seconds(d: float) -> str:
    """An attempt's duration as the tooltip shows it: ``0.100s``, or µs below a millisecond."""
    return f"{d:.3f}s" if d >= 1e-3 else f"{d * 1e6:.0f}µs"


def _axis(span: float, scale: float, y: float, plot_w: float, ink: str) -> str:
    """The time axis under the rows, with round ticks."""
    out = [
        f'<line x1="{_LEFT}" y1="{y}" x2="{_LEFT + plot_w}" y2="{y}" stroke="{ink}"/>',
    ]
    for value, label in ticks(span, max(2, int(plot_w // 90))):
        x = _LEFT + value * scale
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="{ink}"/>')
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{y + 16}" text-anchor="middle" fill="{ink}">'
            f"{escape(label)}</text>"
        )
    return "".join(out)
