"""The ledger: every task in flight, and what is kept of finished ones for lookups by id.

It owns the tables the supervisor's parts read: the unfinished tasks by ``seq`` and by id,
the map chunks under way by id prefix; the finished tasks and settled chunks kept for
``result_ttl`` seconds (oldest first, so expiry is a pop from the left); and the value
budget (:class:`.._retention.ValueBudget`) that bounds the values kept for ``run()`` and
lookups. Supervisor thread only (or any thread once the supervisor has stopped).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeVar

from ..._config import ExecutorConfig
from ..._results import Packed, TaskResult
from .._chunk import PREFIX_LEN, Chunk
from .._retention import IN_BATCH, IN_LOOKUPS, Holder, ValueBudget
from .._task import AS_KEPT, Task
from ._chunks import ChunkItem, ItemSink
from ._common import duplicate_id

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Ledger"]

_Kept = TypeVar("_Kept", Task, Chunk)  # what lookups by id keep, each with an expiry


class Ledger:
    """The tasks in flight and the finished ones kept for lookups (supervisor thread)."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.ttl = config.result_ttl
        self.tasks: dict[int, Task] = {}  # every unfinished task, by seq
        self.by_id: dict[str, Task] = {}  # every unfinished task of its own, by task_id
        # map chunks by id prefix: unsettled ones (their transport task), and settled ones
        # kept for lookups like records: prefix -> chunk (its .expiry on time.monotonic())
        self.live_chunks: dict[str, Task] = {}
        self.kept_chunks: OrderedDict[str, Chunk] = OrderedDict()
        # finished tasks for lookups by id, task_id -> task (its .expiry as above)
        self.finished: OrderedDict[str, Task] = OrderedDict()
        self._next_expiry = math.inf  # the earliest expiry in either: nothing is due before
        self.budget = ValueBudget(config.retain_bytes)  # values kept, within retain_bytes
        self.in_lookups = IN_LOOKUPS if self.ttl > 0 else 0
        # what stats() counts since the executor started. Tasks (map items one by one)
        # that ended, by status: their sum is the snapshot's ``completed``.
        self.ended = {"succeeded": 0, "failed": 0, "cancelled": 0}
        # attempts stopped for a timeout, lost with their worker, killed above max_rss (by
        # outcome), and retries scheduled; a map chunk's counts once, as it is one attempt
        self.lost = {"timed_out": 0, "crashed": 0, "memory_exceeded": 0}
        self.retries = 0

    # -- in flight -------------------------------------------------------------------------

    def admit(self, task: Task) -> None:
        """A task arrived (or an item split off a chunk became one)."""
        self.tasks[task.seq] = task
        if task.chunk is not None:
            self.live_chunks[task.chunk.prefix] = task

    def forget(self, task: Task) -> None:
        """``task`` is no longer in flight (finished, or a chunk's transport is over)."""
        self.tasks.pop(task.seq, None)
        if self.by_id.get(task.task_id) is task:
            del self.by_id[task.task_id]

    def check_unique(self, task_id: str) -> None:
        """Raise ValueError if a task with ``task_id`` is still in flight."""
        if isinstance(self.lookup(task_id), (Task, ChunkItem)):
            raise duplicate_id(task_id)

    # -- finished: kept for run() and lookups ----------------------------------------------

    def holds(self, opts: Any) -> int:
        """Who keeps a finished task's value: ``IN_BATCH`` unless it is detached,
        ``IN_LOOKUPS`` unless ``result_ttl`` is 0 (0: nobody, so it is not kept)."""
        return self.in_lookups if opts.detached else self.in_lookups | IN_BATCH

    def retain(
        self, task: Task, status: str, kept: Packed, kept_size: int, value: Any = AS_KEPT
    ) -> None:
        """Give the finished ``task`` its record, packed (``kept``; ``value``: its value,
        when ``kept`` holds it serialized); keep it for lookups by id for ``result_ttl``
        seconds, then forget it; count its value (``kept_size`` bytes) in the budget. (Its
        future is settled next: the batch finds the record first.)"""
        self.ended[status] += 1
        task.finished(kept, value)
        now = time.monotonic()
        if now >= self._next_expiry:  # (expire()'s own test, inline: once per task)
            self.expire(now)
        self._keep(self.finished, task.task_id, task, now)
        if kept_size:
            task.holds = self.holds(task.opts)
            self.budget.keep(task, kept_size)

    def keep_values(self, holder: Holder, opts: Any, size: int) -> None:
        """Count ``size`` more bytes of values that ``holder`` (a chunk) keeps."""
        holder.holds = self.holds(opts)
        if holder.holds:
            self.budget.keep(holder, size)

    def chunk_settled(self, task: Task) -> None:
        """The chunk ``task`` carried has settled: keep it for lookups like a record."""
        chunk = task.chunk
        assert chunk is not None
        if self.live_chunks.get(chunk.prefix) is task:
            del self.live_chunks[chunk.prefix]
        now = time.monotonic()
        self.expire(now)
        self._keep(self.kept_chunks, chunk.prefix, chunk, now)

    def let_go_batch(self, holders: Iterable[Holder]) -> None:
        """The batch no longer holds these values (``run()`` summarised them)."""
        self.budget.let_go_all(holders, IN_BATCH)

    def _keep(self, kept: OrderedDict[str, Any], key: str, item: Any, now: float) -> None:
        """Keep ``item`` (a finished :class:`Task` or a :class:`Chunk`: it has an ``expiry``)
        in ``kept`` under ``key`` for ``result_ttl`` seconds (0: not at all)."""
        if self.ttl > 0:
            old = kept.pop(key, None)  # an id reused after it finished: newest wins
            if old is not None:
                self.budget.let_go(old, IN_LOOKUPS)
            item.expiry = expiry = now + self.ttl
            kept[key] = item
            if expiry < self._next_expiry:
                self._next_expiry = expiry

    def expire(self, now: float) -> None:
        """Forget the records and chunks whose time to live has run out (a comparison
        with the earliest expiry when none has: this runs once per finished task)."""
        if now < self._next_expiry:
            return
        tasks = self._expire_from(self.finished, now)
        self._next_expiry = min(tasks, self._expire_from(self.kept_chunks, now))

    def _expire_from(self, kept: OrderedDict[str, _Kept], now: float) -> float:
        """Forget what ``kept`` holds past its expiry; the next expiry there (or inf)."""
        while kept:
            oldest = next(iter(kept.values()))
            if oldest.expiry > now:
                return oldest.expiry
            kept.popitem(last=False)
            self.budget.let_go(oldest, IN_LOOKUPS)
        return math.inf

    # -- reads -----------------------------------------------------------------------------

    def lookup(self, task_id: str) -> Task | TaskResult | ChunkItem | None:
        """The unfinished task or the retained record with ``task_id``, or for an item of a
        map chunk still under way, a :class:`ChunkItem`."""
        task = self.by_id.get(task_id)
        if task is not None:
            sink = task.fut
            if type(sink) is ItemSink:  # an item split off a chunk: the chunk answers
                return ChunkItem(sink.transport, sink.index)
            return task
        entry = self.finished.get(task_id)
        if entry is not None:
            return entry.records()[0] if entry.expiry > time.monotonic() else None
        prefix = task_id[:PREFIX_LEN]
        transport = self.live_chunks.get(prefix)
        if transport is not None:
            chunk = transport.chunk
            assert chunk is not None
            i = chunk.index_of(task_id)
            if i is None:
                return None
            return chunk.record(i) or ChunkItem(transport, i)
        kept = self.kept_chunks.get(prefix)
        if kept is None or kept.expiry <= time.monotonic():
            return None
        i = kept.index_of(task_id)
        return None if i is None else kept.record(i)

    def queue_size(self) -> int:
        """Tasks waiting to start: queued (sent ahead or not) and scheduled ones."""
        return sum(
            1 if t.chunk is None else t.chunk.n
            for t in self.tasks.values()
            if t.state in ("queued", "scheduled")
        )

    def counts(self) -> dict[str, int]:
        """Tasks pending (queued), running and scheduled now; tasks ended so far, in all
        (``completed``) and by status; attempts lost by outcome, and retries."""
        counts = {"pending": 0, "running": 0, "scheduled": 0}
        for t in self.tasks.values():
            key = "pending" if t.state == "queued" else t.state
            counts[key] = counts.get(key, 0) + (1 if t.chunk is None else t.chunk.n)
        ended = self.ended
        lost = self.lost
        counts.update(
            completed=sum(ended.values()),
            **ended,
            retries=self.retries,
            timeouts=lost["timed_out"],
            crashes=lost["crashed"],
            memory_exceeded=lost["memory_exceeded"],
        )
        return counts
