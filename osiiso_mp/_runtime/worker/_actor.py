"""The worker actor: takes in the supervisor's messages and decides what runs next.

:class:`WorkerActor` serves one supervisor over one :class:`~..protocol._channel.Channel`,
on the worker's uvloop event loop; :class:`~._tasks.TaskRunner` runs the tasks it starts.

- Tasks wait in a local heap ordered by ``(priority, seq)``; the supervisor may send several
  ahead (pipelining) and the worker always starts the best one it holds.
- A sync task runs inline, one at a time (an announced one's start goes out before it runs).
  After an announced task the worker reads what came while it ran (a cancellation, a
  better-priority task) before it picks the next. Tasks sent *unannounced* (known tiny, no
  timeout) run back to back for up to 1 ms per loop turn, their results written together;
  the loop turns before the task after such a batch, so new messages are read.
- ``async def`` tasks run as asyncio tasks, up to ``concurrency`` at once.
- With ``max_rss`` set, the worker reads its own resident size before it starts each task;
  above the cap it starts nothing more, reports :class:`MemoryExceeded` and waits to be
  replaced, so a worker left above the cap by one task never begins the next. A worker
  the supervisor cannot read (elsewhere) also watches itself mid-task and reports its
  usage (:mod:`._watch`).
- A task cancelled before it started ends at once; a running async task is cancelled.
- On :class:`Stop` it finishes what it holds and exits with status 0; when the supervisor
  closes the channel it exits at once (nothing it computes can be delivered any more).

A failure of the worker's own code while it takes in a message or schedules tasks cannot be
put down to one task: the worker exits (:func:`~._failures.fatal`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from time import perf_counter

from .._clock import boot_id
from ..protocol._channel import Channel
from ..protocol._messages import (
    CancelTask,
    Configure,
    MemoryExceeded,
    Message,
    RunTask,
    Stop,
    TaskFinished,
    WorkerReady,
)
from ._failures import fatal
from ._logs import ForwardingHandler
from ._tasks import TaskRunner
from ._telemetry import Meter
from ._watch import UsageWatch

__all__ = ["WorkerActor"]

_BATCH_BUDGET = 0.001  # seconds of unannounced (known-tiny) sync tasks run per loop turn


class WorkerActor:
    """Serves one supervisor over one channel: its inbox, and the scheduler of what it holds."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        cfg: Configure,
        leave: Callable[[], None] | None = None,
        node: str = "",
    ):
        self._loop = loop
        self._node = node  # where it runs, as its host knows it ("": as the link says)
        # how to end (stopped, or the supervisor gone): the process exits, or, for a worker
        # hosted in a process that lives on (a cluster's actor), ``leave`` is called
        self._leave = leave
        self.left = False
        self._concurrency = cfg.concurrency
        self._max_rss = cfg.max_rss
        self._over_limit = False  # above max_rss: start nothing more, wait to be replaced
        self._meter = Meter()
        # the tasks held, waiting to start: by (priority, seq), and by seq. One no longer
        # in _waiting (cancelled) is dropped from the heap once it reaches the top.
        self._heap: list[tuple[int, int, RunTask]] = []
        self._waiting: dict[int, RunTask] = {}
        self._stopping = False
        self._pump_scheduled = False
        self._taken_in = False  # a message came in: start what it allows (_after_read)
        self._channel = Channel(
            loop, sock, self._on_message, self._on_closed, after_read=self._after_read
        )
        self._tasks = TaskRunner(
            loop, self._channel, self._meter, self._schedule_pump, shared=cfg.shared_memory
        )
        self._async = self._tasks.running  # the async tasks running, by seq (the runner's)
        self._watch: UsageWatch | None = None
        if cfg.report_usage is not None:  # a worker the supervisor cannot read: report
            self._watch = UsageWatch(self._channel, self._meter, cfg.report_usage, cfg.max_rss)
        root = logging.getLogger()
        root.setLevel(cfg.log_level)
        root.addHandler(ForwardingHandler(self._channel, cfg.log_level))

    def start(self) -> None:
        """Announce readiness (then, reporting its usage, start watching itself)."""
        ready = WorkerReady(os.getpid(), time.perf_counter(), self._node, boot_id())
        self._channel.send(ready)
        if self._watch is not None:
            self._channel.flush_blocking()  # ready before any report
            self._watch.start()

    # -- inbox -----------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        try:
            if isinstance(msg, RunTask):
                self._waiting[msg.seq] = msg
                heapq.heappush(self._heap, (msg.priority, msg.seq, msg))
            elif isinstance(msg, CancelTask):
                self._cancel(msg.seq)
            elif isinstance(msg, Stop):
                self._stopping = True
            self._taken_in = True
        except BaseException as exc:  # a message half taken in: what this worker holds is unsure
            fatal(exc, f"taking in {type(msg).__name__}")

    def _cancel(self, seq: int) -> None:
        if self._waiting.pop(seq, None) is not None:  # its heap entry is dropped
            # never started: no telemetry (the supervisor records none for it)
            done = TaskFinished(seq, "cancelled", b"", None, time.perf_counter(), 0.0, 0, 0)
            self._channel.send(done)
            return
        task = self._async.get(seq)
        if task is not None:
            task.cancel()

    def _on_closed(self) -> None:
        # The supervisor is gone: nothing we compute can be delivered any more.
        self._end()

    # -- scheduling ------------------------------------------------------------------------

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _after_read(self) -> None:
        """After a read (all of its messages taken in), in the same turn of the loop: start
        what the messages allow, as a pump would one turn later."""
        if self._taken_in:
            try:
                self._run_held()
            except BaseException as exc:  # outside any one task (as in _pump)
                fatal(exc, "while scheduling tasks")

    def _pump(self) -> None:
        self._pump_scheduled = False
        try:
            self._run_held()
        except BaseException as exc:  # outside any one task (those are caught in _run_held)
            fatal(exc, "while scheduling tasks")

    def _run_held(self) -> None:
        """Start what the worker holds, best first, as far as the rules below allow."""
        self._taken_in = False  # (what drain() takes in below, this call starts)
        heap = self._heap
        waiting = self._waiting
        batch_end = 0.0  # set once a sync task ran in this turn
        unsent = False  # an announced task's result is queued, not yet written
        # this turn's sends wait for the flush at the end (not for one more turn of the
        # loop); an exception escaping before it ends the worker (_pump)
        self._channel.will_flush()
        while heap:
            _, seq, msg = heap[0]
            if waiting.get(seq) is not msg:  # cancelled while it waited
                heapq.heappop(heap)
                continue
            if self._max_rss is not None:
                try:
                    over = self._above_max_rss()
                except BaseException as exc:  # the measurement failed: this task cannot start
                    heapq.heappop(heap)
                    del waiting[seq]
                    self._tasks.internal_error(msg, exc, "starting")
                    continue
                if over:
                    break
            if msg.is_async:
                if len(self._async) >= self._concurrency:
                    break
                heapq.heappop(heap)
                del waiting[seq]
                try:
                    self._tasks.start_async(msg)
                except BaseException as exc:
                    self._tasks.internal_error(msg, exc)
                continue
            if batch_end and (msg.announce or perf_counter() > batch_end):
                # let the loop read new messages (and send results) before this one
                self._schedule_pump()
                break
            heapq.heappop(heap)
            del waiting[seq]
            if unsent and not msg.announce:
                # out before this one runs unannounced: should it crash the worker, the
                # result must not be lost with it (the crash would be put down to the
                # announced task, which the supervisor saw start and never finish)
                self._channel.flush_blocking()
            unsent = False  # an announced start writes it with its TaskStarted
            try:
                self._tasks.run_sync(msg)
            except BaseException as exc:  # the task's own exceptions are caught inside
                self._tasks.internal_error(msg, exc)
            if msg.announce:
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
                batch_end = perf_counter() + _BATCH_BUDGET
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

    def _exit(self) -> None:
        self._channel.flush_blocking()  # every result out before the exit
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self._end()

    def _end(self) -> None:
        if self._leave is None:
            os._exit(0)
        if not self.left:
            self.left = True
            self._leave()
