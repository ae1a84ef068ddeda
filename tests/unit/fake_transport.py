"""A transport with no process behind it: the test thread plays every worker, by script.

The real :class:`~osiiso_mp.Executor` and its real supervisor run on a
:class:`FakeTransport` (``Executor(procs=2, transport=FakeTransport())``). Each worker the
supervisor asks for is a :class:`FakeLink`: what the supervisor sends it is recorded, and
the test answers as a worker would, from its own thread::

    transport = FakeTransport()
    ex = Executor(procs=1, transport=transport)
    link = transport.link(0)          # the first link created (waits for it)
    link.ready()                      # reads Configure, answers WorkerReady
    fut = ex.submit(abs, -3)
    run = link.expect(RunTask)        # the next RunTask sent to that link
    link.succeed(run, 3)              # TaskStarted, then TaskFinished with the value pickled
    assert fut.result(timeout=5) == 3

What the link reports goes to the supervisor on its own loop, as a real link's does: a
worker's messages one by one (``reply``, or the helpers that build them), its exit
(``exit(code)``; ``kill()`` reports ``-9`` itself, a moment later). Messages are sent
through their wire form (``to_wire``, pickled and back) so that they arrive as frames would.
Every link the supervisor ever made is in ``transport.links``, in order: a replacement
worker is a new link, for the same ``slot``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from osiiso_mp._runtime.protocol._framing import HEADER, HEADER_SIZE
from osiiso_mp._runtime.protocol._messages import (
    ChunkFinished,
    Configure,
    Message,
    RunTask,
    Stop,
    TaskFinished,
    TaskStarted,
    WorkerReady,
    from_wire,
    to_wire,
)
from osiiso_mp._runtime.protocol._serialize import dumps_chunk_values, dumps_value, error_info
from osiiso_mp._runtime.transports import ON_THIS_HOST, Capabilities, LinkEvents

__all__ = ["FakeLink", "FakeTransport", "call_of"]

M = TypeVar("M", bound=Message)

WAIT = 5.0  # seconds the test side waits for what the supervisor should do soon
FAKE_PID = 4_000_000  # fake pids start here (above any real pid_max default)


def call_of(run: RunTask) -> tuple[Any, Any, Any]:
    """What ``run`` asks a worker to do, as a worker unpickles it: ``(fn, args, kwargs)``,
    or for a map chunk ``(fn, items, {})`` (``items``: one argument tuple per element)."""
    fn, args, kwargs = pickle.loads(run.payload, buffers=run.buffers)
    return fn, args, kwargs


def _through_the_wire(msg: Message) -> Message:
    """``msg`` as the other end reads it from a frame (small buffers travel in band)."""
    return from_wire(pickle.loads(pickle.dumps(to_wire(msg), protocol=5)))


class FakeTransport:
    """Hands out :class:`FakeLink` objects: a worker for each ``connect``, with no process.

    ``capabilities``: as the local transport's unless given. ``direct``: its links take
    frames written straight from a caller's thread, as local links do (the supervisor then
    opens its door to an idle one: see ``_runtime.supervisor._door``); off unless asked
    for, so that every task goes through the supervisor. ``connect_error``: when set,
    ``connect`` raises it (no worker can be started). ``exit_on_stop``: every link that is
    sent :class:`Stop` exits with status 0 at once (what a worker holding nothing does).
    """

    name = "fake"

    def __init__(self, capabilities: Capabilities = ON_THIS_HOST, *, direct: bool = False) -> None:
        self.capabilities = capabilities
        self.direct = direct  # links take frames written by callers' threads (the door)
        self.connect_error: BaseException | None = None
        self.closed = False
        self._cond = threading.Condition()
        self._links: list[FakeLink] = []
        self._exit_on_stop = False

    # -- the Transport protocol (supervisor thread) -----------------------------------------

    def open(self) -> None:
        """Nothing to join."""

    def connect(self, slot: int, loop: asyncio.AbstractEventLoop, events: LinkEvents) -> FakeLink:
        """A new fake worker for ``slot``; nothing runs until the test answers for it."""
        with self._cond:
            if self.connect_error is not None:
                raise self.connect_error
            link = FakeLink(self, slot, len(self._links), loop, events)
            self._links.append(link)
            self._cond.notify_all()
        return link

    def close(self) -> None:
        """The supervisor is done with its workers (at its teardown)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # -- the test's side --------------------------------------------------------------------

    @property
    def links(self) -> list[FakeLink]:
        """Every link created so far, in order (replacements included)."""
        with self._cond:
            return list(self._links)

    def link(self, index: int, timeout: float = WAIT) -> FakeLink:
        """The ``index``-th link ever created (0: the first), waiting for it to exist."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._links) > index, timeout):
                raise AssertionError(
                    f"no link #{index} was created within {timeout:g}s ({len(self._links)} so far)"
                )
            return self._links[index]

    def wait_closed(self, timeout: float = WAIT) -> None:
        """Wait for the supervisor to close the transport (its teardown)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed, timeout):
                raise AssertionError(f"the transport was not closed within {timeout:g}s")

    def exit_on_stop(self) -> None:
        """From now on every link exits 0 as soon as it is sent Stop; those that were sent
        one already and are still there exit now."""
        with self._cond:
            self._exit_on_stop = True
            links = list(self._links)
        for link in links:
            if not link.gone and link.sent(Stop):
                try:
                    link.exit(0)
                except RuntimeError:  # the supervisor's loop is closed: it is gone already
                    pass

    def _stop_sent(self, link: FakeLink) -> None:
        # supervisor thread, in send(): answer the Stop on the loop, after this turn
        with self._cond:
            if not self._exit_on_stop:
                return
        link._loop.call_soon(link._report_exit, 0)


