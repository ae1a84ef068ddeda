"""Snapshots of work under way, as the executor's queries return them.

* :class:`TaskInfo` -- an unfinished task (``TaskFuture.info()``).
* :class:`PoolStats` -- the executor now (``Executor.stats()``), one :class:`WorkerSnapshot`
  per worker slot.

Pure, immutable data, taken on the supervisor thread; finished tasks' records are in
:mod:`._results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PoolStats", "TaskInfo", "WorkerSnapshot"]


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of an unfinished task, as ``TaskFuture.info()`` returns it.

    Attributes:
        task_id: the task's unique id.
        name: the task's name.
        fn_name: the qualified name of the task's callable.
        args, kwargs: the arguments it was submitted with.
        enqueue_time: when it was submitted, in epoch milliseconds.
        tries: attempts picked up so far, the running one included (as in ArdiQ: 1 while
            the first attempt runs, 1 while the task waits for its retry, 2 during the
            second attempt).
        status: ``"queued"``, ``"scheduled"`` or ``"running"``.
        scheduled_at: when a scheduled task becomes due (epoch milliseconds), else None.
        worker_pid: the pid of the worker running it, else None.
    """

    task_id: str
    name: str
    fn_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueue_time: int
    tries: int
    status: str
    scheduled_at: int | None
    worker_pid: int | None


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """One worker slot in a live :class:`PoolStats` snapshot.

    Attributes:
        worker: the slot's id (stable across respawns).
        pid: the current process, or None while none is running in the slot.
        state: ``"starting"``, ``"idle"``, ``"busy"``, ``"retiring"`` (finishing its last
            tasks before recycling) or ``"stopping"`` (killed or exiting).
        current: ids of the tasks it is running now.
        tasks_done: attempts the current process has finished.
        rss: its resident memory in bytes (0 when it could not be read).
        cpu_percent: its CPU use since the previous ``stats()`` call (0.0 on the first).
        restarts: how many times the slot's process was replaced.
    """

    worker: int
    pid: int | None
    state: str
    current: tuple[str, ...]
    tasks_done: int
    rss: int
    cpu_percent: float
    restarts: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A live snapshot of an executor, as ``Executor.stats()`` returns it.

    Attributes:
        workers: one :class:`WorkerSnapshot` per worker slot.
        pending: tasks queued to start (including those sent ahead to a busy worker).
        running: tasks running now.
        scheduled: tasks waiting for a delay, a start time or a retry backoff.
        completed: tasks finished since the executor started.
    """

    workers: tuple[WorkerSnapshot, ...]
    pending: int
    running: int
    scheduled: int
    completed: int
