"""Dispatch: the ready queue, timers for delays and backoffs, the rate gate, and sending
tasks to workers, ahead of time where that is safe.

- Pipelining: a worker may hold tasks beyond the one it runs, so it never idles waiting
  for the next message, but only behind tasks whose callable is known to be short
  (:class:`.._policy.DurationEstimates`): as many as fit in the work budget of
  :func:`.._policy.ahead_budget` (four GIL switch intervals, 20 ms by default, so that a
  worker does not run dry while a thread of the user's holds the GIL), 2 to 64. A worker
  running a sync task does not read its pipe, so a task queued behind a long one could
  not be taken back for an idle worker. A better priority task may still overtake what a
  worker holds (:func:`.._policy.may_prefetch`). Sync tasks known to take under 1 ms,
  without a timeout, are sent unannounced and run in batches (``announce``).
- A ``map`` without ``buffersize`` runs ahead of its reader only so far: its tasks past its
  read-ahead wait here, parked (:class:`.._policy.ReadAhead`).

Supervisor thread only.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from ..._errors import ClosedError
from ..._errors import SerializationError as _SerializationError
from .._chunk import CHUNK_SUFFIX
from .._policy import (
    DurationEstimates,
    ReadyQueue,
    TokenBucket,
    ahead_budget,
    may_prefetch,
    must_announce,
    send_depth,
)
from .._read_ahead import ReadAhead
from .._task import Task
from ..protocol._framing import run_frame
from ..protocol._messages import RunTask
from ._chunks import ChunkItem
from ._common import duplicate_id, task_suffix

if TYPE_CHECKING:
    import asyncio

    from ..protocol._commands import MapRead
    from ._actor import Supervisor
    from ._view import WorkerView

__all__ = ["Dispatcher"]


class Dispatcher:
    """Queues tasks and sends them to workers (supervisor thread)."""

    def __init__(self, sup: Supervisor) -> None:
        config = sup.config
        self.sup = sup
        self.queue: ReadyQueue[Task] = ReadyQueue()
        self.estimates = DurationEstimates()
        self._bucket = (
            None
            if config.rate is None
            else TokenBucket(config.rate, config.burst, time.monotonic())
        )
        self._rate_timer: asyncio.TimerHandle | None = None
        self._concurrency = config.concurrency
        self._budget = ahead_budget(sys.getswitchinterval())  # work a worker may hold
        self._per_worker = config.max_tasks_per_worker
        # the read-ahead of every map without buffersize that has live tasks
        self.flows: set[ReadAhead[Task]] = set()

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        sup = self.sup
        self.loop = sup.loop
        self.ledger = sup.ledger
        self.pool = sup.pool
        self.outcomes = sup.outcomes
        self.doors = sup.doors

    # -- arrival ---------------------------------------------------------------------------

    def on_submit(self, task: Task, sent_to: WorkerView | None = None) -> None:
        """A new task: refused at once, or queued (or scheduled for its start); or, when a
        caller's thread has sent it to a worker itself (``sent_to``, see :mod:`._door`),
        held by that worker as if dispatch had sent it there."""
        ledger = self.ledger
        ledger.admit(task)
        refusal = self._refusal(task)
        if refusal is not None:
            self.outcomes.finish_failed(task, refusal)
            return
        if task.chunk is None:
            ledger.by_id[task.task_id] = task
        if sent_to is not None:  # (a plain task: no flow, no start delay)
            if sent_to.killed or sent_to.exited:  # pragma: no cover - adopted before either
                self.enqueue(task)
            else:
                self._held_by(sent_to, task)
            return
        if task.flow is not None:
            task.flow.track(task.seq)
            self.flows.add(task.flow)
        wait = task.opts.first_start_after(time.time())
        if wait:  # delay= / run_at=: wait on a timer, holding no worker
            self.schedule(task, wait)
        else:
            self.enqueue(task)

    def _refusal(self, task: Task) -> BaseException | None:
        """Why a new task fails at once without an attempt, or None when it may run."""
        sup = self.sup
        if (
            task.opts.task_id is not None  # an id of the caller's; ours are random uuid4s
            and task.chunk is None
            and isinstance(self.ledger.lookup(task.task_id), (Task, ChunkItem))
        ):  # lost a race with another thread's same id
            return duplicate_id(task.task_id)
        if sup.closing:
            return ClosedError(f"the executor is shut down{task_suffix(task)}")
        if task.error is not None:  # it could not be pickled
            return task.error
        if sup.broken is not None:
            return ClosedError(f"{sup.broken}{task_suffix(task)}")
        return None

    def schedule(self, task: Task, delay: float) -> None:
        """Park ``task`` for ``delay`` seconds (a start delay or a retry backoff): it is
        queued no sooner (see :meth:`_due`)."""
        task.state = "scheduled"
        task.scheduled_for = time.time() + delay
        due = time.perf_counter() + delay
        task.timer = self.loop.call_later(delay, self._due, task, due)

    def _due(self, task: Task, due: float) -> None:
        # uvloop's timers count whole milliseconds from a loop time read at the start of
        # the turn: one may fire up to a millisecond or so early (a retry 0.1 s after its
        # failure started 99.2 ms after it). Early: wait out the rest.
        left = due - time.perf_counter()
        if left > 0 and task.state == "scheduled":
            task.timer = self.loop.call_later(left, self._due, task, due)
            return
        task.timer = None
        task.scheduled_for = None
        if task.state == "scheduled":
            self.enqueue(task)
            self.dispatch()

    def enqueue(self, task: Task) -> None:
        """Queue ``task`` to start."""
        task.state = "queued"
        self.queue.push(task.opts.priority, task.seq, task)

    def requeue(self, task: Task) -> None:
        """Queue ``task`` again (a worker dropped it unstarted), unless it is cancelled."""
        if task.cancel_reason is None:
            self.enqueue(task)

    # -- sending ---------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Send queued tasks to the workers that may take them, best first."""
        queue = self.queue
        if not queue:
            return
        self.doors.close()  # the worker it is open to may take these
        workers = self.pool.ready()
        estimates = self.estimates
        # per worker, the longest estimate among the callables it holds (None: one is long
        # or unknown); estimates do not change during this call, so it is worked out once
        held: dict[int, float | None] = {}
        # and, for a run of tasks alike (the common case), what is worked out once: each
        # callable's own estimate, and per worker the depth last found with the inputs it
        # was found for. Both per worker figures depend on the callables it holds only
        # through their names (w.names' keys): they stand until it is sent a new one.
        own_of: dict[str, float | None] = {}
        depths: dict[int, tuple[tuple[float | None, bool, bool], int]] = {}
        while True:
            entry = queue.peek()
            if entry is None:
                return
            task = entry[2]
            flow = task.flow
            if flow is not None and flow.holds_back(task.seq):
                queue.drop_peeked()  # its map's reader is behind: it waits (see ReadAhead)
                flow.park(task.seq, task)
                continue
            chunk, is_async = task.chunk is not None, task.is_async
            rank = (entry[0], entry[1])
            best: WorkerView | None = None
            fewest = 0  # how many best holds
            inputs: tuple[float | None, bool, bool] | None = None  # worked out when needed
            own = None
            for w in workers:
                n = len(w.sent)
                if best is not None and n >= fewest:
                    continue
                if n:  # (an idle worker may take any task: every depth is at least 1)
                    if inputs is None:
                        if not (is_async or chunk):
                            key = task.key
                            if key in own_of:
                                own = own_of[key]
                            else:
                                own = own_of[key] = estimates.longest((key,))
                        inputs = (own, chunk, is_async)
                    found = depths.get(w.id)
                    if found is not None and found[0] == inputs:
                        depth = found[1]
                    else:
                        depth = self._depth(w, own, chunk, is_async, held)
                        depths[w.id] = (inputs, depth)
                    if not (n < depth or may_prefetch(rank, n, depth, w.worst)):
                        continue
                best, fewest = w, n
                if not n:
                    break  # none holds fewer
            if best is None:
                return
            if self._bucket is not None and not self._rate_allows():
                return
            queue.drop_peeked()
            new_name = task.key not in best.names
            if not self._send(best, task):  # it failed, and hooks may have run: start afresh
                depths.clear()
                held.pop(best.id, None)
            elif new_name:  # it holds one more callable now
                held.pop(best.id, None)
                depths.pop(best.id, None)
            if best.killed or best.retiring:  # max_tasks_per_worker reached
                workers.remove(best)

    def _depth(
        self,
        w: WorkerView,
        own: float | None,
        chunk: bool,
        is_async: bool,
        held: dict[int, float | None],
    ) -> int:
        """How many tasks ``w`` may hold and still be sent this one (see send_depth);
        ``own``: the longest estimate of its callable (None: long or unknown, or not a
        sync task); ``held``: per worker, that of the callables it holds, as found so far
        in this dispatch."""
        estimates = self.estimates
        # send ahead only behind tasks known to be short (see send_depth)
        longest = None
        if own is not None:
            if w.id not in held:
                held[w.id] = estimates.longest(w.names)
            theirs = held[w.id]
            longest = None if theirs is None else max(own, theirs)
        return send_depth(
            chunk=chunk,
            is_async=is_async,
            concurrency=self._concurrency,
            holds_chunks_only=chunk and all(n.endswith(CHUNK_SUFFIX) for n in w.names),
            holds_short_only=is_async and estimates.all_short(w.names),
            longest=longest,
            budget=self._budget,
        )

    def _rate_allows(self) -> bool:
        """Take a start token; when none is left, arm one timer to dispatch again."""
        assert self._bucket is not None
        if self._rate_timer is not None:
            return False
        wait = self._bucket.take(time.monotonic())
        if wait == 0.0:
            return True
        self._rate_timer = self.loop.call_later(wait, self._rate_due)
        return False

    def _rate_due(self) -> None:
        self._rate_timer = None
        self.dispatch()

    def _send(self, w: WorkerView, task: Task) -> bool:
        """Send ``task`` to ``w``; False when it cannot travel (it is failed here)."""
        payload, buffers, is_async = task.payload, task.buffers, task.is_async
        fields = (
            task.seq,
            len(task.attempts) + 1,  # attempt
            task.opts.priority,
            payload,
            is_async,
            task.opts.timeout if is_async else None,
            self._announce(task),
        )
        pool = self.pool
        if pool.flush_owned:  # the drain writes it at its end (before send: it may raise)
            sent_to = pool.sent_to
            if w not in sent_to:
                sent_to[w] = None
                w.link.will_flush()
        try:
            if buffers or type(payload) is not bytes:  # large parts travel beside the pickle
                w.link.send(RunTask(*fields, buffers, task.chunk is not None))
            else:  # the common case: one pickle, framed directly (same bytes)
                w.link.send_frame(run_frame(*fields, task.chunk is not None))
        except ValueError as exc:  # beyond what one frame can hold: it can never be sent
            err = _SerializationError(
                "arguments", "frame", str(exc), name=task.name, task_id=task.task_id
            )
            self.outcomes.finish_failed(task, err)
            return False
        self._held_by(w, task)
        return True

    def _held_by(self, w: WorkerView, task: Task) -> None:
        """``task`` was sent to ``w`` (by dispatch, or through the door)."""
        task.state = "queued"
        task.worker = w
        task.started_at = None
        w.add(task)
        w.assigned += 1
        limit = self._per_worker
        if limit is not None and w.assigned >= limit:
            self.pool.retire(w)

    def _announce(self, task: Task) -> bool:
        """Must the worker report ``task``'s start before running it (see
        :func:`.._policy.must_announce`)?"""
        return must_announce(
            is_async=task.is_async,
            timeout=task.opts.timeout,
            suspect=task.suspect,
            chunk=task.chunk is not None,
            start_hook="on_start" in self.outcomes.hooks,
            estimate=self.estimates.estimate(task.key),
        )

    def detach(self, w: WorkerView, task: Task) -> None:
        """``task`` is no longer held by ``w`` (its timer, if any, is off)."""
        w.remove(task)
        if task.worker is w:  # Invariant: a task's worker holds it (a requeued one: none)
            task.worker = None
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None

    def fail_queued(self, error: Any) -> None:
        """The pool cannot serve: every queued task (held back ones too) fails with
        ``error(task)``."""
        self.open_maps(None)  # what maps held back fails with the rest
        for task in list(self.queue.items()):
            self.queue.remove(task.seq)
            self.outcomes.finish_failed(task, error(task))

    # -- read-ahead of maps without buffersize ---------------------------------------------

    def delivered(self, flow: ReadAhead[Task], entry: Any, nbytes: int) -> None:
        """``nbytes`` of a map's values now wait for its reader in ``entry`` (its
        ``MapChunk``, or the ``TaskFuture`` of an element sent on its own), which tells the
        reader how much it frees by taking them (``_unread_bytes``)."""
        flow.delivered(nbytes)
        entry._unread_bytes += nbytes

    def ended_in_flow(self, flow: ReadAhead[Task], seq: int) -> None:
        """Task ``seq`` of a map has ended."""
        flow.untrack(seq)
        if not flow:
            self.flows.discard(flow)
        if flow.parked:
            self._unpark(flow)

    def _unpark(self, flow: ReadAhead[Task]) -> None:
        """Queue again the parked tasks of ``flow`` that may start now."""
        for task in flow.release():
            if task.state == "queued" and task.cancel_reason is None:
                self.enqueue(task)

    def on_map_read(self, cmd: MapRead) -> None:
        """A map's reader says what it has taken, what it waits for, or that it is gone."""
        flow = cmd.flow
        flow.read(cmd.nbytes)
        if cmd.waiting_for is not None:
            flow.wait_for(cmd.waiting_for)
        if cmd.gone:
            flow.reader_gone = True
            flow.open()
        if flow.parked:
            self._unpark(flow)

    def open_maps(self, flow: ReadAhead[Task] | None) -> None:
        """Hold nothing back any more in ``flow``, or in every map (None)."""
        for each in (flow,) if flow is not None else tuple(self.flows):
            each.open()
            if each.parked:
                self._unpark(each)
