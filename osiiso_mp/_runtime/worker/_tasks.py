"""One task's path through the worker: started, unpickled, run, reported.

:class:`TaskRunner` runs what :class:`~._actor.WorkerActor` starts, and reports how it ended:

- A sync task runs inline (:meth:`~TaskRunner.run_sync`). An *announced* one's
  :class:`TaskStarted` is flushed to the pipe *before* it runs, so the supervisor knows what
  is running when it needs to time it out, cancel it, or explain a crash; an unannounced
  one's start travels in its :class:`TaskFinished`. A map chunk runs its items in order and
  reports them all in one :class:`ChunkFinished`.
- ``async def`` tasks run as asyncio tasks (:meth:`~TaskRunner.start_async`), held in
  :attr:`~TaskRunner.running` until they end. The asyncio tasks an attempt starts are
  tracked (the loop's task factory) and cancelled when it ends.
- An exception in the runner's own code (never the task's) ends the task with an
  :class:`~osiiso_mp.InternalError` naming the stage it came from (see :mod:`._failures`).

:data:`current_seq` and :data:`chunk_item` say which task (and item) is running, for the
log records it emits (:mod:`._logs`) and the asyncio tasks it starts.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import pickle
import sys
import time
from array import array
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from ..._errors import SerializationError
from ..protocol._buffers import release
from ..protocol._channel import Channel
from ..protocol._framing import finished_frame, started_frame
from ..protocol._messages import ChunkFinished, ErrorInfo, RunTask, TaskFinished
from ..protocol._serialize import dumps_chunk_values, dumps_value, error_info
from ._failures import fatal, internal_error_info
from ._telemetry import Meter, Snapshot

__all__ = ["TaskRunner", "chunk_item", "current_seq"]

# The task running in this context: set around a sync call, and inside each async task
# (asyncio copies the context into the tasks a coroutine starts, so they inherit it).
current_seq: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "osiiso_mp_seq", default=None
)


class _ChunkItem:
    """The index of the map item running now (set by ``_run_chunk``), or None."""

    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index: int | None = None


chunk_item = _ChunkItem()


# Where in a task's path each of the runner's methods works, for InternalError.stage: the
# innermost of these on the failing traceback names the stage.
_STAGES = {
    "_begin": "starting",
    "_unpickle": "starting",
    "start_async": "starting",
    "_task_factory": "starting",
    "_spawn_await": "starting",
    "run_sync": "running",
    "_run_chunk": "running",
    "_reap_spawned": "running",
    "_await": "running",
    "_deliver": "reporting",
    "_deliver_chunk": "reporting",
    "_finish": "reporting",
    "_fail": "reporting",
}


def _stage_of(exc: BaseException) -> str:
    """The stage of a task's path in which ``exc`` was raised (see ``_STAGES``)."""
    stage = "handling"
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == __file__ and code.co_name in _STAGES:
            stage = _STAGES[code.co_name]
        tb = tb.tb_next
    return stage


# A chunk stops after the item whose values, all together, reach this size (as
# sys.getsizeof counts them: exactly for bytes, strings and arrays, shallowly for
# containers): the rest go back unrun, to run one by one. Large results then travel, and
# wait for their reader in the parent, a few at a time, not a chunk's worth at once.
_CHUNK_REPORT_BYTES = 16 << 20
_SCALARS = frozenset({int, float, bool, complex, type(None)})  # small: not counted
# The commonest value, pickled once: small bytes with no buffers (nothing to release)
_NONE_PAYLOAD, _ = dumps_value(None)


