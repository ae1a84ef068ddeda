"""Figures derived from the attempts of a run: :class:`RunTelemetry` (``RunSummary.telemetry``)
and its per-worker :class:`WorkerStats`.

Computed once per summary, on first use, from the records alone (docs/telemetry.md says
what each figure means). Pure, immutable data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._results import Attempt, TaskResult

__all__ = ["RunTelemetry", "WorkerStats"]

_SLOWEST = 5


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What one worker slot did during a run.

    Attributes:
        worker: the worker id.
        pids: the process ids that served this slot, in order of first use (several when
            the worker was respawned).
        attempts: attempts dispatched to it (started or not).
        busy_time: summed duration of its attempts that started, in seconds.
        utilisation: ``busy_time`` / run duration (0.0 when the duration is 0).
    """

    worker: int
    pids: tuple[int, ...]
    attempts: int
    busy_time: float
    utilisation: float


@dataclass(frozen=True, slots=True)
class RunTelemetry:
    """Figures computed from the attempts of a run (:attr:`RunSummary.telemetry`).

    Attributes:
        cpu_seconds: CPU seconds of every attempt, summed.
        efficiency: ``cpu_seconds / (duration * procs)``; 0.0 when that denominator is 0.
        attempts: attempts made, all tasks together.
        retries: attempts beyond each task's first, summed.
        crashes, timeouts, memory_exceeded: attempts with outcome ``crashed``,
            ``timed_out`` and ``memory_exceeded``.
        respawns: workers started to replace others during the run.
        peak_rss: the highest ``peak_rss`` of any attempt, in bytes (0 when none).
        workers: per-worker figures, sorted by worker id.
        slowest: up to five tasks that started, by duration, slowest first.
    """

    cpu_seconds: float
    efficiency: float
    attempts: int
    retries: int
    crashes: int
    timeouts: int
    memory_exceeded: int
    respawns: int
    peak_rss: int
    workers: tuple[WorkerStats, ...]
    slowest: tuple[TaskResult, ...]

    @classmethod
    def build(
        cls, results: Iterable[TaskResult], duration: float, procs: int, respawns: int
    ) -> RunTelemetry:
        """Compute the telemetry of ``results``, a run of ``duration`` seconds on ``procs``."""
        results = tuple(results)
        log = [a for r in results for a in r.attempt_log]
        cpu = sum(a.cpu_time for a in log)
        capacity = duration * procs
        # Chronological order, so that each worker's pids come out in order of first use.
        log.sort(key=lambda a: a.finished_at if a.started_at is None else a.started_at)
        per_worker: dict[int, list[Attempt]] = {}
        for a in log:
            per_worker.setdefault(a.worker, []).append(a)
        workers = []
        for wid in sorted(per_worker):
            mine = per_worker[wid]
            busy = sum(a.duration for a in mine if a.started_at is not None)
            pids = tuple(dict.fromkeys(a.pid for a in mine if a.pid is not None))
            util = busy / duration if duration > 0 else 0.0
            workers.append(WorkerStats(wid, pids, len(mine), busy, util))
        started = [r for r in results if r.started_at is not None]
        slowest = sorted(started, key=lambda r: r.duration, reverse=True)[:_SLOWEST]
        return cls(
            cpu_seconds=cpu,
            efficiency=cpu / capacity if capacity > 0 else 0.0,
            attempts=sum(r.attempts for r in results),
            retries=sum(max(r.attempts - 1, 0) for r in results),
            crashes=sum(a.outcome == "crashed" for a in log),
            timeouts=sum(a.outcome == "timed_out" for a in log),
            memory_exceeded=sum(a.outcome == "memory_exceeded" for a in log),
            respawns=respawns,
            peak_rss=max((a.peak_rss for a in log), default=0),
            workers=tuple(workers),
            slowest=tuple(slowest),
        )
