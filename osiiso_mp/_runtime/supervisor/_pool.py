"""The worker pool: one slot per worker, each holding its current process's link.

It starts workers through the transport (and sets them up: :class:`.._messages.Configure`),
routes what they send to the parts that handle it, notices exits and replaces the dead,
kills, and settles what a lost worker held: tasks only sent there go back to the queue,
running ones end ``crashed``. A worker stopped (SIGSTOP) for two seconds is replaced too.
Supervisor thread only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..._errors import WorkerCrashedError, describe_exit
from ..._resources import thread_env
from .._clock import boot_id, clock_offset
from ..protocol._buffers import PassedFd
from ..protocol._messages import (
    ChunkFinished,
    InitFailed,
    LogRecorded,
    MemoryExceeded,
    Message,
    Stop,
    TaskFinished,
    TaskStarted,
    UsageReported,
    WorkerReady,
    on_our_clock,
)
from ._common import INIT_FAILURES, LIVENESS_INTERVAL, STOP_GRACE, STOPPED_GRACE, log
from ._setup import configure, executor_number, forward_log
from ._view import WorkerView

if TYPE_CHECKING:
    import asyncio

    from ._actor import Supervisor

__all__ = ["WorkerPool", "WorkerRow"]

# one worker in a stats() snapshot: (slot, pid, state, running task ids, done, rss, cpu,
# restarts)
WorkerRow = tuple[int, int | None, str, tuple[str, ...], int, int, float, int]


class _Events:
    """A worker's link reports to the pool through this (see ``LinkEvents``)."""

    __slots__ = ("_pool", "_w", "message")

    def __init__(self, pool: WorkerPool, w: WorkerView) -> None:
        self._pool = pool
        self._w = w
        # ``message(msg)``: the pool's handler with ``w`` bound (a partial is called from
        # C: no Python frame of this class's own per message)
        self.message: Callable[[Message], None] = partial(pool.on_message, w)

    def closed(self) -> None:
        self._pool.on_closed(self._w)

    def exited(self, code: int | None, reason: str | None = None) -> None:
        self._pool.on_exit(self._w, code, reason)


