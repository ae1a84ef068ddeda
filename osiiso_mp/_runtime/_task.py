"""The supervisor's mutable record of one task while it is unfinished.

Built by the submitting thread, then handed to the supervisor with a ``Submit`` command;
from that moment only the supervisor thread reads or writes it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from .._options import TaskOptions
from .._records import Attempt

if TYPE_CHECKING:
    from ._chunk import Chunk

__all__ = ["State", "Task"]

State = Literal["queued", "scheduled", "running", "complete"]


class Task:
    """One task: its payload, options, attempts so far and where it is now."""

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
        "first_started_at",
        "fn_name",
        "fut",
        "is_async",
        "key",
        "kwargs",
        "name",
        "opts",
        "payload",
        "queued_since",
        "scheduled_for",
        "seq",
        "started_at",
        "state",
        "suspect",
        "task_id",
        "timer",
        "worker",
    )

    def __init__(
        self,
        *,
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
        self.payload = payload  # the pickle, as it travels (see _wire.attach)
        self.buffers = buffers  # its out-of-band buffers, snapshots as they travel
        self.is_async = is_async
        self.error = error  # a submit-time failure (SerializationError): no attempt is made
        self.args = args
        self.kwargs = kwargs
        self.created_at = created_at
        self.enqueue_ms = enqueue_ms
        self.state: State = "queued"
        self.attempts: list[Attempt] = []
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
