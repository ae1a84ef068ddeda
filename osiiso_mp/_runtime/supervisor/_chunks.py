"""Map chunks: how the items of a chunk end, together or one by one.

A chunk is one task carrying a callable and many argument tuples, whose items keep their own
ids and records (:mod:`.._chunk`). When its worker reports it, the items that succeeded end
compactly; a failed item leaves the chunk as a task of its own (retried or finished); items
the worker did not run (it stops a chunk whose values grow large) go on their own too. A
chunk lost with its worker becomes one announced task per item, so that the one that
crashes again is named; a chunk cancelled or refused ends every item that has not. The
chunk settles once every item has ended; until then its map's reader may take the items
that have (``MapChunk._advance``). Supervisor thread only.
"""

from __future__ import annotations

import itertools
import pickle
import time
from array import array
from typing import TYPE_CHECKING, Any

from ..._errors import SerializationError as _SerializationError
from .._retention import StoredValue
from .._task import Task, task_info
from ..protocol._buffers import release
from ..protocol._serialize import dumps_task, rebuild_exception
from ._common import short_error, unreported_attempt

if TYPE_CHECKING:
    from ..._results import Attempt, TaskResult
    from ..._snapshots import TaskInfo
    from ..protocol._messages import ChunkFinished
    from ._actor import Supervisor
    from ._view import WorkerView

__all__ = ["ChunkItem", "ChunkOutcomes", "ItemSink"]


class ChunkOutcomes:
    """Ends the items of map chunks (supervisor thread)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self._split_seqs = itertools.count(-1, -1)  # items split off chunks go first
        self._shared = sup.caps.shared_memory

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        sup = self.sup
        self.ledger = sup.ledger
        self.dispatch = sup.dispatch
        self.attempts = sup.attempts
        self.outcomes = sup.outcomes

    def on_chunk_finished(self, w: WorkerView, msg: ChunkFinished) -> None:
        """A chunk ran: its items that succeeded end here, compactly; each failed item
        becomes a task of its own, retried or finished as a single task would be. Items
        the worker did not run (it stops a chunk whose values grow large) go on their own
        too, so that their values come, and wait for the map's reader, one at a time."""
        task = w.sent.get(msg.seq)
        if task is None:
            return
        chunk = task.chunk
        assert chunk is not None
        self.dispatch.detach(w, task)
        ran = len(msg.clock) // 8 - 1  # the items the worker ran (clock: one more reading)
        w.done += ran
        if task.abandoned:
            return
        try:
            values, errors = pickle.loads(msg.payload, buffers=msg.buffers)
        except BaseException as exc:
            err = _SerializationError(
                "result",
                type(exc).__name__,
                f"unpickling failed in the parent: {exc}",
                name=task.name,
                task_id=task.task_id,
            )
            task.attempts += (
                unreported_attempt(
                    task,
                    w,
                    "failed",
                    short_error(err),
                    time.perf_counter(),
                    peak_rss=msg.peak_rss,
                    rss_delta=msg.rss_delta,
                ),
            )
            self.attempts.after_failure(task, err)
            return
        clock: array[float] = array("d")
        clock.frombytes(msg.clock)
        cpu: array[float] = array("d")
        cpu.frombytes(msg.cpu)
        if ran:
            self.dispatch.estimates.observe(chunk.key, (clock[-1] - clock[0]) / ran)
        stored = StoredValue(msg.payload, msg.buffers)
        chunk.ran(
            stored,
            clock,
            cpu,
            worker=w.id,
            pid=w.pid,
            node=w.node,
            peak_rss=msg.peak_rss,
            rss_delta=msg.rss_delta,
            queued_since=task.queued_since,
        )
        flow = task.flow
        if flow is None or not flow.reader_gone:  # the values go to the map reading them
            if ran < chunk.n:
                values.extend([None] * (chunk.n - ran))
            task.fut._deliver(values)
            if flow is not None:
                self.dispatch.delivered(flow, task.fut, stored.nbytes)
        del values
        self.ledger.keep_values(chunk, chunk.opts, stored.nbytes)
        self._end_transport(task)
        self.ledger.ended["succeeded"] += ran - len(errors)
        chunk.busy = True  # not settled before every failed item is handled
        for i in sorted(errors):  # each is retried, or finished and handed to the chunk
            error = rebuild_exception(errors[i])
            item = self._split_item(task, i, (chunk.attempt(i, "failed", short_error(error)),))
            self.attempts.after_failure(item, error)
        for i in range(ran, chunk.n):  # not run: each goes on its own, where the chunk was
            # (its seq and the next task's are SEQ_STEP apart), so that the chunk a map reads
            # first completes first, and values wait for their reader as little as they can
            item = self._split_item(task, i, (), seq=task.seq + 1 + i)
            if item.error is not None:
                self.outcomes.finish_failed(item, item.error)
            else:
                self.dispatch.enqueue(item)
        chunk.busy = False
        self._settle_if_done(task)

    def _end_transport(self, task: Task) -> None:
        """A chunk's transport task is over (its items may live on as tasks of their own)."""
        task.state = "complete"
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        self.ledger.tasks.pop(task.seq, None)
        release((task.payload, *task.buffers))
        if task.flow is not None:
            self.dispatch.ended_in_flow(task.flow, task.seq)
        task.payload = b""
        task.buffers = ()

    def _split_item(
        self, transport: Task, i: int, attempts: tuple[Attempt, ...], *, seq: int | None = None
    ) -> Task:
        """Item ``i`` of a chunk becomes a task of its own, with the attempts it made in the
        chunk: it is retried, or finished, as a single task; its record goes to the chunk.
        It goes before every task submitted, the last split first, unless ``seq`` says
        where.

        Its payload is pickled again, from the callable and arguments ``map`` received.
        """
        chunk = transport.chunk
        assert chunk is not None and chunk.args is not None
        error: BaseException | None = None
        try:
            payload, buffers = dumps_task(chunk.fn, chunk.args[i], {}, shared=self._shared)
        except _SerializationError as exc:
            payload, buffers = b"", ()
            error = exc
        item = Task.of_chunk(
            chunk,
            seq=next(self._split_seqs) if seq is None else seq,
            fut=ItemSink(self, transport, i),
            payload=payload,
            buffers=buffers,
            enqueue_ms=transport.enqueue_ms,
            item=i,
            error=error,
        )
        item.attempts = attempts
        item.first_started_at = next(
            (a.started_at for a in attempts if a.started_at is not None), None
        )
        item.queued_since = time.perf_counter()
        item.cancel_reason = transport.cancel_reason
        flow = item.flow = transport.flow
        if flow is not None:
            flow.track(item.seq)
        chunk.split[i] = item
        self.ledger.tasks[item.seq] = item
        self.ledger.by_id[item.task_id] = item
        return item

    def split_chunk(self, task: Task) -> None:
        """A chunk was lost with its worker, at an item nobody knows: every item becomes a
        task of its own, announced, so that a crash it causes again is put down to it."""
        chunk = task.chunk
        assert chunk is not None
        self._end_transport(task)
        for i in range(chunk.n):
            item = self._split_item(task, i, ())
            item.suspect = True
            if item.error is not None:
                self.outcomes.finish_failed(item, item.error)
            else:
                self.dispatch.enqueue(item)
        self._settle_if_done(task)

    def item_settled(
        self,
        transport: Task,
        i: int,
        record: TaskResult,
        kept: TaskResult,
        size: int,
        flow_bytes: int = 0,
    ) -> None:
        """An item split off a chunk has its record (from ``finish``, through its sink):
        the chunk keeps ``kept`` (its value stored, ``size`` bytes), the value itself goes
        to the map reading the chunk."""
        chunk = transport.chunk
        assert chunk is not None
        chunk.split.pop(i, None)
        chunk.outcome[i] = kept
        flow = transport.flow
        if record.status == "succeeded" and (flow is None or not flow.reader_gone):
            transport.fut._deliver_item(i, record.value)
            if flow is not None:
                self.dispatch.delivered(flow, transport.fut, flow_bytes)
        if size:
            self.ledger.keep_values(chunk, chunk.opts, size)
        self._settle_if_done(transport)

    def end_chunk(self, task: Task, status: str, exc: BaseException | None, message: str) -> None:
        """A chunk ends as a whole (cancelled, refused, failed before its items ran): every
        item without an ending gets this one, with the chunk's attempts."""
        chunk = task.chunk
        assert chunk is not None
        self._end_transport(task)
        finished = task.attempts[-1].finished_at if task.attempts else time.perf_counter()
        self.ledger.ended[status] += chunk.end_all(
            status, exc=exc, message=message, attempts=task.attempts, finished_at=finished
        )
        self._settle_if_done(task)
        outcomes = self.outcomes
        if status == "failed" and outcomes.fail_policy == "fail_first":
            outcomes.trip_fail_first(task)
        self.sup.maybe_finish_shutdown()

    def _settle_if_done(self, task: Task) -> None:
        """Settle the chunk ``task`` carries once every item has ended: its transport is
        over, no item lives on as a task of its own, and no failed item is being handed
        out. Then keep it for lookups, and wake its reader."""
        chunk = task.chunk
        assert chunk is not None
        if task.state != "complete" or chunk.settled or chunk.busy:
            return
        if chunk.split:  # items run on their own: those that have ended may be read now
            task.fut._advance()
            return
        chunk.settle(time.perf_counter())
        self.ledger.chunk_settled(task)
        task.fut._settle_chunk()
        self.sup.maybe_finish_shutdown()


