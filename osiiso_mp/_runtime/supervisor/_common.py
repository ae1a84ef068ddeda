"""What the supervisor's parts share: timing constants, the log, and small helpers for
attempts and error messages (no state)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..._results import Attempt, Outcome
from ..protocol._buffers import blob_size

if TYPE_CHECKING:
    from .._task import Task
    from ..protocol._messages import TaskFinished
    from ._view import WorkerView

__all__ = [
    "ASYNC_GRACE",
    "INIT_FAILURES",
    "LIVENESS_INTERVAL",
    "RSS_INTERVAL",
    "USAGE_EVERY",
    "STOPPED_GRACE",
    "STOP_GRACE",
    "Cancelled",
    "duplicate_id",
    "log",
    "message_bytes",
    "message_of",
    "short_error",
    "task_suffix",
    "unreported_attempt",
]

log = logging.getLogger("osiiso_mp")

ASYNC_GRACE = 1.0  # seconds past an async timeout before the worker is killed as a backstop
STOP_GRACE = 2.0  # seconds a stopping worker gets before it is killed
INIT_FAILURES = 3  # consecutive initializer failures that break the executor
LIVENESS_INTERVAL = 0.5  # seconds between two checks for stopped workers
STOPPED_GRACE = 2.0  # a worker stopped this long is killed and replaced
RSS_INTERVAL = 0.1  # seconds between two samples of the workers' memory (max_rss)
USAGE_EVERY = 0.5  # seconds between the usage reports of a worker we cannot read


class Cancelled(Exception):
    """Carries a cancellation reason through the attempt bookkeeping."""


def unreported_attempt(
    task: Task,
    w: WorkerView,
    outcome: Outcome,
    error: str,
    now: float,
    *,
    exit_code: int | None = None,
    peak_rss: int = 0,
    rss_delta: int = 0,
) -> Attempt:
    """``task``'s attempt on worker ``w``, ended at ``now``
    without the worker's own figures for it (killed, crashed, cancelled, or a report that
    could not be read): no CPU time."""
    started = task.started_at
    return Attempt(
        number=len(task.attempts) + 1,
        worker=w.id,
        pid=w.pid,
        queued_for=max(0.0, (started if started is not None else now) - task.queued_since),
        started_at=started,
        finished_at=now,
        duration=0.0 if started is None else max(0.0, now - started),
        cpu_time=0.0,
        peak_rss=peak_rss,
        rss_delta=rss_delta,
        outcome=outcome,
        error=error,
        exit_code=exit_code,
        node=w.node,
    )


def message_bytes(msg: TaskFinished) -> int:
    """The size of a result as it came: its pickle and out-of-band buffers."""
    return blob_size(msg.payload) + sum(blob_size(b) for b in msg.buffers)


def short_error(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 200 characters (an attempt's error)."""
    text = message_of(exc)
    line = text.splitlines()[0] if text else ""
    name = type(exc).__name__
    out = f"{name}: {line}" if line else name
    return out if len(out) <= 200 else out[:197] + "..."


def message_of(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when even that raises."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def duplicate_id(task_id: str) -> ValueError:
    """The error for a ``task_id`` already in flight."""
    return ValueError(f"task_id {task_id!r} is already in flight; ids must be unique")


def task_suffix(task: Any) -> str:
    """`` (task 'name', id ...)``, to end a message about ``task``."""
    return f" (task {task.name!r}, id {task.task_id})"
