"""The batch of the next ``run()``: every task submitted since the previous one.

Each entry is a task submitted on its own (its ``Task``, which lets go of its future once
the task has finished and keeps its record) or a map chunk (its ``MapChunk``). ``run()``
takes the whole batch, waits for it, and summarises it; a batch nobody summarises (a server
that never calls ``run()``) is pruned of what finished more than ``result_ttl`` ago once it
holds 10,000 tasks, so that its memory stays bounded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._map_chunk import MapChunk
from ._results import TaskResult, run_span

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._config import ExecutorConfig
    from ._future import TaskFuture
    from ._progress import ProgressTracker
    from ._restored import Restored
    from ._runtime._retention import Holder
    from ._runtime._task import Task
    from ._runtime.supervisor import Supervisor
    from ._summary import RunSummary

    Entry: TypeAlias = Task | MapChunk | Restored  # what the batch holds: one per submission

__all__ = ["PRUNE_AT", "Run", "RunBatch", "must_complete"]

PRUNE_AT = 10_000  # a batch this long drops records older than result_ttl


@dataclass(slots=True)
class Run:
    """One ``run()`` in progress: its batch, and the futures of the entries that had not
    finished when it started (what it waits for, and cancels on a timeout)."""

    batch: list[Entry]
    futures: list[TaskFuture[Any] | MapChunk]
    respawns_before: int
    previous_policy: str | None
    tracker: ProgressTracker | None


class RunBatch:
    """The entries of the next ``run()``, in submission order (any thread)."""

    def __init__(self, sup: Supervisor, config: ExecutorConfig) -> None:
        self._sup = sup
        self._ttl = config.result_ttl
        self._procs = config.procs
        self._lock = threading.Lock()  # guards entries, _weight, _prune_at, _respawns
        self.entries: list[Entry] = []
        self._weight = 0  # the tasks in entries (a map chunk counts its items)
        self._prune_at = PRUNE_AT
        self._respawns = 0  # the supervisor's replacements when the last run ended

    def add(self, fut: TaskFuture[Any] | MapChunk, task: Task) -> None:
        """A task was submitted (a detached one is not part of any batch)."""
        if task.opts.detached:
            return
        entry = fut._in_batch(task)
        with self._lock:
            self.entries.append(entry)
            self._weight += entry.weight
            if self._weight >= self._prune_at:
                self._prune()

    def add_restored(self, entry: Restored) -> None:
        """Inputs a checkpoint had finished, in their place among the map's or group's
        tasks (detached ones are part of no batch)."""
        if entry._opts.detached:
            return
        with self._lock:
            self.entries.append(entry)
            self._weight += entry.weight
            if self._weight >= self._prune_at:
                self._prune()

    def _prune(self) -> None:
        """Bound the memory of a batch nobody summarises (a server never calling run()).

        Called with the lock held once the batch holds ``_prune_at`` tasks (a map chunk
        counts its items): records that finished more than ``result_ttl`` seconds ago are
        dropped from it. The threshold then doubles past what is left, so pruning costs
        amortised O(1) per task.
        """
        horizon = time.perf_counter() - self._ttl
        kept: list[Entry] = []
        dropped: list[Holder] = []
        for entry in self.entries:  # (_finished_before, inlined: a walk of the whole batch)
            finished = entry.finished_at
            if finished is not None and finished <= horizon:
                if entry.holder is not None:  # (restored inputs hold nothing of the budget)
                    dropped.append(entry.holder)
            else:
                kept.append(entry)
        if len(kept) != len(self.entries):  # (nothing dropped: the same weight)
            self._weight = sum(f.weight for f in kept)
        self.entries = kept
        self._prune_at = max(PRUNE_AT, 2 * self._weight)
        self._sup.batch_let_go(dropped)

    def take(self) -> tuple[list[Entry], int]:
        """The whole batch, for a ``run()`` (a new one begins), and the replacement count
        when the previous run ended."""
        with self._lock:
            batch, self.entries = self.entries, []
            self._weight = 0
            self._prune_at = PRUNE_AT
            return batch, self._respawns

    def restore(self, batch: list[Entry]) -> None:
        """A ``run()`` was interrupted: its batch goes back, first, for the next one."""
        with self._lock:
            self.entries[:0] = batch
            self._weight += sum(f.weight for f in batch)

    def summarise(self, run: Run, timed_out: bool, strict: bool) -> RunSummary:
        """The summary of ``run``'s batch, whose entries have finished; the executor lets
        go of their values (lookups by id may still keep them)."""
        from ._summary import RunSummary

        respawns = self._sup.replacements()
        with self._lock:
            self._respawns = respawns
        records: list[TaskResult] = []
        for entry in run.batch:
            if entry.done():  # every entry has finished, unless the executor broke
                records.extend(entry.records())
        holders: list[Holder] = [e.holder for e in run.batch if e.holder is not None]
        self._sup.batch_let_go(holders, wait=True)
        summary = RunSummary(
            results=tuple(records),
            duration=run_span(records),
            timed_out=timed_out,
            procs=self._procs,
            respawns=max(0, respawns - run.respawns_before),
        )
        if strict:
            summary.raise_for_errors()
        return summary


def must_complete(fut: TaskFuture[Any] | MapChunk) -> bool:
    """Is ``fut``'s task one that a run's timeout lets finish?"""
    task = fut._task
    return task is not None and task.opts.must_complete
