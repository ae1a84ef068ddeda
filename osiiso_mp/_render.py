"""HTML and SVG renderings of a :class:`~osiiso_mp.RunSummary`, for notebooks and reports.

Imported on first use by the summary's ``_repr_html_()``, ``_repr_pretty_()`` and
``timeline()``, so that importing osiiso_mp stays cheap. Standard library only; every piece of
user-provided text (names, messages, task and group ids) goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from ._errors import format_bytes

if TYPE_CHECKING:
    from ._results import Attempt, TaskResult
    from ._summary import RunSummary

__all__ = ["SVG", "pretty", "summary_html", "timeline_svg"]

OUTCOME_COLOURS = {
    "succeeded": "#2e9e44",
    "failed": "#d62728",
    "timed_out": "#ff8c00",
    "crashed": "#8e44ad",
    "cancelled": "#9e9e9e",
    "memory_exceeded": "#8b5a2b",
}
"""Fill colour of each attempt outcome, in the timeline and the HTML table."""

_STATUS_COLOURS = {"PASSED": "#2e9e44", "TIMED OUT": "#ff8c00"}
_ERROR_COLOUR = "#d62728"

_TABLE = "border-collapse:collapse;margin:4px 0 10px 0;font-size:13px"
_TH = "text-align:left;padding:2px 10px 2px 0;border-bottom:1px solid #ccc"
_TD = "text-align:left;padding:2px 10px 2px 0"


class SVG(str):
    """SVG markup: a plain ``str`` that Jupyter displays as an image."""

    __slots__ = ()

    def _repr_svg_(self) -> str:
        """The markup, for Jupyter's SVG display."""
        return str(self)


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
    """A self-contained HTML fragment (inline styles, no scripts) describing ``summary``:
    the status, the counters, the per-worker utilisation and the failures with messages."""
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
        ["Succeeded", str(summary.succeeded)],
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
    if t.workers:
        rows = []
        for w in t.workers:
            pct = max(0.0, min(w.utilisation, 1.0)) * 100
            bar = (
                '<div style="width:120px;height:10px;background:#eee;display:inline-block;'
                'vertical-align:middle;margin-right:6px">'
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
        parts.append(_table(["Worker", "PIDs", "Attempts", "Busy", "Utilisation"], rows))
    failures = summary.errors
    if failures:
        parts.append('<div style="font-weight:bold;margin-top:6px">Failures</div>')
        rows = []
        for r in failures:
            message = escape(r.message)
            rows.append(
                [
                    escape(r.name),
                    f"<code>{escape(r.task_id)}</code>",
                    escape(_group_text(r)),
                    str(r.attempts),
                    f'<pre style="margin:0;white-space:pre-wrap">{message}</pre>',
                ]
            )
        parts.append(_table(["Task", "Id", "Group", "Attempts", "Message"], rows))
    parts.append("</div>")
    return "".join(parts)


def _group_text(r: TaskResult) -> str:
    """The group id as display text (empty when ungrouped)."""
    return "" if r.group_id is None else str(r.group_id)


def pretty(summary: RunSummary, p: Any, cycle: bool) -> None:
    """IPython ``_repr_pretty_`` hook: the summary's report text."""
    p.text(repr(summary) if cycle else summary.report())


# Timeline geometry, in SVG user units (pixels).
_LEFT, _RIGHT, _TOP, _ROW, _BAR_H, _AXIS = 80, 20, 10, 24, 16, 40
_MIN_WIDTH = _LEFT + _RIGHT + 100


def timeline_svg(summary: RunSummary, width: int = 900) -> SVG:
    """An SVG Gantt chart of ``summary``'s attempts: one row per worker, one bar per attempt
    that started (``class="attempt"``), coloured by outcome, with a ``<title>`` tooltip
    ``"name #attempt outcome duration"``. Time 0 is the earliest attempt start."""
    if width < _MIN_WIDTH:
        raise ValueError(f"timeline width must be at least {_MIN_WIDTH}, got {width!r}")
    spans: list[tuple[TaskResult, Attempt, float, float]] = [
        (r, a, a.started_at, max(a.finished_at, a.started_at))
        for r in summary.results
        for a in r.attempt_log
        if a.started_at is not None
    ]
    head = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">'
    )
    if not spans:
        return SVG(
            head.format(w=width, h=40)
            + f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" fill="#666">'
            "no attempts</text></svg>"
        )
    t0 = min(s for _, _, s, _ in spans)
    span = max(max(f for _, _, _, f in spans) - t0, 1e-9)
    plot_w = width - _LEFT - _RIGHT
    rows = {w: i for i, w in enumerate(sorted({a.worker for _, a, _, _ in spans}))}
    height = _TOP + len(rows) * _ROW + _AXIS
    out = [head.format(w=width, h=height)]
    for wid, i in rows.items():
        y = _TOP + i * _ROW
        shade = "#f5f5f5" if i % 2 == 0 else "#ffffff"
        out.append(f'<rect x="{_LEFT}" y="{y}" width="{plot_w}" height="{_ROW}" fill="{shade}"/>')
        out.append(
            f'<text x="{_LEFT - 6}" y="{y + _ROW / 2 + 4:.1f}" text-anchor="end">'
            f"worker {wid}</text>"
        )
    for r, a, start, finish in spans:
        x = _LEFT + (start - t0) / span * plot_w
        w = max((finish - start) / span * plot_w, 1.0)
        bar_y = _TOP + rows[a.worker] * _ROW + (_ROW - _BAR_H) / 2
        title = escape(f"{r.name} #{a.number} {a.outcome} {a.duration:.3f}s")
        out.append(
            f'<rect class="attempt" x="{x:.2f}" y="{bar_y:.1f}" width="{w:.2f}" height="{_BAR_H}" '
            f'fill="{OUTCOME_COLOURS.get(a.outcome, "#000")}" stroke="#fff" stroke-width="0.5" '
            f'data-task-id="{escape(r.task_id)}"><title>{title}</title></rect>'
        )
    axis_y = _TOP + len(rows) * _ROW
    out.append(
        f'<line x1="{_LEFT}" y1="{axis_y}" x2="{_LEFT + plot_w}" y2="{axis_y}" stroke="#333"/>'
    )
    for k in range(5):
        x = _LEFT + plot_w * k / 4
        out.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{span * k / 4:.3f}s</text>'
        )
    legend_x = float(_LEFT)
    for outcome in dict.fromkeys(a.outcome for _, a, _, _ in spans):
        ly = axis_y + 28
        out.append(
            f'<rect x="{legend_x:.1f}" y="{ly}" width="10" height="10" '
            f'fill="{OUTCOME_COLOURS.get(outcome, "#000")}"/>'
        )
        out.append(f'<text x="{legend_x + 14:.1f}" y="{ly + 9}">{escape(outcome)}</text>')
        legend_x += 24 + 7 * len(outcome)
    out.append("</svg>")
    return SVG("".join(out))
