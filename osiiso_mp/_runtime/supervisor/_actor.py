"""The supervisor actor's shell: its thread, its event loop, its inbox, and shutdown.

What it does lives in its parts, each owning its own state and living on this thread
(see the package's docstring): the :class:`Ledger`, the :class:`WorkerPool`, the
:class:`Dispatcher`, :class:`Attempts`, :class:`Outcomes`, :class:`ChunkOutcomes` and the
:class:`MemoryCap`. Callers post commands (:mod:`.._commands`) to the inbox, which the
shell drains on its thread; the submit path costs the caller one deque append and, at most
once per drained batch, one wake-up of the loop (how: see :meth:`Supervisor.post`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..._config import ExecutorConfig
from ..._errors import ClosedError, OsiisoError
from ..._results import TaskResult
from .._task import Task, task_info
from ..protocol._commands import (
    Ask,
    Call,
    Cancel,
    CancelAll,
    CheckId,
    Command,
    Estimate,
    Find,
    Info,
    LetGo,
    MapRead,
    OpenMaps,
    Query,
    QueueSize,
    SetFailPolicy,
    Shutdown,
    Snapshot,
    Status,
    Submit,
)
from ._attempts import Attempts
from ._chunks import ChunkItem, ChunkOutcomes
from ._common import log, task_suffix
from ._dispatch import Dispatcher
from ._door import DoorKeeper
from ._ledger import Ledger
from ._memcap import MemoryCap
from ._outcomes import Outcomes
from ._pool import WorkerPool
from ._setup import dumps_initializer

if TYPE_CHECKING:
    from .._retention import Holder
    from ..transports import Transport

__all__ = ["Supervisor"]

R = TypeVar("R")


class Supervisor:
    """Owns the task state and the workers of one executor, on a thread of its own."""

    def __init__(self, config: ExecutorConfig, transport: Transport) -> None:
        self.config = config
        self.transport = transport
        self.caps = transport.capabilities
        self._inbox: deque[Command] = deque()
        self._post_lock = threading.Lock()
        self._wake_pending = False
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name="osiiso_mp-supervisor", daemon=True)
        self.broken: str | None = None
        self.closing = False
        self._stopped = threading.Event()
        self._inbox_closed = False  # set with _stopped, under _post_lock (read by post)
        self._shutdown_replies: list[cf.Future[None]] = []
        initializer: bytes | None = None
        inherited: list[int] = []
        if config.initializer is not None:
            initializer, inherited = dumps_initializer(config.initializer, config.initargs)
        # the parts, each owning its own state; then each takes the others it calls
        self.ledger = Ledger(config)
        self.pool = WorkerPool(self, initializer, inherited)
        self.dispatch = Dispatcher(self)
        self.doors = DoorKeeper(self)
        self.attempts = Attempts(self)
        self.outcomes = Outcomes(self)
        self.chunks = ChunkOutcomes(self)
        self.memcap = MemoryCap(self)
        for part in (
            self.pool,
            self.dispatch,
            self.attempts,
            self.outcomes,
            self.chunks,
            self.memcap,
            self.doors,
        ):
            part.wire()
        # what post() writes to, to wake the loop (read by _on_wake; see post)
        self._wake_r, self._wake_w = _wake_fds()

    # -- thread and inbox ------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor thread; workers boot in the background."""
        self._thread.start()

    @property
    def thread_id(self) -> int | None:
        """``threading.get_ident()`` of the supervisor thread."""
        return self._thread.ident

    @property
    def alive(self) -> bool:
        """True until the supervisor has stopped."""
        return not self._stopped.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the supervisor thread to end; True if it did."""
        if self._thread.ident is not None and threading.get_ident() != self._thread.ident:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def post(self, cmd: Command) -> None:
        """Hand ``cmd`` to the supervisor (any thread). Commands run in the order posted.

        Raises :class:`ClosedError` once the supervisor has stopped.

        How the loop is woken depends on what it holds. Holding no unfinished task (one
        task at a time, say), by a write to a descriptor of its own: ``os.write`` lets go
        of the GIL while it writes, so the supervisor thread it wakes finds the GIL free
        and sends the task on at once. (``call_soon_threadsafe`` writes its wake-up with
        the GIL held: the woken thread then waits for the GIL and is woken a second time
        when the caller lets go of it, in ``result()`` say; the caller is preempted twice.)
        Holding some, by ``call_soon_threadsafe``: while the woken thread waits for the
        GIL, a caller submitting in bulk goes on, and the supervisor takes in a long run of
        tasks in one turn, where a free GIL would have it take them one by one.
        """
        with self._post_lock:  # Invariant: nothing enters the inbox after teardown drained it
            if self._inbox_closed:
                raise ClosedError("the executor is shut down")
            self._inbox.append(cmd)
            if not self._wake_pending:
                self._wake_pending = True
                # (the supervisor's dict, read from another thread: whether it is empty,
                # one step under the GIL)
                if not self.ledger.tasks:
                    self._write_wake()
                else:
                    self.loop.call_soon_threadsafe(self._drain_inbox)

    def wake(self) -> None:
        """Wake the loop to drain its inbox, posting nothing (any thread): after a task was
        sent through the door (see :mod:`._door`), so that the supervisor adopts it while
        the worker runs it, not once the worker's reply has come. A write to the wake-up
        descriptor, as :meth:`post` makes with no unfinished task (the GIL let go)."""
        with self._post_lock:
            if self._inbox_closed or self._wake_pending:
                return
            self._wake_pending = True
            self._write_wake()

    def _write_wake(self) -> None:
        """Write to the wake-up descriptor (the GIL let go while it writes)."""
        try:
            os.write(self._wake_w, _WAKE)
        except BlockingIOError:  # (a pipe full of wake-ups: one is pending)
            pass

    def call(self, fn: Callable[[], R], timeout: float | None = None) -> R:
        """Run ``fn`` on the supervisor thread and return its result (tests, debugging)."""
        if threading.get_ident() == self._thread.ident:
            return fn()
        reply: cf.Future[Any] = cf.Future()
        self.post(Call(fn, reply))
        return reply.result(timeout)  # type: ignore[no-any-return]

    def ask(self, query: Query) -> Any:
        """Answer ``query`` on the supervisor thread and return the answer (any thread):
        once the supervisor has stopped, answered here (nothing else touches the state)."""
        if threading.get_ident() == self._thread.ident:
            return self.answer(query)
        if self.alive:
            reply: cf.Future[Any] = cf.Future()
            try:
                self.post(Ask(query, reply))
            except ClosedError:
                pass
            else:
                try:
                    return reply.result()
                except ClosedError:
                    pass
        self.join()
        if isinstance(query, CancelAll | SetFailPolicy):
            return 0 if isinstance(query, CancelAll) else None  # every task was settled
        return self.answer(query)

    def answer(self, query: Query) -> Any:
        """The answer to ``query`` (see :mod:`.._commands`), read on this thread."""
        ledger = self.ledger
        if isinstance(query, Status):
            found = query.task or ledger.lookup(query.task_id or "")
            if found is None:
                return "not_found"
            return "complete" if isinstance(found, TaskResult) else found.state
        if isinstance(query, Info):
            found = query.task or ledger.lookup(query.task_id or "")
            if isinstance(found, ChunkItem):
                return found.info()
            return task_info(found) if isinstance(found, Task) else None
        if isinstance(query, Find):
            found = ledger.lookup(query.task_id)
            return found.fut if isinstance(found, Task) else found
        if isinstance(query, CancelAll):
            return sum(1 for task in query.tasks if self.outcomes.cancel(task, query.reason))
        if isinstance(query, QueueSize):
            return ledger.queue_size()
        if isinstance(query, Snapshot):
            return self.pool.rows(), ledger.counts()
        if isinstance(query, Estimate):
            return self.dispatch.estimates.estimate(query.key)
        if isinstance(query, CheckId):
            return ledger.check_unique(query.task_id)
        if isinstance(query, SetFailPolicy):
            return self.outcomes.set_fail_policy(query.policy, query.batch)
        raise TypeError(f"not a query: {query!r}")  # pragma: no cover

    def request_cancel(self, task: Task, reason: str) -> bool | None:
        """Cancel ``task`` from any thread; None once stopped."""
        if threading.get_ident() == self._thread.ident:
            return self.outcomes.cancel(task, reason)
        reply: cf.Future[bool] = cf.Future()
        try:
            self.post(Cancel(task, reason, reply))
        except ClosedError:
            return None
        return reply.result()

    def batch_let_go(self, holders: list[Holder], *, wait: bool = False) -> None:
        """The batch no longer holds these entries (``run()`` summarised them, or they
        were pruned): their values count only while lookups still keep them. Any thread;
        ``wait``: return once done (else it is posted). Once stopped, done here."""
        if not holders:
            return
        reply: cf.Future[None] | None = cf.Future() if wait else None
        try:
            self.post(LetGo(tuple(holders), reply))
            if reply is not None:
                reply.result()
        except ClosedError:
            self.join()  # stopped: nothing else touches its state any more
            self.ledger.let_go_batch(holders)

    def replacements(self) -> int:
        """Workers replaced so far (see ``WorkerPool.replacements``; any thread)."""
        return self.pool.replacements()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.add_reader(self._wake_r, self._on_wake)
            self.pool.start()
            self.memcap.start()
            self.loop.run_forever()
        finally:
            self._teardown()

    def _drain_inbox(self) -> None:
        self._wake_pending = False
        doors = self.doors
        if doors.door.taken is not None:  # before what was posted after it (a cancel of it)
            doors.adopt()
        inbox = self._inbox
        while inbox:
            cmd = inbox.popleft()
            try:
                self._handle(cmd)
            except Exception:  # pragma: no cover - a bug here must not kill the supervisor
                log.exception("osiiso_mp supervisor failed to handle %r", type(cmd).__name__)
        # Write what dispatch queues at once, not a turn of the loop later (a poll and a
        # pass over the timers sooner: the round trip's latency), in as few writes; the
        # links it sends to are promised that write (a turn of the loop saved)
        pool = self.pool
        pool.flush_owned = True
        try:
            self.dispatch.dispatch()
        finally:
            pool.flush_owned = False
            pool.flush_sent()
        if doors.opened is None:
            doors.open()

    def _on_wake(self) -> None:
        """A post woke the loop: take in what the inbox holds."""
        try:
            os.read(self._wake_r, 4096)  # every wake-up written so far (one, mostly)
        except BlockingIOError:  # (read already, by an earlier call)
            pass
        self._drain_inbox()

    def dispatch_soon(self) -> None:
        """Dispatch once the messages read with this one are handled (coalesced)."""
        if not self._wake_pending:
            self._wake_pending = True
            self.loop.call_soon(self._drain_inbox)

    def _handle(self, cmd: Command) -> None:
        if isinstance(cmd, Submit):
            self.dispatch.on_submit(cmd.task)
        elif isinstance(cmd, Cancel):
            cmd.reply.set_result(self.outcomes.cancel(cmd.task, cmd.reason))
        elif isinstance(cmd, Ask):
            try:
                cmd.reply.set_result(self.answer(cmd.query))
            except BaseException as exc:
                cmd.reply.set_exception(exc)
        elif isinstance(cmd, LetGo):
            self.ledger.let_go_batch(cmd.holders)
            if cmd.reply is not None:
                cmd.reply.set_result(None)
        elif isinstance(cmd, MapRead):
            self.dispatch.on_map_read(cmd)
        elif isinstance(cmd, OpenMaps):
            self.dispatch.open_maps(cmd.flow)
        elif isinstance(cmd, Call):
            try:
                cmd.reply.set_result(cmd.fn())
            except BaseException as exc:
                cmd.reply.set_exception(exc)
        elif isinstance(cmd, Shutdown):
            self._on_shutdown(cmd)

    # -- breaking and stopping -------------------------------------------------------------

    def break_(self, reason: str) -> None:
        """The pool cannot serve: fail everything waiting and refuse new work."""
        if self.broken is not None:
            return
        self.broken = reason
        self.doors.close()
        log.error("osiiso_mp executor is broken: %s", reason)
        self.dispatch.fail_queued(lambda task: OsiisoError(f"{reason}{task_suffix(task)}"))
        self.maybe_finish_shutdown()

    def _on_shutdown(self, cmd: Shutdown) -> None:
        self.closing = True
        self.doors.close()
        if cmd.reply is not None:
            self._shutdown_replies.append(cmd.reply)
        self.dispatch.open_maps(None)  # a drain runs every task, a reader or not
        cancel = self.outcomes.cancel
        if cmd.cancel_pending and not cmd.kill:
            # a graceful drain: what has not started is cancelled, but must_complete is kept
            for task in list(self.ledger.tasks.values()):
                not_started = task.state in ("queued", "scheduled") and (
                    task.worker is None or task.seq in task.worker.unstarted
                )
                if not_started and not task.opts.must_complete:
                    cancel(task, "cancelled by shutdown")
        if cmd.kill:
            for task in list(self.ledger.tasks.values()):
                cancel(task, "cancelled by a forced shutdown")
        self.maybe_finish_shutdown()

    def maybe_finish_shutdown(self) -> None:
        """Once closing and nothing is left to run: stop the workers, then the loop."""
        if not self.closing or self.ledger.tasks:
            return
        if not self.pool.stop_all() and not self._stopped.is_set():
            self.loop.stop()

    def _teardown(self) -> None:
        taken = self.doors.shut()
        if taken is not None:  # pragma: no cover - adopted by any drain before the stop
            taken.fut._settle_closed()
        self.memcap.stop()
        self.pool.teardown()
        self.transport.close()
        with self._post_lock:
            self._inbox_closed = True
            self._stopped.set()
            leftovers = list(self._inbox)
            self._inbox.clear()
        for cmd in leftovers:  # posted after the last drain: answer, never strand a caller
            if isinstance(cmd, Submit):
                cmd.task.fut._settle_closed()
            elif isinstance(cmd, Cancel):
                cmd.reply.set_result(False)
            elif isinstance(cmd, Call | Ask):  # an Ask is then answered by its caller
                cmd.reply.set_exception(ClosedError("the executor is shut down"))
            elif isinstance(cmd, LetGo):
                self.ledger.let_go_batch(cmd.holders)
                if cmd.reply is not None:
                    cmd.reply.set_result(None)
            elif isinstance(cmd, Shutdown) and cmd.reply is not None:
                cmd.reply.set_result(None)
        for reply in self._shutdown_replies:
            if not reply.done():
                reply.set_result(None)
        # no post writes any more (the inbox is closed, under the lock posts write under)
        try:
            self.loop.remove_reader(self._wake_r)
        except Exception:  # pragma: no cover - a loop closed already
            pass
        for fd in {self._wake_r, self._wake_w}:
            os.close(fd)
        try:
            self.loop.close()
        except Exception:  # pragma: no cover
            pass


# what post() writes: an eventfd takes eight bytes, added to its counter; a pipe any
_WAKE = (1).to_bytes(8, "little")


def _wake_fds() -> tuple[int, int]:
    """The descriptors that wake the supervisor's loop, ``(read end, write end)``, both
    non-blocking and closed on exec: one eventfd (Linux), else a pipe."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    r, w = os.pipe()  # (close-on-exec already)
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
