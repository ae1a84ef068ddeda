"""What the live view of ``progress="live"`` shows, rendered: pure functions, no I/O.

A :class:`LiveView` is one moment of a run: the tracker's counts, the throughput over the
last seconds, the pool's :class:`~osiiso_mp.PoolStats` (None before the first snapshot
or where none could be taken) and the last failure seen. :func:`live_html` draws it for a
notebook (an HTML block that reads on light and dark themes: text takes the page's
colour, and only the outcome colours are fixed); :func:`live_line` for a console, one
line. :mod:`._live` draws them a few times a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from .._errors import format_bytes

if TYPE_CHECKING:
    from .._snapshots import PoolStats, WorkerSnapshot
    from ._events import ProgressEvent

__all__ = ["MAX_WORKER_ROWS", "LiveView", "live_html", "live_line"]

MAX_WORKER_ROWS = 16
"""Workers listed one per row in the notebook view; the rest are summed up in a line."""

_OK = "#2e9e44"
_FAILED = "#d62728"
_MUTED = "#9e9e9e"
_STATE_COLOURS = {
    "busy": _OK,
    "idle": _MUTED,
    "starting": "#1f77b4",
    "retiring": "#ff8c00",
    "stopping": _FAILED,
}


@dataclass(frozen=True, slots=True)
class LiveView:
    """One moment of a run, as the live view shows it.

    Attributes:
        desc: the label (``"osiiso_mp run"``).
        event: the tracker's counts now.
        rate: tasks finished per second over the last seconds (None: too early to say).
        stats: the pool now, or None when no snapshot could be taken.
        last_failure: ``"Type: message (task name)"`` of the latest failure, or None.
    """

    desc: str
    event: ProgressEvent
    rate: float | None
    stats: PoolStats | None
    last_failure: str | None = None


def _counts(event: ProgressEvent) -> str:
    total = "?" if event.total is None else str(event.total)
    return f"{event.done}/{total}"


def _rate(rate: float | None) -> str:
    if rate is None:
        return ""
    return f"{rate:,.0f} tasks/s" if rate >= 10 else f"{rate:.1f} tasks/s"


def _busy(stats: PoolStats) -> tuple[int, int]:
    """Busy workers and all workers."""
    return sum(w.state == "busy" for w in stats.workers), len(stats.workers)


def live_line(view: LiveView, *, bar_width: int = 16) -> str:
    """The console's live line: the bar, the counts, throughput, queue, workers and memory.

    ``osiiso_mp run: |######          | 37/100 2 failed 145 tasks/s queue 12 busy 2/2
    rss 240 MiB 1.2s``
    """
    event = view.event
    parts = [f"{view.desc}:"]
    fraction = event.fraction
    if fraction is not None:
        filled = int(fraction * bar_width)
        parts.append("|" + "#" * filled + " " * (bar_width - filled) + "|")
    parts.append(_counts(event))
    if event.failed:
        parts.append(f"{event.failed} failed")
    if event.cancelled:
        parts.append(f"{event.cancelled} cancelled")
    if view.rate is not None:
        parts.append(_rate(view.rate))
    stats = view.stats
    if stats is not None:
        parts.append(f"queue {stats.pending + stats.scheduled}")
        busy, workers = _busy(stats)
        parts.append(f"busy {busy}/{workers}")
        rss = sum(w.rss for w in stats.workers)
        if rss:
            parts.append(f"rss {format_bytes(rss)}")
    parts.append(f"{event.elapsed:.1f}s")
    return " ".join(parts)


def _span(text: str, colour: str | None = None, bold: bool = False) -> str:
    style = []
    if colour is not None:
        style.append(f"color:{colour}")
    if bold:
        style.append("font-weight:600")
    attr = f' style="{";".join(style)}"' if style else ""
    return f"<span{attr}>{escape(text)}</span>"


def _bar(event: ProgressEvent) -> str:
    fraction = event.fraction
    if fraction is None:  # unknown total: an empty track with no fill
        fraction = 0.0
    done_pct = 100.0 * fraction
    failed_pct = 0.0
    if event.total:
        failed_pct = min(done_pct, 100.0 * (event.failed + event.cancelled) / event.total)
    ok_pct = done_pct - failed_pct
    return (
        '<div style="display:flex;height:8px;border-radius:4px;overflow:hidden;'
        'margin:4px 0;background:rgba(128,128,128,0.25)">'
        f'<div style="width:{ok_pct:.2f}%;background:{_OK}"></div>'
        f'<div style="width:{failed_pct:.2f}%;background:{_FAILED}"></div></div>'
    )


def _worker_row(worker: WorkerSnapshot) -> str:
    colour = _STATE_COLOURS.get(worker.state, _MUTED)
    current = ", ".join(task[:8] for task in worker.current[:2])
    if len(worker.current) > 2:
        current += f" +{len(worker.current) - 2}"
    cells = [
        str(worker.worker),
        "" if worker.pid is None else str(worker.pid),
        f'<span style="color:{colour}">&#9679;</span> {escape(worker.state)}',
        (
            f'<code title="{escape(", ".join(worker.current))}">{escape(current)}</code>'
            if current
            else ""
        ),
        str(worker.tasks_done),
        format_bytes(worker.rss) if worker.rss else "",
        f"{worker.cpu_percent:.0f}%",
        str(worker.restarts),
    ]
    return "<tr>" + "".join(f'<td style="padding:0 8px">{c}</td>' for c in cells) + "</tr>"


def _workers(stats: PoolStats) -> str:
    heads = ["worker", "pid", "state", "running", "done", "RSS", "CPU", "restarts"]
    head = "".join(f'<th style="padding:0 8px;text-align:left">{h}</th>' for h in heads)
    rows = [_worker_row(w) for w in stats.workers[:MAX_WORKER_ROWS]]
    rest = stats.workers[MAX_WORKER_ROWS:]
    if rest:
        busy = sum(w.state == "busy" for w in rest)
        rows.append(
            f'<tr><td colspan="8" style="padding:0 8px">... and {len(rest)} more workers '
            f"({busy} busy)</td></tr>"
        )
    return (
        '<table style="border-collapse:collapse;margin-top:4px;font-size:12px;'
        f'color:inherit;background:transparent"><tr>{head}</tr>{"".join(rows)}</table>'
    )


def live_html(view: LiveView) -> str:
    """The notebook's live view: a header of counts, a bar (successes green, failures
    red), the queue and workers in a line, a row per worker, and the last failure."""
    event = view.event
    header = [
        _span(view.desc, bold=True),
        _span(f"{_counts(event)} done"),
        _span(f"{event.succeeded} ok", _OK),
        _span(f"{event.failed} failed", _FAILED if event.failed else None),
        _span(f"{event.cancelled} cancelled"),
    ]
    if view.rate is not None:
        header.append(_span(_rate(view.rate)))
    header.append(_span(f"{event.elapsed:.1f} s"))
    if event.final:
        header.append(_span("finished", bold=True))
    parts = [" &middot; ".join(header), _bar(event)]
    stats = view.stats
    if stats is not None:
        busy, workers = _busy(stats)
        rss = sum(w.rss for w in stats.workers)
        pool = (
            f"queue: {stats.pending} waiting, {stats.scheduled} scheduled, "
            f"{stats.running} running &middot; workers: {busy} of {workers} busy"
        )
        if rss:
            pool += f" &middot; RSS {escape(format_bytes(rss))} in all"
        parts.append(f"<div>{pool}</div>")
        parts.append(_workers(stats))
    if view.last_failure is not None:
        parts.append(
            f'<div style="margin-top:4px">last failure: {_span(view.last_failure, _FAILED)}</div>'
        )
    label = escape(f"{view.desc}: {_counts(event)} done, {event.failed} failed")
    return (
        f'<div class="osiiso-mp-live" role="status" aria-label="{label}" '
        'style="font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;'
        'line-height:1.5;max-width:760px;color:inherit">' + "".join(parts) + "</div>"
    )