class ChunkItem:
    """An item of a map chunk that is still under way, as lookups find it: its chunk's
    transport task and its index."""

    __slots__ = ("index", "transport")

    def __init__(self, transport: Task, index: int) -> None:
        self.transport = transport
        self.index = index

    @property
    def state(self) -> str:
        """The item's state: its own task's when it left the chunk, else its chunk's."""
        chunk = self.transport.chunk
        assert chunk is not None
        return (chunk.split.get(self.index) or self.transport).state

    def info(self) -> TaskInfo | None:
        """A :class:`TaskInfo` snapshot of the item (supervisor thread)."""
        chunk = self.transport.chunk
        assert chunk is not None
        item = chunk.split.get(self.index)
        if item is not None:
            return task_info(item)
        if chunk.args is None:  # settled
            return None
        return task_info(
            self.transport, task_id=chunk.item_id(self.index), args=chunk.args[self.index]
        )

    @property
    def future(self) -> Any:
        """The chunk's :class:`~osiiso_mp._map_chunk.MapChunk`."""
        return self.transport.fut


class ItemSink:
    """Stands for the future of an item split off a chunk: hands its record to the chunk."""

    __slots__ = ("_chunks", "index", "transport")

    def __init__(self, chunks: ChunkOutcomes, transport: Task, index: int) -> None:
        self._chunks = chunks
        self.transport = transport
        self.index = index

    def settle_item(
        self, record: TaskResult, kept: TaskResult, size: int, flow_bytes: int = 0
    ) -> None:
        """The item has its record (``kept``: as its chunk keeps it, ``size`` bytes of
        stored value; ``flow_bytes``: its value's size as it came)."""
        self._chunks.item_settled(self.transport, self.index, record, kept, size, flow_bytes)

    def _settle_closed(self) -> None:  # pragma: no cover - split items are never submitted
        raise AssertionError("an item split off a chunk was submitted")
