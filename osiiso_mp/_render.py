"""The HTML rendering of a :class:`~osiiso_mp.RunSummary`, for notebooks and reports.

Imported on first use by the summary's ``_repr_html_()``, ``_repr_pretty_()`` and
``timeline()``, so that importing osiiso_mp stays cheap. Standard library only; every piece of
user-provided text (names, messages, task and group ids) goes through :func:`html.escape`.

The fragment has inline styles and no scripts: the status, the counters, the failures (a
table of each failed task for a few, grouped by kind for many, never more than
:data:`MAX_ROWS` rows of tasks, in a scrolling box), the timeline (:mod:`._timeline`), the
attempt-duration and utilisation plots (:mod:`._plots`), and the per-worker table. Colours
follow :mod:`._svgkit`'s theme rule: the SVGs take the page's text colour
(``currentColor``), backgrounds are translucent greys.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from ._errors import format_bytes
from ._failure_groups import GROUP_ABOVE, exception_type, group_failures, message_lines
from ._plots import duration_histogram_svg, utilisation_svg
from ._svgkit import OUTCOME_COLOURS, SVG
from ._timeline import timeline_svg

if TYPE_CHECKING:
    from ._results import TaskResult
    from ._summary import RunSummary

__all__ = [
    "MAX_KINDS",
    "MAX_ROWS",
    "OUTCOME_COLOURS",
    "SVG",
    "pretty",
    "summary_html",
    "timeline_svg",
]

MAX_ROWS = 50
"""The most failed tasks the HTML summary lists one by one."""
MAX_KINDS = 20
"""The most kinds of failure the HTML summary's grouped table shows."""

_STATUS_COLOURS = {"PASSED": "#2e9e44", "TIMED OUT": "#ff8c00"}
_ERROR_COLOUR = "#d62728"
_MESSAGE_CHARS = 500
_ID_CHARS = 8

_TABLE = "border-collapse:collapse;margin:4px 0 10px 0;font-size:13px"
_TH = "text-align:left;padding:2px 10px 2px 0;border-bottom:1px solid rgba(128,128,128,.5)"
_TD = "text-align:left;padding:2px 10px 2px 0;vertical-align:top;white-space:nowrap"
_PRE = "margin:0;white-space:pre-wrap;font-size:12px;background:none"
_HEAD = "font-weight:bold;margin-top:8px"
_SCROLL = "max-height:320px;overflow:auto"


def _table(headers: list[str] | None, rows: list[list[str]]) -> str:
    """An inline-styled HTML table; headers and cells are already-escaped HTML."""
    head = ""
    if headers:
        cells = "".join(f'<th style="{_TH}">{h}</th>' for h in headers)
        head = f"<thead><tr>{cells}</tr></thead>"
    body = "".join(
        "<tr>" + "".join(f'<td style="{_TD}">{c}</td>' for c in row) + "</tr>" for row in rows
    )
    return f'<table style="{_TABLE}">{head}<tbody>{body}</tbody></table>'


def summary_html(summary: RunSummary) -> str:
    """A self-contained HTML fragment (inline styles, no scripts) describing ``summary``."""
    t = summary.telemetry
    word = summary.status_word
    colour = _STATUS_COLOURS.get(word, _ERROR_COLOUR)
    parts = [
        '<div style="font-family:sans-serif;font-size:13px;line-height:1.4">',
        f'<div style="font-weight:bold;font-size:15px;color:{colour}">'
        f"Run Summary: {escape(word)}</div>",
    ]
    counters = [
        ["Total tasks", str(summary.total_submitted)],
        ["Succeeded", summary._succeeded_label()],
        ["Failed", str(summary.failed)],
        ["Cancelled", str(summary.cancelled)],
        ["Duration", f"{summary.duration:.3f}s"],
        ["Workers", str(summary.procs)],
        ["CPU time", f"{t.cpu_seconds:.3f}s"],
        ["Efficiency", f"{t.efficiency:.0%}"],
        ["Attempts", f"{t.attempts} ({t.retries} retries)"],
        ["Crashes / timeouts / memory", f"{t.crashes} / {t.timeouts} / {t.memory_exceeded}"],
        ["Respawns", str(t.respawns)],
        ["Peak RSS", format_bytes(t.peak_rss)],
    ]
    parts.append(_table(None, counters))
    parts.append(_failures_html(summary.errors))
    if t.attempts:
        parts.append(f'<div style="{_HEAD}">Timeline</div>')
        parts.append(timeline_svg(summary, inline=True))
        parts.append('<div style="display:flex;flex-wrap:wrap;gap:8px 24px;margin-top:8px">')
        plots = (
            duration_histogram_svg(summary, inline=True),
            utilisation_svg(summary, inline=True),
        )
        for plot in plots:
            parts.append(f'<div style="flex:1 1 320px;max-width:440px">{plot}</div>')
        parts.append("</div>")
    if t.workers:
        parts.append(_workers_html(summary))
    parts.append("</div>")
    return "".join(parts)


