"""The worker actor: a persistent process running tasks on its own uvloop event loop.

Started as ``python -c "...; main(FD)"`` with one end of a socket pair as ``FD``. It reads a
:class:`Configure` frame (blocking), sets up ``sys.path``, the working directory, the thread
variables (``inner_threads``), its CPU affinity and niceness, runs the initializer, reports
:class:`WorkerReady`, and then serves :class:`RunTask` messages:

- Tasks wait in a local heap ordered by ``(priority, seq)``; the supervisor may send several
  ahead (pipelining) and the worker always starts the best one it holds.
- A sync task runs inline, one at a time. Its :class:`TaskStarted` is flushed to the pipe
  *before* it runs, so the supervisor knows what is running when it needs to time it out,
  cancel it, or explain a crash. Between two sync tasks the loop turns once, so new messages
  (a cancellation, a better-priority task) are read. A task sent *unannounced* (known
  tiny, no timeout) gets no TaskStarted: its start travels in its TaskFinished, and such
  tasks run back to back for up to 1 ms per loop turn, their results written together.
- ``async def`` tasks run as asyncio tasks, up to ``concurrency`` at once.
- With ``max_rss`` set, the worker reads its own resident size before it starts each task;
  above the cap it starts nothing more, reports :class:`MemoryExceeded` and waits to be
  replaced, so a worker left above the cap by one task never begins the next.
- An exception in the worker's own code (never the task's) ends the task it was handling
  with an :class:`~osiiso_mp.InternalError` naming it, and the worker carries on. Should
  even that report fail, or the failure lie outside any one task, the worker prints the
  traceback to its stderr and exits with status 70 (``INTERNAL_ERROR_EXIT``); the supervisor
  then treats it as a crash and replaces it. A worker that fails to start after its
  initializer reports :class:`InitFailed`, like an initializer that raises. No task waits
  for ever on a worker that broke.
- The worker ignores SIGINT (Ctrl-C belongs to the parent), dies with its parent
  (``PR_SET_PDEATHSIG`` on Linux, and end-of-file on its pipe everywhere), and on
  :class:`Stop` finishes what it holds and exits with status 0.

It imports only what a worker needs, so it starts fast.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import heapq
import inspect
import logging
import os
import pickle
import signal
import socket
import sys
import time
import traceback
from array import array
from multiprocessing import process as mp_process  # loaded once in the fork server
from typing import Any, NoReturn

from ..._errors import INTERNAL_ERROR_EXIT, InternalError, SerializationError
from ..protocol._messages import (
    CancelTask,
    ChunkFinished,
    Configure,
    ErrorInfo,
    InitFailed,
    LogRecorded,
    MemoryExceeded,
    Message,
    RunTask,
    Stop,
    TaskFinished,
    TaskStarted,
    WorkerReady,
)
from ..protocol._serialize import dumps_chunk_values, dumps_value, error_info, type_name
from ..protocol._wire import Channel, encode, read_frame_blocking, release
from ._telemetry import Meter, Snapshot

__all__ = ["main"]


def _libc() -> Any:
    """The C library, for prctl (Linux only; else None). Loaded on import, so that the
    fork server does it once for all the workers it forks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when our parent dies (Linux), then check it is alive."""
    if _LIBC is not None:
        try:
            _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except AttributeError:
            pass
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(0)


# The task running in this context: set around a sync call, and inside each async task
# (asyncio copies the context into the tasks a coroutine starts, so they inherit it).
_current_seq: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "osiiso_mp_seq", default=None
)


class _ChunkItem:
    """The index of the map item running now (set by ``_run_chunk``), or None."""

    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index: int | None = None


_chunk_item = _ChunkItem()


class _ForwardingHandler(logging.Handler):
    """Sends the worker's log records to the supervisor, tagged with the running task."""

    def __init__(self, channel: Channel, level: int) -> None:
        super().__init__(level)
        self._channel = channel
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_text = record.exc_text
            if record.exc_info and not exc_text:
                exc_text = self._formatter.formatException(record.exc_info)
            seq = _current_seq.get()
            self._channel.send(
                LogRecorded(
                    seq,
                    record.name,
                    record.levelno,
                    record.getMessage(),
                    record.created,
                    record.pathname,
                    record.lineno,
                    record.funcName,
                    exc_text,
                    None if seq is None else _chunk_item.index,
                )
            )
        except Exception:  # a broken record must not fail the task that logged it
            self.handleError(record)


