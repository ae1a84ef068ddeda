"""The binned timeline of a large run (:mod:`._timeline` above ``AGGREGATE_ABOVE`` attempts).

Time is cut into round bins. Per worker and bin, a band as tall as the worker's busy share,
split by the outcomes of that busy time (every outcome but success at least 2 pixels tall,
so that one failure among thousands of successes still shows). Bands are drawn as one
``<path class="busy">`` per worker and outcome, neighbouring bins of the same shape merged,
with a ``<title>`` of the worker's counts: the markup grows with the number of bins, never
with the number of tasks. Where an attempt crashed, timed out or went over its memory cap,
a full-height mark at least :data:`~._svgkit.MIN_BAR` wide (``class="failures"``), with an
example task in its tooltip (one path per worker and outcome when there are very many).
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import TYPE_CHECKING

from ._svgkit import INK, MIN_BAR, OUTCOME_COLOURS, OUTCOME_ORDER, duration_text

if TYPE_CHECKING:
    from ._results import Attempt, TaskResult

__all__ = ["EVENTS", "bands"]

EVENTS = frozenset({"crashed", "timed_out", "memory_exceeded"})
"""The outcomes marked in full height: the worker was lost (or the attempt stopped)."""
_MARKS = 100  # the most event marks drawn one by one, each with its own tooltip
_Span = tuple["TaskResult", "Attempt", float, float]
_Cell = list[float]  # x, y, width, height of one merged run of bins


def bands(
    spans: list[_Span], t0: float, step: float, geometry: tuple[float, float, int, int],
    rows: dict[int, int],
) -> list[str]:  # fmt: skip
    """The markup of the bands and marks; ``geometry`` is (left, pixels per second, row
    height, bar height); ``rows`` maps each worker to its row's top."""
    left, scale, row, bar_h = geometry
    busy: dict[tuple[int, int], dict[str, float]] = {}
    count: Counter[tuple[int, str]] = Counter()
    events: dict[tuple[int, int, str], list[TaskResult]] = {}
    for r, a, start, finish in spans:
        first = int((start - t0) / step)
        for b in range(first, int((finish - t0) / step) + 1):
            lo, hi = t0 + b * step, t0 + (b + 1) * step
            share = busy.setdefault((a.worker, b), {})
            share[a.outcome] = share.get(a.outcome, 0.0) + max(
                min(finish, hi) - max(start, lo), 1e-9
            )
        count[(a.worker, a.outcome)] += 1
        if a.outcome in EVENTS:
            events.setdefault((a.worker, first, a.outcome), []).append(r)
    bin_w = step * scale
    cells: dict[tuple[int, str], list[_Cell]] = {}
    seconds: dict[tuple[int, str], float] = {}
    for (wid, b), by_outcome in sorted(busy.items()):
        base = rows[wid] + (row - bar_h) / 2 + bar_h
        height = max(bar_h * min(sum(by_outcome.values()) / step, 1.0), 2.0)
        y = base
        for outcome, h in _stack(by_outcome, height, bar_h):
            seconds[(wid, outcome)] = seconds.get((wid, outcome), 0.0) + by_outcome[outcome]
            h = round(h * 2) / 2  # half pixels: neighbouring bins of one shape merge
            if h <= 0:
                continue
            y -= h
            x = left + b * bin_w
            mine = cells.setdefault((wid, outcome), [])
            if mine and abs(mine[-1][0] + mine[-1][2] - x) < 1e-6 and mine[-1][1:4:2] == [y, h]:
                mine[-1][2] += bin_w
            else:
                mine.append([x, y, bin_w, h])
    out = []
    for (wid, outcome), runs in sorted(cells.items(), key=lambda kv: (_rank(kv[0][1]), kv[0])):
        d = "".join(f"M{x:.1f} {y:.1f}h{w:.1f}v{h:.1f}h-{w:.1f}z" for x, y, w, h in runs)
        tip = f"worker {wid}: {count[(wid, outcome)]:,} {outcome} "
        tip += f"(busy {duration_text(seconds[(wid, outcome)])})"
        out.append(
            f'<path class="busy" fill="{OUTCOME_COLOURS.get(outcome, INK)}" d="{d}">'
            f"<title>{escape(tip)}</title></path>"
        )
    out.extend(_marks(events, step, (left, bin_w, row, bar_h), rows))
    return out


def _marks(
    events: dict[tuple[int, int, str], list[TaskResult]], step: float,
    geometry: tuple[float, float, int, int], rows: dict[int, int],
) -> list[str]:  # fmt: skip
    """Full-height marks where attempts crashed, timed out or exceeded their memory cap."""
    left, bin_w, row, bar_h = geometry
    w = max(bin_w, MIN_BAR)
    if len(events) <= _MARKS:
        out = []
        for (wid, b, outcome), records in sorted(events.items()):
            r = records[0]
            note = f"{len(records):,} {outcome} on worker {wid} near {duration_text(b * step)}"
            note += f", e.g. {r.name} (task {r.task_id})"
            out.append(
                f'<rect class="failures" x="{left + b * bin_w:.2f}" '
                f'y="{rows[wid] + (row - bar_h) / 2:.1f}" width="{w:.2f}" height="{bar_h}" '
                f'fill="{OUTCOME_COLOURS.get(outcome, INK)}" data-task-id="{escape(r.task_id)}">'
                f"<title>{escape(note)}</title></rect>"
            )
        return out
    paths: dict[tuple[int, str], list[str]] = {}
    totals: Counter[tuple[int, str]] = Counter()
    for (wid, b, outcome), records in sorted(events.items()):
        y = rows[wid] + (row - bar_h) / 2
        paths.setdefault((wid, outcome), []).append(
            f"M{left + b * bin_w:.1f} {y:.1f}h{w:.1f}v{bar_h}h-{w:.1f}z"
        )
        totals[(wid, outcome)] += len(records)
    return [
        f'<path class="failures" fill="{OUTCOME_COLOURS.get(outcome, INK)}" d="{"".join(d)}">'
        f"<title>worker {wid}: {totals[(wid, outcome)]:,} {outcome}</title></path>"
        for (wid, outcome), d in paths.items()
    ]


def _stack(seconds: dict[str, float], height: float, most: float) -> list[tuple[str, float]]:
    """The segments of a band ``height`` tall, bottom first: each outcome's share of the busy
    ``seconds``, every outcome but success at least 2 pixels, success giving way so that the
    band stays within ``most``."""
    total = sum(seconds.values())
    out = [(o, height * seconds[o] / total) for o in sorted(seconds, key=_rank)]
    out = [(o, h if o == "succeeded" else max(h, 2.0)) for o, h in out]
    over = sum(h for _, h in out) - most
    if over > 0 and out[0][0] == "succeeded":
        out[0] = ("succeeded", max(out[0][1] - over, 0.0))
    return out


def _rank(outcome: str) -> int:
    """An outcome's place in a stacked band (succeeded at the bottom)."""
    return OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else len(OUTCOME_ORDER)