def _failures_html(failures: tuple[TaskResult, ...]) -> str:
    """The failures: grouped by kind first when there are many, then the failed tasks (at
    most :data:`MAX_ROWS`) in a scrolling box, collapsed when the kinds were shown."""
    if not failures:
        return ""
    parts = []
    many = len(failures) > GROUP_ABOVE
    if many:
        groups = group_failures(failures)
        parts.append(
            f'<div style="{_HEAD}">Failures: {len(failures):,} tasks, {len(groups):,} '
            "kinds (by exception type and message)</div>"
        )
        rows = []
        for g in groups[:MAX_KINDS]:
            note = " (messages vary; the first shown)" if g.varies else ""
            rows.append(
                [
                    f"<code>{escape(g.type_name)}</code>",
                    f"{len(g.records):,}",
                    _message_html(g.message) + escape(note),
                    _task_html(g.example),
                ]
            )
        rest = groups[MAX_KINDS:]
        if rest:
            more = sum(len(g.records) for g in rest)
            rows.append(["", "", f"... and {len(rest):,} more kinds ({more:,} tasks)", ""])
        parts.append(_table(["Exception", "Tasks", "Message", "Example"], rows))
    shown = failures[:MAX_ROWS]
    rows = [
        [
            escape(r.name),
            _id_html(r.task_id),
            f"<code>{escape(exception_type(r))}</code>",
            escape(_group_text(r)),
            str(r.attempts),
            _message_html(r.message),
        ]
        for r in shown
    ]
    if len(failures) > len(shown):
        left = len(failures) - len(shown)
        rows.append(["", "", "", "", "", f"... and {left:,} more (summary.errors has them all)"])
    table = _table(["Task", "Id", "Exception", "Group", "Attempts", "Message"], rows)
    if many:
        title = f"Failed tasks: the first {len(shown):,} of {len(failures):,}"
        if len(shown) == len(failures):
            title = f"Failed tasks ({len(failures):,})"
        parts.append(
            f'<details><summary style="cursor:pointer">{title}</summary>'
            f'<div style="{_SCROLL}">{table}</div></details>'
        )
    else:
        parts.append(f'<div style="{_HEAD}">Failures</div><div style="{_SCROLL}">{table}</div>')
    return "".join(parts)


def _message_html(message: str) -> str:
    """A failure message, cut to a few lines and characters, as a ``<pre>`` block."""
    text = "\n".join(message_lines(message, 6))
    if len(text) > _MESSAGE_CHARS:
        text = text[: _MESSAGE_CHARS - 3] + "..."
    return f'<pre style="{_PRE}">{escape(text)}</pre>'


def _id_html(task_id: str) -> str:
    """A task id, shortened to its first characters, the whole id in the tooltip."""
    short = task_id if len(task_id) <= _ID_CHARS + 1 else task_id[:_ID_CHARS] + "…"
    return f'<code title="{escape(task_id)}">{escape(short)}</code>'


def _task_html(r: TaskResult) -> str:
    """A task's name and short id."""
    return f"{escape(r.name)} {_id_html(r.task_id)}"


def _workers_html(summary: RunSummary) -> str:
    """The per-worker table (pids, attempts, busy time), open when there are few workers."""
    rows = []
    for w in summary.telemetry.workers:
        pct = max(0.0, min(w.utilisation, 1.0)) * 100
        bar = (
            '<div style="width:120px;height:10px;background:rgba(128,128,128,.25);'
            'display:inline-block;vertical-align:middle;margin-right:6px">'
            f'<div style="width:{pct:.1f}%;height:10px;background:#4c78a8"></div></div>'
        )
        rows.append(
            [
                str(w.worker),
                escape(", ".join(str(p) for p in w.pids)),
                str(w.attempts),
                f"{w.busy_time:.3f}s",
                f"{bar}{w.utilisation:.0%}",
            ]
        )
    table = _table(["Worker", "PIDs", "Attempts", "Busy", "Utilisation"], rows)
    open_ = " open" if len(rows) <= 8 else ""
    return (
        f'<details{open_} style="margin-top:8px"><summary style="cursor:pointer;{_HEAD}">'
        f'Workers ({len(rows)})</summary><div style="{_SCROLL}">{table}</div></details>'
    )


def _group_text(r: TaskResult) -> str:
    """The group id as display text (empty when ungrouped)."""
    return "" if r.group_id is None else str(r.group_id)


def pretty(summary: RunSummary, p: Any, cycle: bool) -> None:
    """IPython ``_repr_pretty_`` hook: the summary's report text."""
    p.text(repr(summary) if cycle else summary.report())