# Where in a task's path each of the actor's methods works, for InternalError.stage: the
# innermost of these on the failing traceback names the stage.
_STAGES = {
    "_begin": "starting",
    "_unpickle": "starting",
    "_start_async": "starting",
    "_task_factory": "starting",
    "_spawn_await": "starting",
    "_run_sync": "running",
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


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<unprintable {type(exc).__name__}>"


def _fatal(exc: BaseException, where: str) -> NoReturn:
    """The worker's own machinery failed outside any one task, or could not report a task's
    failure: print why to stderr and exit with ``INTERNAL_ERROR_EXIT``. The supervisor sees
    a crash: the running tasks fail (or are retried), those sent ahead run elsewhere."""
    try:
        text = "".join(traceback.format_exception(exc))
        os.write(2, f"osiiso_mp worker {os.getpid()}: internal error {where}:\n{text}".encode())
    except BaseException:
        pass
    os._exit(INTERNAL_ERROR_EXIT)


_BATCH_BUDGET = 0.001  # seconds of unannounced (known-tiny) sync tasks run per loop turn
# A chunk stops after the item whose values, all together, reach this size (as
# sys.getsizeof counts them: exactly for bytes, strings and arrays, shallowly for
# containers): the rest go back unrun, to run one by one. Large results then travel, and
# wait for their reader in the parent, a few at a time, not a chunk's worth at once.
_CHUNK_REPORT_BYTES = 16 << 20
_SCALARS = frozenset({int, float, bool, complex, type(None)})  # small: not counted


class _Job:
    """A task the worker holds, waiting or running."""

    __slots__ = ("dropped", "msg")

    def __init__(self, msg: RunTask) -> None:
        self.msg = msg
        self.dropped = False


class WorkerActor:
    """Serves one supervisor over one channel."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, cfg: Configure):
        self._loop = loop
        self._concurrency = cfg.concurrency
        self._max_rss = cfg.max_rss
        self._over_limit = False  # above max_rss: start nothing more, wait to be replaced
        self._meter = Meter()
        self._heap: list[tuple[int, int, _Job]] = []
        self._waiting: dict[int, _Job] = {}
        self._async: dict[int, asyncio.Task[None]] = {}
        # asyncio tasks that an attempt started, by seq: cancelled when the attempt ends
        self._spawned: dict[int, set[asyncio.Task[Any]]] = {}
        loop.set_task_factory(self._task_factory)
        self._stopping = False
        self._pump_scheduled = False
        self._channel = Channel(loop, sock, self._on_message, self._on_closed)
        root = logging.getLogger()
        root.setLevel(cfg.log_level)
        root.addHandler(_ForwardingHandler(self._channel, cfg.log_level))

    def start(self) -> None:
        """Announce readiness."""
        self._channel.send(WorkerReady(os.getpid(), time.perf_counter()))

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        """Create a task, remembering which attempt (if any) started it.

        asyncio's documented factory interface: ``(loop, coro, **kwargs)``, every keyword
        passed on to the task (``name``, ``context``, and since 3.13 ``eager_start``; later
        versions may add more). The factory runs in the creator's context, where
        ``_current_seq`` names the running attempt, unless a ``context`` is given.
        """
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        context: contextvars.Context | None = kwargs.get("context")
        seq = _current_seq.get() if context is None else context.get(_current_seq)
        if seq is not None and not task.done():  # an eager task may be done already
            spawned = self._spawned.setdefault(seq, set())
            spawned.add(task)
            task.add_done_callback(spawned.discard)
        return task

    def _reap_spawned(self, seq: int) -> None:
        """Cancel the background tasks an attempt left running, before the next one runs."""
        for task in self._spawned.pop(seq, ()):
            task.cancel()

    # -- inbox -----------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        try:
            if isinstance(msg, RunTask):
                job = _Job(msg)
                self._waiting[msg.seq] = job
                heapq.heappush(self._heap, (msg.priority, msg.seq, job))
            elif isinstance(msg, CancelTask):
                self._cancel(msg.seq)
            elif isinstance(msg, Stop):
                self._stopping = True
            self._schedule_pump()
        except BaseException as exc:  # a message half taken in: what this worker holds is unsure
            _fatal(exc, f"taking in {type(msg).__name__}")

    def _cancel(self, seq: int) -> None:
        job = self._waiting.pop(seq, None)
        if job is not None:
            job.dropped = True
            # never started: no telemetry (the supervisor records none for it)
            done = TaskFinished(seq, "cancelled", b"", None, time.perf_counter(), 0.0, 0, 0)
            self._channel.send(done)
            return
        task = self._async.get(seq)
        if task is not None:
            task.cancel()

    def _on_closed(self) -> None:
        # The supervisor is gone: nothing we compute can be delivered any more.
        os._exit(0)

    # -- running ---------------------------------------------------------------------------

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        try:
            self._run_held()
        except BaseException as exc:  # outside any one task (those are caught in _run_held)
            _fatal(exc, "while scheduling tasks")

    def _run_held(self) -> None:
        """Start what the worker holds, best first, as far as the rules below allow."""
        heap = self._heap
        batch_end = 0.0  # set once a sync task ran in this turn
        unsent = False  # an announced task's result is queued, not yet written
        while heap:
            job = heap[0][2]
            if job.dropped:
                heapq.heappop(heap)
                continue
            if self._max_rss is not None:
                try:
                    over = self._above_max_rss()
                except BaseException as exc:  # the measurement failed: this task cannot start
                    heapq.heappop(heap)
                    del self._waiting[job.msg.seq]
                    self._internal_error(job.msg, exc, "starting")
                    continue
                if over:
                    break
            if job.msg.is_async:
                if len(self._async) >= self._concurrency:
                    break
                heapq.heappop(heap)
                del self._waiting[job.msg.seq]
                try:
                    self._start_async(job.msg)
                except BaseException as exc:
                    self._internal_error(job.msg, exc)
                continue
            if batch_end and (job.msg.announce or time.perf_counter() > batch_end):
                # let the loop read new messages (and send results) before this one
                self._schedule_pump()
                break
            heapq.heappop(heap)
            del self._waiting[job.msg.seq]
            if unsent and not job.msg.announce:
                # out before this one runs unannounced: should it crash the worker, the
                # result must not be lost with it (the crash would be put down to the
                # announced task, which the supervisor saw start and never finish)
                self._channel.flush_blocking()
            unsent = False  # an announced start writes it with its TaskStarted
            try:
                self._run_sync(job.msg)
            except BaseException as exc:  # the task's own exceptions are caught inside
                self._internal_error(job.msg, exc)
            if job.msg.announce:
                if self._async:  # async tasks need the loop: let it run
                    if heap:
                        self._schedule_pump()
                    break
                # Read what came while this one ran (a task sent ahead, a cancel, a better
                # task) and go on at once: the next start's flush carries this task's result
                # too, so the supervisor wakes once for both, and the worker does not idle
                # for a turn of the loop.
                unsent = True
                self._channel.drain()
                continue
            # a known-tiny task: run the next ones in this turn too, for up to 1 ms, and
            # send their results in one write
            if not batch_end:
                batch_end = time.perf_counter() + _BATCH_BUDGET
        self._channel.flush()  # the results of this turn, now rather than a loop turn later
        if self._stopping and not self._waiting and not self._async:
            self._exit()

    def _above_max_rss(self) -> bool:
        """True once this process was found above ``max_rss`` before starting a task (the
        supervisor is told once, and replaces the worker)."""
        if self._over_limit:
            return True
        assert self._max_rss is not None
        rss = self._meter.rss()
        if rss <= self._max_rss:
            return False
        self._over_limit = True
        self._channel.send(MemoryExceeded(rss))
        self._channel.flush_blocking()
        return True

    def _internal_error(self, msg: RunTask, exc: BaseException, stage: str | None = None) -> None:
        """Our own code raised while handling ``msg``: end the task with an
        :class:`InternalError` naming the exception. Built from nothing the failure may
        have broken (no meter, no error_info); should even this fail, the worker exits.

        The supervisor keeps the first report of an attempt, so a failure after the task's
        result was queued changes nothing for it."""
        try:
            err = InternalError(stage or _stage_of(exc), type_name(exc), _describe(exc))
            text = "".join(traceback.format_exception(exc))
            info = ErrorInfo(type_name(err), str(err), text, pickle.dumps(err, protocol=5))
            now = time.perf_counter()
            payload = pickle.dumps(info, protocol=5)
            self._channel.send(TaskFinished(msg.seq, "failed", payload, now, now, 0.0, 0, 0))
            self._async.pop(msg.seq, None)
        except BaseException as again:
            again.__context__ = exc
            _fatal(again, "while reporting an internal error")

    def _begin(self, msg: RunTask) -> Snapshot:
        start = self._meter.snapshot()
        if msg.announce:  # the supervisor must know it runs before it runs (timeouts, kills)
            self._channel.send(TaskStarted(msg.seq, start[0]))
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

    def _run_sync(self, msg: RunTask) -> None:
        if msg.chunk:
            self._run_chunk(msg)
            return
        start = self._begin(msg)
        loaded = self._unpickle(msg, start)
        if loaded is None:
            return
        fn, args, kwargs = loaded
        token = _current_seq.set(msg.seq)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt fail the task too
            self._fail(msg, exc, start)
            return
        finally:
            _current_seq.reset(token)
            self._reap_spawned(msg.seq)
        if inspect.iscoroutine(value):  # a sync callable that returned a coroutine
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
        token = _current_seq.set(msg.seq)
        here = _chunk_item
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
            _current_seq.reset(token)
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
            payload, buffers = dumps_chunk_values(values, errors)
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
        try:
            payload, buffers = dumps_value(value)
        except SerializationError as exc:
            self._fail(msg, exc, start)
            return
        self._finish(msg, "succeeded", payload, start, buffers)

    def _start_async(self, msg: RunTask) -> None:
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
            self._async[msg.seq] = self._loop.create_task(waiter)
        except BaseException:
            waiter.close()
            coro.close()
            raise

    async def _await(self, msg: RunTask, coro: Any, start: Snapshot) -> None:
        _current_seq.set(msg.seq)  # this asyncio task runs in a copy of the context
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
                self._async.pop(msg.seq, None)
                self._reap_spawned(msg.seq)
        except BaseException as exc:  # our own reporting failed (the task's are caught above)
            self._internal_error(msg, exc)
        finally:
            self._schedule_pump()

    def _exit(self) -> None:
        self._channel.flush_blocking()  # every result out before the exit
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(0)


def _configure(sock: socket.socket) -> Configure:
    """Read the :class:`Configure` frame and apply it: parent watch, ``sys.path``, working
    directory, thread variables, CPU affinity and niceness (before any user code runs).

    A CPU affinity or niceness that cannot be applied is reported as :class:`InitFailed`
    (the worker then exits with status 3), like an initializer that raises.
    """
    msg = read_frame_blocking(sock)
    if not isinstance(msg, Configure):
        os._exit(0)  # the supervisor went away before configuring us
    if msg.parent_pid is not None:
        _die_with_parent(msg.parent_pid)
    if msg.authkey:  # as a child process of the user's would have it: proxies connect
        mp_process.current_process().authkey = msg.authkey
    if msg.sys_path is not None:
        sys.path[:] = list(msg.sys_path)
    if msg.cwd is not None:
        try:
            os.chdir(msg.cwd)
        except OSError:
            pass
    if msg.env:
        if msg.whole_env:
            os.environ.clear()
        os.environ.update(msg.env)
    if msg.cpu_affinity is not None:
        try:
            os.sched_setaffinity(0, msg.cpu_affinity)
        except (OSError, AttributeError) as exc:
            cpus = ", ".join(map(str, msg.cpu_affinity))
            _setup_failed(sock, f"cannot pin the worker to CPUs {{{cpus}}} (cpu_affinity): {exc}")
    if msg.nice:
        try:
            os.nice(msg.nice)
        except OSError as exc:
            _setup_failed(sock, f"cannot apply nice={msg.nice}: {exc}")
    return msg


def _setup_failed(sock: socket.socket, error: str) -> NoReturn:
    """Tell the supervisor this worker cannot be set up, and exit."""
    sock.sendall(encode(InitFailed(error, "", "setup")))
    os._exit(3)


def _initialize(sock: socket.socket, cfg: Configure) -> None:
    if cfg.initializer is None:
        return
    try:
        if cfg.inherited:  # the descriptors of the multiprocessing objects in initargs
            from .._inherit import receive

            receive(cfg.inherited)
        init, initargs, initkwargs = pickle.loads(cfg.initializer)
        init(*initargs, **initkwargs)
    except BaseException as exc:
        info = error_info(exc)
        sock.sendall(encode(InitFailed(f"{info.type_name}: {info.message}", info.traceback)))
        os._exit(3)


def main(fd: int) -> None:
    """Entry point of a worker process serving the supervisor at the other end of ``fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    cfg = _configure(sock)
    _initialize(sock, cfg)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        actor = WorkerActor(loop, sock, cfg)
        actor.start()
    except BaseException as exc:  # our own start-up failed: say so, as a failed setup
        sock.setblocking(True)
        info = error_info(exc)
        error = f"internal error starting the worker: {info.type_name}: {info.message}"
        sock.sendall(encode(InitFailed(error, info.traceback, "setup")))
        os._exit(3)
    try:
        loop.run_forever()
    except BaseException as exc:
        _fatal(exc, "in the event loop")
    _fatal(RuntimeError("the event loop stopped"), "in the event loop")