class FakeLink:
    """One fake worker: the supervisor's side of the :class:`WorkerLink` protocol, and the
    test's means to answer for the worker."""

    def __init__(
        self,
        transport: FakeTransport,
        slot: int,
        index: int,
        loop: asyncio.AbstractEventLoop,
        events: LinkEvents,
    ) -> None:
        self.pid = FAKE_PID + index
        self.node = "fake"
        self.parent_pid: int | None = os.getpid()
        self.slot = slot
        self.index = index
        self.rss_value = 0  # what rss() (and usage()) report, in bytes: set it from the test
        self.is_stopped = False  # what stopped() reports
        # the worker's perf_counter() minus ours: non-zero for a worker on another host
        # (a transport without one_clock), whose readings the supervisor maps onto its own
        self.clock_offset = 0.0
        self.killed = False
        self.closed = False
        self.exit_code: int | None = None  # set once the exit was reported to the supervisor
        self.flushes = 0
        self.frames = 0  # of the messages sent, those sent as frames (send_frame)
        self.flush_promised = False
        self._transport = transport
        self._loop = loop
        self._events = events
        self._cond = threading.Condition()
        self._sent: list[Message] = []
        self._taken: set[int] = set()  # indexes in _sent that expect() has returned
        self._inbox: deque[Message] = deque()  # replies not yet delivered
        self._started: dict[int, float] = {}  # seq -> its TaskStarted reading
        self._exit_reported = False
        self.dropped: list[Message] = []  # replies that came after the link was closed
        self._direct_lock = threading.Lock() if transport.direct else None
        self.direct_writes = 0  # of the frames sent, those written by a caller's thread

    def __repr__(self) -> str:
        state = "killed" if self.killed else "exited" if self.exit_code is not None else "live"
        return f"<FakeLink #{self.index} slot={self.slot} pid={self.pid} {state}>"

    # -- the WorkerLink protocol (supervisor thread) ----------------------------------------

    def send(self, msg: Message) -> None:
        """Record ``msg``: the worker has it."""
        with self._cond:
            self._sent.append(msg)
            self._cond.notify_all()
        if type(msg) is Stop:
            self._transport._stop_sent(self)

    def send_frame(self, frame: bytes) -> None:
        """Record the message ``frame`` holds (decoded as a worker would)."""
        meta_len, n_inline, n_shared = HEADER.unpack_from(frame)
        assert n_inline == n_shared == 0, "send_frame carries plain frames only"
        self.frames += 1
        self.send(from_wire(pickle.loads(frame[HEADER_SIZE : HEADER_SIZE + meta_len])))

    def direct_lock(self) -> threading.Lock | None:
        """The lock callers write under (the transport's ``direct``), or None."""
        return self._direct_lock

    def direct_ready(self) -> bool:
        """Open and not killed: a caller's write lands."""
        return not (self.closed or self.killed)

    def write_direct(self, frame: bytes) -> bool:
        """From a caller's thread: record the message ``frame`` holds, as sent."""
        assert self._direct_lock is not None and self._direct_lock.locked()
        self.direct_writes += 1
        self.send_frame(frame)
        return True

    def flush(self) -> None:
        """Nothing is buffered: counted only."""
        self.flushes += 1
        self.flush_promised = False

    def will_flush(self) -> None:
        """A flush is promised before the supervisor's callback returns (checked by
        tests: see ``flush_promised``)."""
        self.flush_promised = True

    def drain(self) -> None:
        """Deliver the replies already made and not yet delivered."""
        self._pump()

    def kill(self) -> None:
        """Mark the worker killed; its exit (-9) is reported on the loop soon after."""
        with self._cond:
            if self.killed:
                return
            self.killed = True
            self._cond.notify_all()
        try:
            self._loop.call_soon_threadsafe(self._report_exit, -9)
        except RuntimeError:  # the loop is closed (the supervisor's teardown): nobody listens
            pass

    def close(self) -> None:
        """Nothing more is delivered from this worker."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def rss(self) -> int:
        return self.rss_value

    def stopped(self) -> bool:
        return self.is_stopped

    def usage(self) -> tuple[int, float]:
        return self.rss_value, 0.0

    # -- delivery (supervisor thread) -------------------------------------------------------

    def _pump(self) -> None:
        inbox = self._inbox
        while inbox:
            msg = inbox.popleft()
            if self.closed:
                self.dropped.append(msg)
                continue
            self._events.message(msg)

    def _report_exit(self, code: int) -> None:
        if self._exit_reported:
            return
        self._exit_reported = True
        self._events.exited(code)
        with self._cond:
            self.exit_code = code
            self._cond.notify_all()

    # -- the test's side: what was sent -----------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Everything sent to this worker so far, in order."""
        with self._cond:
            return list(self._sent)

    def sent(self, kind: type[M]) -> list[M]:
        """Every message of type ``kind`` sent so far, in order (taken by expect() or not)."""
        with self._cond:
            return [m for m in self._sent if type(m) is kind]

    def expect(self, kind: type[M], timeout: float = WAIT) -> M:
        """The next message of type ``kind`` that no ``expect`` returned before, waiting up
        to ``timeout`` seconds for it; ``AssertionError`` listing what came instead."""

        def find() -> list[int]:  # [its index] (a list: index 0 must count as found)
            for i, msg in enumerate(self._sent):
                if type(msg) is kind and i not in self._taken:
                    return [i]
            return []

        with self._cond:
            found = self._cond.wait_for(find, timeout)
            if not found:
                got = ", ".join(type(m).__name__ for m in self._sent) or "nothing"
                raise AssertionError(
                    f"{self!r}: no {kind.__name__} within {timeout:g}s (it was sent: {got})"
                )
            self._taken.add(found[0])
            msg: M = self._sent[found[0]]  # type: ignore[assignment]
            return msg

    def expect_runs(self, n: int, timeout: float = WAIT) -> list[RunTask]:
        """The next ``n`` RunTask messages."""
        return [self.expect(RunTask, timeout) for _ in range(n)]

    def wait_killed(self, timeout: float = WAIT) -> None:
        """Wait until the supervisor has killed this worker."""
        self._wait(lambda: self.killed, "killed", timeout)

    def wait_exited(self, timeout: float = WAIT) -> int:
        """Wait until the worker's exit was reported to the supervisor; its exit code."""
        self._wait(lambda: self.exit_code is not None, "exited", timeout)
        assert self.exit_code is not None
        return self.exit_code

    @property
    def gone(self) -> bool:
        """Killed or exited (or the exit is on its way)."""
        return self.killed or self._exit_reported

    def _wait(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(done, timeout):
                raise AssertionError(f"{self!r} was not {what} within {timeout:g}s")

    # -- the test's side: answering as the worker -------------------------------------------

    def reply(self, msg: Message) -> None:
        """The worker sends ``msg``: it reaches the supervisor on its loop."""
        self._inbox.append(_through_the_wire(msg))
        self._on_the_loop(self._pump)

    def exit(self, code: int) -> None:
        """The worker process exits with status ``code`` (after what it sent before)."""
        self._on_the_loop(self._report_exit, code)

    def _on_the_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the supervisor's loop; called from the test's thread, return
        once it has run. So a test's next step (a submit, a query: the supervisor's inbox)
        reaches the supervisor after what this link reported, in the order the test wrote
        them: the inbox has a wake-up of its own, and nothing orders the two otherwise."""
        ran = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                ran.set()

        try:
            self._loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed (the supervisor's teardown): nobody listens
            return
        try:
            on_the_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_the_loop = False
        while not on_the_loop and not ran.wait(0.05):
            if self._loop.is_closed() or not self._loop.is_running():
                return  # stopped before it ran: nothing will

    def now(self) -> float:
        """The worker's ``time.perf_counter()`` now (ours plus ``clock_offset``)."""
        return time.perf_counter() + self.clock_offset

    def ready(self, timeout: float = WAIT, boot: str = "") -> Configure:
        """Take the Configure frame and answer WorkerReady (saying ``boot`` is its kernel's
        boot id); the Configure."""
        configure = self.expect(Configure, timeout)
        self.reply(WorkerReady(self.pid, self.now(), boot=boot))
        return configure

    def start(self, run: RunTask) -> float:
        """Announce that ``run`` started (TaskStarted); its start reading."""
        now = self.now()
        self._started[run.seq] = now
        self.reply(TaskStarted(run.seq, now))
        return now

    def _begin(self, run: RunTask) -> float:
        """The start of ``run``: announced first if it must be and was not yet."""
        started = self._started.get(run.seq)
        if started is not None:
            return started
        if run.announce:
            return self.start(run)
        return self.now()  # unannounced: the start travels in the result only

    def succeed(self, run: RunTask, value: Any) -> None:
        """``run`` returned ``value`` (pickled as a worker does)."""
        assert not run.chunk, "a chunk ends with finish_chunk()"
        started = self._begin(run)
        payload, buffers = dumps_value(value)
        now = self.now()
        self.reply(TaskFinished(run.seq, "succeeded", payload, started, now, 0.0, 0, 0, buffers))

    def fail(self, run: RunTask, exc: BaseException, outcome: str = "failed") -> None:
        """``run`` raised ``exc`` (or ended with ``outcome``: ``"timed_out"``, say)."""
        assert not run.chunk, "a chunk ends with finish_chunk()"
        started = self._begin(run)
        payload = pickle.dumps(error_info(exc), protocol=5)
        now = self.now()
        self.reply(
            TaskFinished(run.seq, outcome, payload, started, now, 0.0, 0, 0)  # type: ignore[arg-type]
        )

    def dropped_unstarted(self, run: RunTask) -> None:
        """``run`` was dropped before it started (what a worker answers to CancelTask)."""
        now = self.now()
        self.reply(TaskFinished(run.seq, "cancelled", b"", None, now, 0.0, 0, 0))

    def finish_chunk(
        self,
        run: RunTask,
        values: Iterable[Any],
        errors: Mapping[int, BaseException] | None = None,
    ) -> None:
        """The chunk ``run`` ran its items: ``values`` (one per item that ran, None where it
        failed) and ``errors`` (index -> the exception that item raised)."""
        assert run.chunk, "a single task ends with succeed() or fail()"
        started = self._begin(run)
        out = list(values)
        infos = {i: error_info(exc) for i, exc in (errors or {}).items()}
        payload, buffers = dumps_chunk_values(out, infos)
        clock = array("d", [started])
        for _ in out:
            clock.append(self.now())
        cpu = array("d", [0.0] * len(out))
        self.reply(ChunkFinished(run.seq, payload, clock.tobytes(), cpu.tobytes(), 0, 0, buffers))

    def perform(self, run: RunTask) -> None:
        """Run ``run`` here, as the worker would, and answer with what happened."""
        fn, args, kwargs = call_of(run)
        if run.chunk:
            self._begin(run)
            values: list[Any] = []
            errors: dict[int, BaseException] = {}
            for i, item in enumerate(args):
                try:
                    values.append(fn(*item))
                except Exception as exc:
                    values.append(None)
                    errors[i] = exc
            self.finish_chunk(run, values, errors)
            return
        self._begin(run)
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            self.fail(run, exc)
            return
        self.succeed(run, value)