class WorkerPool:
    """The workers of one executor, slot by slot (supervisor thread)."""

    def __init__(self, sup: Supervisor, initializer: bytes | None, inherited: Any) -> None:
        config = sup.config
        self.sup = sup
        self.workers: list[WorkerView | None] = [None] * config.procs
        self.respawns = 0
        self.restarts = [0] * config.procs
        self._init_failures = 0
        self._init_error: str | None = None
        self._init_stage = "initializer"  # what failed last: "initializer" or "setup"
        # workers that exited before they were ready (not killed by us), since one last was:
        # a crash while starting that no InitFailed reports (os._exit in an initializer, a
        # segfault on import) would otherwise be replaced for ever, its tasks never run
        self._early_exits = 0
        self._boot: str | None = None  # our kernel's boot id, read at the first need
        # the initializer, pickled once, and the descriptors its arguments' multiprocessing
        # objects need (kept open until teardown: every worker started gets them)
        self._initializer = initializer
        self.inherited: tuple[PassedFd, ...] = tuple(map(PassedFd, inherited))
        self._env = thread_env(config.inner_threads, config.procs)
        self._live_timer: asyncio.TimerHandle | None = None
        # while flush_owned (the inbox's drain), the workers dispatch sends a task to, once
        # each: their links are promised a flush, which flush_sent() makes
        self.flush_owned = False
        self.sent_to: dict[WorkerView, None] = {}
        self._number = executor_number()  # for the workers' process titles

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        sup = self.sup
        self.loop = sup.loop
        self.ledger = sup.ledger
        self.dispatch = sup.dispatch
        self.attempts = sup.attempts
        self.chunks = sup.chunks
        self.memcap = sup.memcap
        self.doors = sup.doors

    # -- starting --------------------------------------------------------------------------

    def start(self) -> None:
        """Start every slot's worker, and the watch for stopped ones."""
        for slot in range(len(self.workers)):
            self.spawn(slot)
        if self.sup.caps.local_pids:  # (a worker elsewhere cannot be read: see UsageWatch)
            self._live_timer = self.loop.call_later(LIVENESS_INTERVAL, self._check_liveness)

    def spawn(self, slot: int) -> None:
        """Start a worker for ``slot`` and send it its set-up."""
        sup = self.sup
        w = WorkerView(slot)
        try:
            w.link = sup.transport.connect(slot, self.loop, _Events(self, w))
        except Exception as exc:
            log.error("osiiso_mp could not start a worker: %s", exc)
            sup.break_(f"could not start a worker process: {exc}")
            return
        w.pid = w.link.pid
        w.node = w.link.node
        self.workers[slot] = w
        w.link.send(
            configure(
                sup.config,
                sup.caps,
                slot,
                w.link,
                self._initializer,
                self.inherited,
                self._env,
                self._number,
            )
        )
        w.link.flush()  # now: the first workers start before the loop runs

    # -- what workers say ------------------------------------------------------------------

    def on_message(self, w: WorkerView, msg: Message) -> None:
        """Route a worker's message to the part that handles it."""
        doors = self.doors
        if doors.opened is w or doors.door.taken is not None:  # (before deciding for w)
            doors.close()
        if w.killed:
            return  # a killed worker's last words: its tasks were settled when it was killed
        if w.clock_offset:
            msg = on_our_clock(msg, w.clock_offset)
        if isinstance(msg, TaskFinished):
            self.attempts.on_finished(w, msg)
            if self.memcap.limit is not None:
                self.memcap.after_task(w)
        elif isinstance(msg, ChunkFinished):
            self.chunks.on_chunk_finished(w, msg)
            if self.memcap.limit is not None:
                self.memcap.after_task(w)
        elif isinstance(msg, TaskStarted):
            self.attempts.on_started(w, msg)
        elif isinstance(msg, WorkerReady):
            w.pid = msg.pid
            w.node = msg.node or w.link.node
            w.ready = True
            self._init_failures = 0
            self._early_exits = 0
            if not self.sup.caps.one_clock:  # map its clock onto ours, unless it is ours
                if self._boot is None:
                    self._boot = boot_id()
                w.clock_offset = clock_offset(self._boot, msg.boot, time.perf_counter(), msg.clock)
        elif isinstance(msg, LogRecorded):
            forward_log(w, msg)
        elif isinstance(msg, UsageReported):
            w.reported = (msg.rss, msg.cpu_time, time.perf_counter())
            return  # nothing to dispatch
        elif isinstance(msg, MemoryExceeded):
            self.memcap.mark_over_cap(w, msg.rss)
        elif isinstance(msg, InitFailed):
            self._init_failures += 1
            self._init_error = msg.error
            self._init_stage = msg.stage
            from ..._remote_tb import fill_source  # (a failure: the source lines we have)

            trace = fill_source(msg.traceback)
            log.error("osiiso_mp worker %s failed: %s\n%s", msg.stage, msg.error, trace)
        if self.dispatch.queue:  # (nothing queued: a turn of the loop would find nothing)
            self.sup.dispatch_soon()
        elif doors.opened is None:
            doors.open()

    def on_closed(self, w: WorkerView) -> None:
        """End of file before the exit is seen: the process is exiting, or something closed
        the pipe and left the process alive. Give it a moment, then make sure."""
        self.doors.close_for(w)
        if not w.exited:
            self.loop.call_later(STOP_GRACE, self.kill_if_alive, w)

    def on_exit(self, w: WorkerView, code: int | None, reason: str | None = None) -> None:
        """``w``'s process has exited (``reason``: what the transport knows of why): settle
        what it held, and replace it."""
        self.doors.close_for(w)
        w.exited = True
        w.link.drain()  # deliver what it sent before it died
        w.link.close()
        if not w.killed:
            self.settle_lost(w, code, time.perf_counter(), reason)
        if self.workers[w.id] is w:
            self.workers[w.id] = None
            self._replace(w, code)
        self.dispatch.dispatch()
        self.sup.maybe_finish_shutdown()

    def _replace(self, w: WorkerView, code: int | None) -> None:
        sup = self.sup
        if sup.closing and not self.ledger.tasks:
            return
        if self._init_failures >= INIT_FAILURES:
            init = sup.config.initializer
            what = (
                "worker setup"
                if init is None or self._init_stage != "initializer"
                else f"worker initializer {getattr(init, '__qualname__', repr(init))}"
            )
            sup.break_(f"{what} failed {self._init_failures} times in a row: {self._init_error}")
            return
        if not (w.ready or w.retiring or w.killed):
            self._early_exits += 1
            # as many as the workers (at least 3): a pool of 16 whose every first start
            # fails breaks at once, one whose few unlucky starts fail does not
            if self._early_exits >= max(INIT_FAILURES, sup.config.procs):
                sup.break_(
                    f"workers exited before they were ready {self._early_exits} times in a "
                    f"row (the last: {describe_exit(code)}): something in their start-up "
                    "(an initializer, sitecustomize, an import) ends the process"
                )
                return
        if sup.broken is not None:
            return
        self.respawns += 1
        self.restarts[w.id] += 1
        if not w.ready and not w.retiring:
            # died before it could serve: back off a little to avoid a respawn storm
            self.loop.call_later(0.05 * min(self.restarts[w.id], 20), self._respawn, w.id)
        else:
            self.spawn(w.id)

    def _respawn(self, slot: int) -> None:
        sup = self.sup
        if self.workers[slot] is None and sup.broken is None and sup.alive:
            if sup.closing and not self.ledger.tasks:
                sup.maybe_finish_shutdown()
                return
            self.spawn(slot)
            self.dispatch.dispatch()

    # -- killing ---------------------------------------------------------------------------

    def kill_if_alive(self, w: WorkerView) -> None:
        """Kill ``w`` unless its exit has been seen."""
        if not w.exited:
            self.kill(w)

    def kill(self, w: WorkerView) -> None:
        """Kill ``w`` now; its tasks must already be settled by the caller."""
        self.doors.close_for(w)
        w.killed = True
        w.link.kill()

    def kill_settling(self, w: WorkerView, now: float, reason: str) -> None:
        """Kill ``w`` and settle what it held: unstarted tasks go back to the queue, and
        tasks running beside the one being stopped count as crashed."""
        self.kill(w)
        self.settle_lost(w, -9, now, reason)

    def settle_lost(self, w: WorkerView, code: int | None, now: float, reason: str | None) -> None:
        """The tasks ``w`` held are lost with it: those not started go back to the queue;
        those running end their attempt ``crashed`` (and are retried or fail)."""
        for task in list(w.sent.values()):
            self.dispatch.detach(w, task)
            if task.abandoned:
                continue
            if task.started_at is None:
                task.suspect = True  # perhaps the batch's running task (see _announce)
                self.dispatch.requeue(task)
                continue
            err = WorkerCrashedError(code, pid=w.pid, name=task.name, task_id=task.task_id)
            if reason is not None:
                err.args = (f"{err} ({reason})",)
            self.attempts.attempt_over(task, w, "crashed", err, now, exit_code=code)

    def retire(self, w: WorkerView) -> None:
        """Send no more work to ``w``; it exits once it has finished what it holds."""
        self.doors.close_for(w)
        w.retiring = True
        if not w.stop_sent:
            w.stop_sent = True
            w.link.send(Stop())
            w.link.flush()

    def stop_all(self) -> bool:
        """Ask every worker to finish and exit (killed if it has not within a grace
        period); False when none is left."""
        self.doors.close()
        live = [w for w in self.workers if w is not None]
        for w in live:
            if not w.stop_sent and not w.killed:
                w.stop_sent = True
                w.retiring = True
                w.link.send(Stop())
                self.loop.call_later(STOP_GRACE, self.kill_if_alive, w)
        return bool(live)

    # -- liveness: stopped workers ---------------------------------------------------------

    def _check_liveness(self) -> None:
        """Every half second: replace a worker that has been stopped (SIGSTOP, a debugger)
        for ``STOPPED_GRACE`` seconds. A stopped process reads no pipe and runs nothing,
        so its tasks would otherwise wait forever. The kernel's process state says it
        unambiguously, unlike silence, which a long C call holding the GIL also causes."""
        self._live_timer = self.loop.call_later(LIVENESS_INTERVAL, self._check_liveness)
        now = time.monotonic()
        for w in tuple(self.workers):
            if w is None or w.killed or w.exited:
                continue
            if not w.link.stopped():
                w.stopped_since = None
                continue
            if w.stopped_since is None:
                w.stopped_since = now
            elif now - w.stopped_since >= STOPPED_GRACE:
                log.warning(
                    "osiiso_mp: worker %d (pid %d) was stopped for %.1fs; replacing it",
                    w.id,
                    w.pid,
                    now - w.stopped_since,
                )
                self.kill_settling(
                    w, time.perf_counter(), f"it was stopped for {STOPPED_GRACE:g}s (SIGSTOP?)"
                )
                self.dispatch.dispatch()

    # -- reads -----------------------------------------------------------------------------

    def ready(self) -> list[WorkerView]:
        """The workers that may take a task now."""
        return [
            w
            for w in self.workers
            if w is not None and w.ready and not (w.killed or w.retiring or w.over_cap)
        ]

    def flush_sent(self) -> None:
        """Write now what dispatch sent while ``flush_owned`` (the links it sent to, each
        promised this write; what else is queued goes at the end of this loop turn, as
        links flush on their own)."""
        sent_to = self.sent_to
        if sent_to:
            for w in sent_to:
                if not w.exited:
                    w.link.flush()
            sent_to.clear()

    def replacements(self) -> int:
        """Workers replaced so far, counting those killed whose exit is not yet seen (their
        replacement follows it at once): a run's summary counts the replacements its own
        tasks caused, although the exit of a worker killed for a timeout is noticed just
        after the task's record is made. Read from any thread (a racy read, good enough for
        counting)."""
        pending = 0
        if not self.sup.closing:
            for w in tuple(self.workers):
                if w is not None and w.killed and not w.exited:
                    pending += 1
        return self.respawns + pending

    def rows(self) -> list[WorkerRow]:
        """Per worker ``(id, pid, state, running task ids, tasks done, rss, cpu percent,
        restarts)``, memory and CPU as the worker's link reads them."""
        rows: list[WorkerRow] = []
        for slot, w in enumerate(self.workers):
            if w is None:
                rows.append((slot, None, "starting", (), 0, 0, 0.0, self.restarts[slot]))
                continue
            running = tuple(t.task_id for t in w.sent.values() if t.state == "running")
            if w.killed or w.exited:
                state = "stopping"
            elif not w.ready:
                state = "starting"
            elif w.retiring:
                state = "retiring"
            else:
                state = "busy" if running else "idle"
            if w.exited:
                rss, cpu = 0, 0.0
            else:
                rss, cpu = w.link.usage() if self.sup.caps.local_pids else w.reported_usage()
            rows.append((slot, w.pid, state, running, w.done, rss, cpu, self.restarts[slot]))
        return rows

    def teardown(self) -> None:
        """Kill what is left and release every link and descriptor (the loop has stopped)."""
        if self._live_timer is not None:
            self._live_timer.cancel()
            self._live_timer = None
        for w in self.workers:
            if w is not None and not w.exited:
                w.link.kill()
                w.link.close()
        for passed in self.inherited:
            os.close(passed.fd)
        self.inherited = ()
