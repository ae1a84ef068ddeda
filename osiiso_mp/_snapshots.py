"""Snapshots of work under way, as the executor's queries return them.

* :class:`TaskInfo` -- an unfinished task (``TaskFuture.info()``).
* :class:`PoolStats` -- the executor now (``Executor.stats()``), one :class:`WorkerSnapshot`
  per worker slot.

Pure, immutable data, taken on the supervisor thread; finished tasks' records are in
:mod:`._results`.
"""

from __future__ import annotations

from collections.abc import Mapping
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

    The task counts take a map's items one by one. The counters run from the executor's
    start and never go down; the supervisor keeps them, so they agree with the records: a
    task is counted in ``succeeded``, ``failed`` or ``cancelled`` when its record is made.

    Attributes:
        workers: one :class:`WorkerSnapshot` per worker slot.
        pending: tasks queued to start (including those sent ahead to a busy worker).
        running: tasks running now.
        scheduled: tasks waiting for a delay, a start time or a retry backoff.
        completed: tasks ended so far, whatever their status: always ``succeeded + failed
            + cancelled`` (cancelled tasks are counted here too: read ``succeeded`` for the
            tasks that produced a value).
        succeeded, failed, cancelled: tasks ended so far with that status.
        retries: retries scheduled so far (an attempt failed and the task will run again).
        timeouts, crashes, memory_exceeded: attempts so far that ran past their
            ``timeout``, were lost with their worker, or were killed above ``max_rss``
            (outcomes ``timed_out``, ``crashed`` and ``memory_exceeded``), counted as they
            happen, whether their task then succeeds on a retry or fails. A map chunk
            running several items at once counts once, as the one attempt it is.

    Once the executor is idle (``pending``, ``running`` and ``scheduled`` 0), ``completed``
    is every task it took. (A task an ``AsyncExecutor`` parks past ``max_pending`` is
    taken when it gets its slot; one cancelled while parked never was, and is not
    counted.) :meth:`to_prometheus` renders the snapshot as Prometheus metrics.
    """

    workers: tuple[WorkerSnapshot, ...]
    pending: int
    running: int
    scheduled: int
    completed: int
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    retries: int = 0
    timeouts: int = 0
    crashes: int = 0
    memory_exceeded: int = 0

    def to_prometheus(
        self, prefix: str = "osiiso_mp", *, labels: Mapping[str, str] | None = None
    ) -> str:
        """The snapshot in the Prometheus text exposition format (version 0.0.4), for a
        ``/metrics`` endpoint: serve it with the content type
        ``text/plain; version=0.0.4; charset=utf-8``.

        Counters (``_total``): tasks ended by ``status``, retries, timeouts, crashes,
        memory kills, and per worker its restarts and finished attempts. Gauges: tasks
        pending (the queue depth), running and scheduled; workers by ``state``; per worker
        its resident memory in bytes, CPU percent, running tasks and pid. Every metric has
        its ``# HELP`` and ``# TYPE`` lines, and every name starts with ``prefix``;
        ``labels`` (say ``{"service": "api"}``) are added to every sample, their values
        escaped. docs/telemetry.md lists the metrics.

        Raises:
            ValueError: ``prefix`` is not a valid metric name, or a label name is not a
                valid label name (or is one the metrics use).
        """
        from ._prometheus import exposition

        return exposition(self, prefix, labels or {})