class TaskRunner:
    """Runs the tasks a worker starts, and reports each one's end over ``channel``.

    ``schedule_pump`` is called whenever an async task ends, so that the actor can start
    what it holds next.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: Channel,
        meter: Meter,
        schedule_pump: Callable[[], None],
        *,
        shared: bool = True,
    ) -> None:
        self._loop = loop
        self._shared = shared  # large buffers of values may go in shared memory
        self._channel = channel
        self._meter = meter
        self._schedule_pump = schedule_pump
        self.running: dict[int, asyncio.Task[None]] = {}  # the async tasks running, by seq
        # asyncio tasks that an attempt started, by seq: cancelled when the attempt ends
        self._spawned: dict[int, set[asyncio.Task[Any]]] = {}
        loop.set_task_factory(self._task_factory)

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        """Create a task, remembering which attempt (if any) started it.

        asyncio's documented factory interface: ``(loop, coro, **kwargs)``, every keyword
        passed on to the task (``name``, ``context``, and since 3.13 ``eager_start``; later
        versions may add more). The factory runs in the creator's context, where
        ``current_seq`` names the running attempt, unless a ``context`` is given.
        """
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        context: contextvars.Context | None = kwargs.get("context")
        seq = current_seq.get() if context is None else context.get(current_seq)
        if seq is not None and not task.done():  # an eager task may be done already
            spawned = self._spawned.setdefault(seq, set())
            spawned.add(task)
            task.add_done_callback(spawned.discard)
        return task

    def _reap_spawned(self, seq: int) -> None:
        """Cancel the background tasks an attempt left running, before the next one runs."""
        for task in self._spawned.pop(seq, ()):
            task.cancel()

    def internal_error(self, msg: RunTask, exc: BaseException, stage: str | None = None) -> None:
        """Our own code raised while handling ``msg``: end the task with an
        :class:`~osiiso_mp.InternalError` naming the exception (and ``stage``, else the
        stage found on its traceback). Built from nothing the failure may have broken (no
        meter, no error_info); should even this fail, the worker exits.

        The supervisor keeps the first report of an attempt, so a failure after the task's
        result was queued changes nothing for it."""
        try:
            payload = internal_error_info(exc, stage or _stage_of(exc))
            now = time.perf_counter()
            self._channel.send(TaskFinished(msg.seq, "failed", payload, now, now, 0.0, 0, 0))
            self.running.pop(msg.seq, None)
        except BaseException as again:
            again.__context__ = exc
            fatal(again, "while reporting an internal error")

    def _begin(self, msg: RunTask) -> Snapshot:
        start = self._meter.snapshot()
        if msg.announce:  # the supervisor must know it runs before it runs (timeouts, kills)
            self._channel.send_frame(started_frame(msg.seq, start[0]))
            self._channel.flush_blocking()  # out before it runs, even with the pipe full
        # else its start travels in its TaskFinished only
        return start

    def _finish(
        self,
        msg: RunTask,
        outcome: str,
        payload: Any,
        start: Snapshot,
        buffers: tuple[Any, ...] = (),
    ) -> None:
        finished_at, cpu, peak, delta = self._meter.measure(start)
        if not buffers and type(payload) is bytes:  # the common case: a frame made directly
            try:
                self._channel.send_frame(
                    finished_frame(
                        msg.seq, outcome, payload, start[0], finished_at, cpu, peak, delta
                    )
                )
                return
            except ValueError:  # beyond what one frame can hold: as below
                pass
        done = TaskFinished(
            msg.seq,
            outcome,  # type: ignore[arg-type]
            payload,
            start[0],
            finished_at,
            cpu,
            peak,
            delta,
            buffers,
        )
        try:
            self._channel.send(done)
        except ValueError as exc:  # beyond what one frame can hold: report that instead
            info = error_info(SerializationError("result", "frame", str(exc)))
            report = pickle.dumps(info, protocol=5)
            self._channel.send(
                TaskFinished(msg.seq, "failed", report, start[0], finished_at, cpu, peak, delta)
            )
        finally:
            if buffers or type(payload) is not bytes:  # (plain bytes hold nothing to release)
                release((payload, *buffers))  # a frame holds its own descriptors

    def _fail(
        self, msg: RunTask, exc: BaseException, start: Snapshot, outcome: str = "failed"
    ) -> None:
        self._finish(msg, outcome, pickle.dumps(error_info(exc), protocol=5), start)

    def _unpickle(self, msg: RunTask, start: Snapshot) -> tuple[Any, Any, Any] | None:
        """The ``(fn, args, kwargs)`` of a sync task (``(fn, items, {})`` for a chunk); None
        when they cannot be unpickled, after failing the task at stage "unpickling"."""
        try:
            loaded: tuple[Any, Any, Any] = pickle.loads(msg.payload, buffers=msg.buffers)
        except BaseException as exc:
            err = SerializationError("unpickling", type(exc).__name__, str(exc))
            self._fail(msg, err, start)
            return None
        return loaded

    def run_sync(self, msg: RunTask) -> None:
        """Run a sync task (or a map chunk) to its end and report it; one that returns a
        coroutine goes on as an async task."""
        if msg.chunk:
            self._run_chunk(msg)
            return
        start = self._begin(msg)
        loaded = self._unpickle(msg, start)
        if loaded is None:
            return
        fn, args, kwargs = loaded
        token = current_seq.set(msg.seq)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt fail the task too
            self._fail(msg, exc, start)
            return
        finally:
            current_seq.reset(token)
            self._reap_spawned(msg.seq)
        if isinstance(value, CoroutineType):  # a sync callable that returned a coroutine
            self._spawn_await(msg, value, start)
            return
        self._deliver(msg, value, start)

    def _run_chunk(self, msg: RunTask) -> None:
        """Run a map chunk: ``fn(*args)`` for each item in order, each item's exception
        caught and kept, then one :class:`ChunkFinished` with every outcome and timing;
        or with those of the first items only, once their values reach
        ``_CHUNK_REPORT_BYTES``."""
        start = self._begin(msg)
        loaded = self._unpickle(msg, start)
        if loaded is None:
            return
        fn, items, _ = loaded
        values: list[Any] = []
        errors: dict[int, ErrorInfo] = {}
        now, cpu_now = time.perf_counter, time.process_time
        clock = array("d", (now(),))
        cpu = array("d")
        last = cpu_now()
        token = current_seq.set(msg.seq)
        here = chunk_item
        held, sizeof, scalars = 0, sys.getsizeof, _SCALARS
        try:
            for i, args in enumerate(items):
                here.index = i
                try:
                    value = fn(*args)
                    if inspect.iscoroutine(value):
                        value.close()
                        raise TypeError(
                            f"{getattr(fn, '__qualname__', fn)!r} returned a coroutine: map "
                            "an async callable with chunksize=1, or make it async def"
                        )
                except BaseException as exc:  # as for a task: the item fails, not the worker
                    value = None
                    errors[i] = error_info(exc)
                values.append(value)
                clock.append(now())
                spent = cpu_now()
                cpu.append(spent - last)
                last = spent
                if type(value) not in scalars:  # (a set lookup: sizes cost more)
                    try:
                        held += sizeof(value, 0)
                    except Exception:  # a __sizeof__ that fails: count it as nothing
                        pass
                    if held >= _CHUNK_REPORT_BYTES:
                        break
        finally:
            here.index = None
            current_seq.reset(token)
            self._reap_spawned(msg.seq)
        self._deliver_chunk(msg, start, values, errors, clock, cpu)

    def _deliver_chunk(
        self,
        msg: RunTask,
        start: Snapshot,
        values: list[Any],
        errors: dict[int, ErrorInfo],
        clock: array[float],
        cpu: array[float],
    ) -> None:
        """Send a chunk's outcomes and timings in one :class:`ChunkFinished`."""
        _, _, peak, delta = self._meter.measure(start)
        try:
            payload, buffers = dumps_chunk_values(values, errors, shared=self._shared)
        except SerializationError as exc:  # pragma: no cover - every part is picklable
            self._fail(msg, exc, start)
            return
        try:
            self._channel.send(
                ChunkFinished(
                    msg.seq, payload, clock.tobytes(), cpu.tobytes(), peak, delta, buffers
                )
            )
        except ValueError as exc:  # beyond what one frame can hold: fail the chunk whole
            self._fail(msg, SerializationError("result", "frame", str(exc)), start)
        finally:
            release((payload, *buffers))

    def _deliver(self, msg: RunTask, value: Any, start: Snapshot) -> None:
        if value is None:  # its pickle is always the same
            self._finish(msg, "succeeded", _NONE_PAYLOAD, start)
            return
        try:
            payload, buffers = dumps_value(value, shared=self._shared)
        except SerializationError as exc:
            self._fail(msg, exc, start)
            return
        self._finish(msg, "succeeded", payload, start, buffers)

    def start_async(self, msg: RunTask) -> None:
        """Start an ``async def`` task as an asyncio task (in :attr:`running` until it
        ends); a callable that cannot be called is reported at once."""
        start = self._begin(msg)
        try:
            fn, args, kwargs = pickle.loads(msg.payload, buffers=msg.buffers)
            coro = fn(*args, **kwargs)
        except BaseException as exc:
            self._fail(msg, exc, start)
            return
        self._spawn_await(msg, coro, start)

    def _spawn_await(self, msg: RunTask, coro: Any, start: Snapshot) -> None:
        """Run the task's coroutine as an asyncio task; should that fail, close both
        coroutines (never awaited, never warned about) and let the caller report it."""
        waiter = self._await(msg, coro, start)
        try:
            self.running[msg.seq] = self._loop.create_task(waiter)
        except BaseException:
            waiter.close()
            coro.close()
            raise

    async def _await(self, msg: RunTask, coro: Any, start: Snapshot) -> None:
        current_seq.set(msg.seq)  # this asyncio task runs in a copy of the context
        try:
            try:
                if msg.timeout is None:
                    value = await coro
                else:
                    async with asyncio.timeout(msg.timeout) as scope:
                        value = await coro
            except asyncio.CancelledError:
                self._finish(msg, "cancelled", b"", start)
            except TimeoutError as exc:
                if msg.timeout is not None and scope.expired():
                    from ..._errors import TaskTimeoutError

                    timed_out = TaskTimeoutError(msg.timeout, killed=False)
                    self._fail(msg, timed_out, start, "timed_out")
                else:
                    self._fail(msg, exc, start)
            except BaseException as exc:
                self._fail(msg, exc, start)
            else:
                self._deliver(msg, value, start)
            finally:
                self.running.pop(msg.seq, None)
                self._reap_spawned(msg.seq)
        except BaseException as exc:  # our own reporting failed (the task's are caught above)
            self.internal_error(msg, exc)
        finally:
            self._schedule_pump()
