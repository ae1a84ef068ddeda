"""A run's records in other tools' forms: a pandas table (``RunSummary.to_pandas()``) and a
Chrome trace (``RunSummary.to_chrome_trace()``) that Perfetto and ``chrome://tracing`` open.

Both take one row or one event per :class:`Attempt`; a task that never made an attempt
(cancelled, or failed at submission, before any worker took it) gets one row of its own
in the table and no event in the trace (it never ran anywhere). pandas is optional and
imported here, on first use; the trace is plain JSON-ready data.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from ._results import Attempt, TaskResult
from ._summary import _type_name

if TYPE_CHECKING:
    from ._summary import RunSummary

__all__ = ["ATTEMPT_COLUMNS", "attempt_rows", "chrome_trace", "data_frame", "write_trace"]

ATTEMPT_COLUMNS: tuple[str, ...] = (
    # the task's (repeated on each of its attempts)
    "task_id",
    "name",
    "group_id",
    "status",
    "attempts",
    "exception_type",
    "message",
    "created_at",
    # the attempt's (None where the task made no attempt)
    "attempt",
    "outcome",
    "worker",
    "pid",
    "node",
    "queued_for",
    "started_at",
    "finished_at",
    "duration",
    "cpu_time",
    "peak_rss",
    "rss_delta",
    "error",
    "exit_code",
)
"""The columns of ``RunSummary.to_pandas()``, in order."""

_INTS = ("attempt", "worker", "pid", "peak_rss", "rss_delta", "exit_code")  # nullable
_FLOATS = ("queued_for", "started_at", "finished_at", "duration", "cpu_time")
_NO_ATTEMPT = dict.fromkeys(ATTEMPT_COLUMNS[ATTEMPT_COLUMNS.index("attempt") :])


def attempt_rows(results: tuple[TaskResult, ...]) -> list[dict[str, Any]]:
    """One dict per attempt (keys: :data:`ATTEMPT_COLUMNS`), tasks in submission order and
    each task's attempts in order; one row with the attempt's keys None for a task that
    made none."""
    rows = []
    for r in results:
        task = {
            "task_id": r.task_id,
            "name": r.name,
            "group_id": r.group_id,
            "status": r.status,
            "attempts": r.attempts,
            "exception_type": None if r.exception is None else _type_name(r.exception),
            "message": r.message,
            "created_at": r.created_at,
        }
        if not r.attempt_log:
            rows.append(task | _NO_ATTEMPT)
            continue
        for a in r.attempt_log:
            rows.append(
                task
                | {
                    "attempt": a.number,
                    "outcome": a.outcome,
                    "worker": a.worker,
                    "pid": a.pid,
                    "node": a.node,
                    "queued_for": a.queued_for,
                    "started_at": a.started_at,
                    "finished_at": a.finished_at,
                    "duration": a.duration,
                    "cpu_time": a.cpu_time,
                    "peak_rss": a.peak_rss,
                    "rss_delta": a.rss_delta,
                    "error": a.error,
                    "exit_code": a.exit_code,
                }
            )
    return rows


def data_frame(summary: RunSummary) -> Any:
    """``summary`` as a ``pandas.DataFrame``, one row per attempt (see
    ``RunSummary.to_pandas``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "RunSummary.to_pandas() needs pandas, which is not installed: "
            "pip install 'osiiso_mp[pandas]' (or pip install pandas)"
        ) from exc
    frame = pd.DataFrame.from_records(attempt_rows(summary.results), columns=ATTEMPT_COLUMNS)
    # integers that may be missing stay integers (pandas' nullable Int64); times are floats
    # with NaN where missing; the rest keep their Python objects
    return frame.astype({**dict.fromkeys(_INTS, "Int64"), **dict.fromkeys(_FLOATS, "float64")})


# chrome://tracing's reserved colour names, by outcome (Perfetto picks its own)
_COLOURS = {
    "succeeded": "good",
    "failed": "terrible",
    "timed_out": "bad",
    "crashed": "black",
    "cancelled": "grey",
    "memory_exceeded": "yellow",
}
_PID = 1  # the trace's one process: the executor's pool, one thread (track) per worker


def chrome_trace(summary: RunSummary) -> dict[str, Any]:
    """``summary`` in the Trace Event Format (see ``RunSummary.to_chrome_trace``)."""
    results = summary.results
    attempts = [(r, a) for r in results for a in r.attempt_log]
    origin = min((r.created_at for r in results), default=0.0)
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": _PID, "tid": 0, "args": {"name": "osiiso_mp"}}
    ]
    pids: dict[int, dict[int, None]] = {}  # worker slot -> its processes, in order of use
    nodes: dict[int, dict[str, None]] = {}
    for _, a in sorted(attempts, key=lambda ra: _start(ra[1])):
        if a.pid is not None:
            pids.setdefault(a.worker, {})[a.pid] = None
        else:
            pids.setdefault(a.worker, {})
        if a.node:
            nodes.setdefault(a.worker, {})[a.node] = None
    for worker in sorted(pids):
        label = f"worker {worker}"
        if pids[worker]:
            label += f" (pid {', '.join(map(str, pids[worker]))})"
        events.append(
            {"ph": "M", "name": "thread_name", "pid": _PID, "tid": worker, "args": {"name": label}}
        )
        events.append(
            {
                "ph": "M",
                "name": "thread_sort_index",
                "pid": _PID,
                "tid": worker,
                "args": {"sort_index": worker},
            }
        )
    for r, a in attempts:
        args: dict[str, Any] = {
            "task_id": r.task_id,
            "attempt": a.number,
            "outcome": a.outcome,
            "status": r.status,
            "pid": a.pid,
            "queued_for_ms": a.queued_for * 1e3,
            "cpu_time_ms": a.cpu_time * 1e3,
            "peak_rss": a.peak_rss,
        }
        if a.node:
            args["node"] = a.node
        if a.error:
            args["error"] = a.error
        if a.exit_code is not None:
            args["exit_code"] = a.exit_code
        if r.group_id is not None:
            args["group_id"] = r.group_id if _scalar(r.group_id) else repr(r.group_id)
        event: dict[str, Any] = {
            "name": r.name or r.task_id,
            "cat": a.outcome,
            "pid": _PID,
            "tid": a.worker,
            "ts": _micros(_start(a) - origin),
            "cname": _COLOURS.get(a.outcome, "generic_work"),
            "args": args,
        }
        if a.started_at is None:  # never started: a mark where it was given up on
            event.update(ph="i", s="t", name=f"{event['name']} (not started)")
        else:
            event.update(ph="X", dur=_micros(a.duration))
        events.append(event)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "osiiso_mp",
            "status": summary.status_word,
            "total_submitted": summary.total_submitted,
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            "cancelled": summary.cancelled,
            "duration_s": summary.duration,
            "procs": summary.procs,
            "nodes": sorted({n for found in nodes.values() for n in found}),
        },
    }


def write_trace(trace: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``trace`` to ``path`` as JSON (UTF-8)."""
    import json

    with open(path, "w", encoding="utf-8") as f:
        json.dump(trace, f, allow_nan=False)


def _start(a: Attempt) -> float:
    """When the attempt began, or for one that never did, when it was given up on."""
    return a.finished_at if a.started_at is None else a.started_at


def _micros(seconds: float) -> float:
    """Seconds as microseconds, rounded to the nanosecond (the format's unit is 1 us)."""
    return round(seconds * 1e6, 3)


def _scalar(value: Any) -> bool:
    """Does ``value`` go into JSON as it is?"""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)
