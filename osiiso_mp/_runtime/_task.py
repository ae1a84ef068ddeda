"""The supervisor's mutable record of one task while it is unfinished, and what the
executor keeps of it once it has finished.

Built by the submitting thread, then handed to the supervisor with a ``Submit`` command;
from that moment only the supervisor thread writes it. A task submitted on its own is also
its entry in the batch of the next ``run()``: once finished it lets go of its future, its
arguments and its payload, and keeps its record instead, packed as one flat tuple of plain
values (its value stored, see :mod:`._retention`; the cyclic garbage collector soon stops
walking it), from which the batch and the lookups by id make records, from any thread.

While the caller holds the future, the record handed out is the future's own: one object,
made on its first read (by the future, a lookup or ``run()``, whichever comes first: most
futures of a bulk submission are only ever asked for their value), with the future's value
in it. The future lets go of it when it is dropped (``TaskFuture.__del__``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from .._results import (
    Attempt,
    Packed,
    ReleasedValue,
    TaskResult,
    packed_finished_at,
    packed_status,
    packed_value,
    packed_with_value,
    unpack,
    unpack_with_value,
)
from .._task_options import TaskOptions
from ._chunk import CHUNK_SUFFIX
from ._retention import StoredValue, handout

if TYPE_CHECKING:
    import asyncio

    from .._snapshots import TaskInfo
    from ._chunk import Chunk
    from ._read_ahead import ReadAhead

__all__ = ["State", "Task", "task_info"]

State = Literal["queued", "scheduled", "running", "complete"]

# What a finished task holds instead of its own (it is kept: no object more than needed).
_NO_KWARGS: dict[str, Any] = {}

# Task.live: no future holds the task (any more); a future holds it, and the kept record's
# value slot holds its value as it is. Else ``live`` is the future's value itself (the
# kept record holds it serialized).
UNBOUND: Final[Any] = object()
AS_KEPT: Final[Any] = object()
# one maker at a time of a future's record (the first read: rare, and any thread), so that
# the future and the lookups get one object (re-entrant: a collection may run a future's
# __del__ on the thread making one)
_MAKING = threading.RLock()


class Task:
    """One task: its payload, options, attempts so far and where it is now; once finished,
    its kept record."""

    __slots__ = (
        "abandoned",
        "args",
        "attempts",
        "buffers",
        "cancel_reason",
        "chunk",
        "created_at",
        "enqueue_ms",
        "error",
        "expiry",
        "first_started_at",
        "flow",
        "fn_name",
        "fut",
        "holds",
        "is_async",
        "kept",
        "kept_size",
        "key",
        "kwargs",
        "live",
        "name",
        "opts",
        "payload",
        "queued_since",
        "record",
        "scheduled_for",
        "seq",
        "started_at",
        "state",
        "suspect",
        "task_id",
        "timer",
        "worker",
    )

    weight: ClassVar[int] = 1
    """How many tasks a batch entry stands for (a map's chunk: its items)."""

    @property
    def holder(self) -> Task:
        """What keeps its value for ``run()`` (see ``ValueBudget``): itself."""
        return self

    def __init__(  # (positional too: submit makes one per task, and keywords cost more)
        self,
        seq: int,
        task_id: str,
        name: str,
        fn_name: str,
        fut: Any,
        opts: TaskOptions,
        payload: Any,
        buffers: tuple[Any, ...],
        is_async: bool,
        error: BaseException | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        created_at: float,
        enqueue_ms: int,
        chunk: Chunk | None = None,
        key: str | None = None,
        flow: ReadAhead[Task] | None = None,
    ) -> None:
        self.seq = seq
        # a map chunk's items (then this task only carries them: see _chunk), else None
        self.chunk = chunk
        self.task_id = task_id
        self.name = name
        self.fn_name = fn_name
        # what duration estimates and pipelining know the callable by: its name, or for a
        # lambda its name and where it is defined (every lambda is called "<lambda>")
        self.key = key or fn_name
        # what settles: its TaskFuture; a chunk's MapChunk; an item split off a chunk, a
        # sink handing the record to the chunk (anything with _settle and _settle_closed)
        self.fut = fut
        self.opts = opts
        self.payload = payload  # the pickle, as it travels (see _buffers.attach)
        self.buffers = buffers  # its out-of-band buffers, snapshots as they travel
        self.is_async = is_async
        self.error = error  # a submit-time failure (SerializationError): no attempt is made
        self.args = args
        self.kwargs = kwargs
        self.created_at = created_at
        self.enqueue_ms = enqueue_ms
        self.state: State = "queued"
        # its attempts so far, a tuple (most tasks make one: no list to grow, and the
        # record shares it as its attempt_log)
        self.attempts: tuple[Attempt, ...] = ()
        self.worker: Any = None  # the supervisor's _Worker holding it, or None
        self.started_at: float | None = None  # start of the current attempt
        self.first_started_at: float | None = None
        self.queued_since = created_at  # when the current attempt's wait began
        self.scheduled_for: float | None = None  # epoch seconds of a pending retry/delay
        self.cancel_reason: str | None = None
        self.abandoned = False  # cancelled while a worker still holds it
        # held unstarted by a worker that died: it may have been running unannounced, so
        # from now on its start is announced (a crash it causes is then put down to it)
        self.suspect = False
        self.timer: asyncio.TimerHandle | None = None
        # once finished, what the executor keeps of it: its record packed as plain tuples
        # (its value stored, see _retention), which the cyclic garbage collector soon
        # leaves alone; records are made from it when read (see _results.pack)
        self.kept: Packed | None = None
        # and, while the caller holds the future, the future's own record (the one handed
        # out then) once made, and the future's value (see UNBOUND, AS_KEPT); the future
        # lets go of both when it is dropped (TaskFuture.__del__)
        self.record: TaskResult | None = None
        self.live: Any = UNBOUND
        self.holds = 0  # who keeps its value (see ValueBudget), and its counted size
        self.kept_size = 0
        self.expiry = 0.0  # when lookups by id forget it (time.monotonic())
        # the read-ahead of the map without buffersize it belongs to (see ReadAhead), if any
        self.flow = flow

    @classmethod
    def of_chunk(
        cls,
        chunk: Chunk,
        *,
        seq: int,
        fut: Any,
        payload: Any,
        buffers: tuple[Any, ...],
        enqueue_ms: int,
        item: int | None = None,
        error: BaseException | None = None,
        flow: ReadAhead[Task] | None = None,
    ) -> Task:
        """A task of map chunk ``chunk``: the one that carries all its items to a worker
        (``item`` None), or item ``item`` on its own (split off the chunk)."""
        whole = item is None
        assert whole or chunk.args is not None
        return cls(
            seq=seq,
            task_id=chunk.item_id(0 if item is None else item),
            name=chunk.name,
            fn_name=chunk.fn_name,
            key=chunk.key + CHUNK_SUFFIX if whole else chunk.key,
            fut=fut,
            opts=chunk.opts,
            payload=payload,
            buffers=buffers,
            is_async=False,
            error=error,
            args=() if item is None else chunk.args[item],  # type: ignore[index]
            kwargs={},
            created_at=chunk.created_at,
            enqueue_ms=enqueue_ms,
            chunk=chunk if whole else None,
            flow=flow,
        )

    def finished(self, kept: Packed, value: Any = AS_KEPT) -> None:
        """The task has ended: the executor keeps its record packed, ``kept`` (see
        ``_results.pack``); ``value`` is its value when ``kept`` holds it serialized. Let
        go of what only an unfinished task needs, the future first (it is the caller's
        now): while the caller holds it, the future's own record is handed out, made on
        first read."""
        self.kept = kept
        fut = self.fut
        if fut is not None and hasattr(fut, "_kept_by"):  # (a TaskFuture: see __del__)
            self.live = value
            fut._kept_by = self
        self.fut = None
        self.args = ()
        self.kwargs = _NO_KWARGS
        self.attempts = ()  # (the record has them; none is added after the end)
        self.worker = None
        self.error = None

    def own_record(self, value: Any = AS_KEPT) -> TaskResult:
        """The record of the future that holds the task (any thread): made once, on the
        first call, with ``value`` (the future's, when the future asks), else the value the
        task holds for it. Handed out from then on for as long as the future lives, unless
        its value is released (see :meth:`release`)."""
        with _MAKING:
            record = self.record
            if record is not None:
                return record
            kept = self.kept
            assert kept is not None
            live = self.live
            if value is AS_KEPT:
                value = live
            if value is UNBOUND:  # dropped meanwhile: what anyone reading gets
                return handout(unpack(kept))
            record = unpack(kept) if value is AS_KEPT else unpack_with_value(kept, value)
            if live is not UNBOUND:
                self.record = record
                if self.live is UNBOUND:  # (its __del__ ran meanwhile, on another thread)
                    self.record = None
            return record

    # -- as an entry of the batch of the next run() (any thread) ---------------------------

    def future(self) -> Any:
        """The future to wait on while the task is unfinished; None once it finished."""
        return self.fut

    def done(self) -> bool:
        """True once the task has its record."""
        return self.kept is not None

    @property
    def finished_at(self) -> float | None:
        """When the task ended, or None while it has not."""
        kept = self.kept
        return None if kept is None else packed_finished_at(kept)

    def failed(self) -> TaskResult | None:
        """Its record when the task failed, else None."""
        kept = self.kept
        if kept is None or packed_status(kept) != "failed":
            return None
        return self.records()[0]

    def records(self) -> list[TaskResult]:
        """The record to give the caller, once finished: the future's own while the caller
        holds the future, else one made from the kept one (see ``_retention.handout``)."""
        record = self.record  # (read once: the future's __del__ may clear it meanwhile)
        if record is not None:
            return [record]
        kept = self.kept
        if kept is None:
            return []
        if self.live is not UNBOUND:
            return [self.own_record()]
        return [handout(unpack(kept))]

    def add_done_callback(self, fn: Callable[[Task], object]) -> None:
        """Call ``fn(self)`` once the task has ended (at once if it has)."""
        fut = self.fut
        if fut is None or self.kept is not None:
            fn(self)
            return
        fut.add_done_callback(lambda _: fn(self))

    def release(self, marker: ReleasedValue) -> None:
        """The value budget lets go of its value: the kept record reads as released from
        now on. A value kept as it is was the future's own: the future's record is no
        longer handed out either (its value was not stored apart from it)."""
        kept = self.kept
        if kept is not None:
            if type(packed_value(kept)) is not StoredValue:
                self.live = UNBOUND
                self.record = None
            self.kept = packed_with_value(kept, marker)


def task_info(
    task: Task, *, task_id: str | None = None, args: tuple[Any, ...] | None = None
) -> TaskInfo | None:
    """Snapshot of an unfinished task (supervisor thread). ``task_id`` and
    ``args`` name one item of a map chunk that ``task`` carries."""
    if task.state == "complete":
        return None
    w = task.worker
    from .._snapshots import TaskInfo

    return TaskInfo(
        task_id=task.task_id if task_id is None else task_id,
        name=task.name,
        fn_name=task.fn_name,
        args=task.args if args is None else args,
        kwargs=dict(task.kwargs),
        enqueue_time=task.enqueue_ms,
        tries=len(task.attempts) + (task.state == "running"),  # the running one counts
        status=task.state,
        scheduled_at=None if task.scheduled_for is None else int(task.scheduled_for * 1000),
        worker_pid=None if w is None or task.state != "running" else w.pid,
    )
