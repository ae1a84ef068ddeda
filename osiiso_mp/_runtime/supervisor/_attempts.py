"""Attempts: what a worker says about a task's attempt, what happens when it says nothing
(killed, crashed), and whether the task is tried again.

Timeouts are timers on the supervisor's loop, armed from the worker's ``TaskStarted``
timestamp (on the supervisor's clock: one clock on a host, mapped otherwise). A sync
attempt past its timeout is killed with its worker; async attempts are timed out inside the
worker, with a kill as a backstop. A failed attempt is retried after its backoff while the
task's ``retries`` last (:func:`.._policy.retry_delay`), else the task finishes failed.
Supervisor thread only.
"""

from __future__ import annotations

import pickle
import time
from typing import TYPE_CHECKING

from ..._errors import InternalError, Retry, TaskTimeoutError
from ..._errors import SerializationError as _SerializationError
from ..._results import Outcome, make_attempt
from .._policy import retry_delay
from .._retention import StoredValue, kept_as_is
from ..protocol._serialize import rebuild_exception
from ._common import (
    ASYNC_GRACE,
    Cancelled,
    message_bytes,
    short_error,
    unreported_attempt,
)

if TYPE_CHECKING:
    from .._task import Task
    from ..protocol._messages import ErrorInfo, TaskFinished, TaskStarted
    from ._actor import Supervisor
    from ._view import WorkerView

__all__ = ["Attempts"]


class Attempts:
    """Turns worker events into attempts, and failures into retries (supervisor thread)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        sup = self.sup
        self.loop = sup.loop
        self.ledger = sup.ledger
        self.pool = sup.pool
        self.dispatch = sup.dispatch
        self.outcomes = sup.outcomes
        self.chunks = sup.chunks
        self.estimates = sup.dispatch.estimates
        self.doors = sup.doors

    def on_started(self, w: WorkerView, msg: TaskStarted) -> None:
        """An attempt began: arm its timeout, if any."""
        task = w.started(msg.seq)
        if task is None:
            return
        task.started_at = msg.started_at
        if task.first_started_at is None:
            task.first_started_at = msg.started_at
        if task.abandoned:
            # cancelled after it was sent: a sync attempt is stopped the hard way; an async
            # one is cancelled inside the worker by the CancelTask already on its way
            if not task.is_async:
                self.pool.kill_settling(
                    w, time.perf_counter(), "a cancelled task had started there"
                )
            return
        task.state = "running"
        outcomes = self.outcomes
        if outcomes.hooks:
            outcomes.hook("on_start", task.fut)
        timeout = task.opts.timeout
        if timeout is not None:
            due = msg.started_at + timeout
            if task.is_async:
                due += ASYNC_GRACE
            delay = max(0.0, due - time.perf_counter())
            task.timer = self.loop.call_later(delay, self._on_timeout, w, task, due)

    def _on_timeout(self, w: WorkerView, task: Task, due: float) -> None:
        task.timer = None
        if task.seq not in w.sent or w.killed:
            return
        now = time.perf_counter()
        if now < due:  # fired early (uvloop's timers: see Dispatch._due): wait out the rest
            task.timer = self.loop.call_later(due - now, self._on_timeout, w, task, due)
            return
        timeout = task.opts.timeout or 0.0
        self.dispatch.detach(w, task)
        self.pool.kill_settling(w, now, f"task {task.name!r} timed out there")
        err = TaskTimeoutError(timeout, name=task.name, task_id=task.task_id)
        self.attempt_over(task, w, "timed_out", err, now, exit_code=-9)

    def on_finished(self, w: WorkerView, msg: TaskFinished) -> None:
        """An attempt ended, as the worker reports it."""
        task = w.sent.get(msg.seq)
        if task is None:
            return
        self.dispatch.detach(w, task)
        if not w.sent and self.doors.opened is None:
            # before the future is settled: the caller it wakes may send its next task
            # through the door (anything this handler queues closes it again)
            self.doors.open()
        if msg.started_at is not None:
            w.done += 1
        if task.abandoned:
            return
        if msg.outcome == "cancelled" and msg.started_at is None:
            self.dispatch.requeue(task)  # dropped before it started, unasked: run it again
            return
        task.started_at = msg.started_at
        if msg.outcome == "succeeded":
            self._succeeded(w, task, msg)
            return
        if msg.outcome == "cancelled":
            self._record(task, w, msg, "cancelled", "cancelled in the worker")
            self.outcomes.finish(task, "cancelled", message="cancelled in the worker")
            return
        info: ErrorInfo = pickle.loads(msg.payload)
        error = rebuild_exception(info)
        if msg.outcome == "timed_out" and isinstance(error, TaskTimeoutError):
            # timed out inside the worker (async): name the task in the error
            cause = error.__cause__
            error = TaskTimeoutError(
                error.timeout, name=task.name, task_id=task.task_id, killed=False
            )
            error.__cause__ = cause
        elif isinstance(error, InternalError):
            cause = error.__cause__  # the worker knew no names: name the task here
            error = InternalError(
                error.stage, error.type_name, error.detail, name=task.name, task_id=task.task_id
            )
            error.__cause__ = cause
        self._record(task, w, msg, msg.outcome, short_error(error))
        lost = self.ledger.lost
        if msg.outcome in lost:  # an async attempt timed out in its worker
            lost[msg.outcome] += 1
        self.after_failure(task, error)

    def _succeeded(self, w: WorkerView, task: Task, msg: TaskFinished) -> None:
        try:
            value = pickle.loads(msg.payload, buffers=msg.buffers)
        except BaseException as exc:
            err: BaseException = _SerializationError(
                "result",
                type(exc).__name__,
                f"unpickling failed in the parent: {exc}",
                name=task.name,
                task_id=task.task_id,
            )
            self._record(task, w, msg, "failed", short_error(err))
            self.after_failure(task, err)
            return
        self._record(task, w, msg, "succeeded", "")
        stored: StoredValue | None = None
        size = 0  # the bytes the budget counts (0: nothing keeps the value)
        if self.ledger.holds(task.opts):
            payload = msg.payload
            if kept_as_is(value, payload, msg.buffers):
                size = len(payload)
            else:
                stored = StoredValue(payload, msg.buffers)
                size = stored.nbytes
        came = 0  # its size as it came, for a map's read-ahead
        if task.flow is not None:
            came = stored.nbytes if stored is not None else message_bytes(msg)
        self.outcomes.finish(
            task, "succeeded", value=value, stored=stored, kept_size=size, flow_bytes=came
        )

    def _record(
        self, task: Task, w: WorkerView, msg: TaskFinished, outcome: Outcome, error: str
    ) -> None:
        started = msg.started_at
        if started is not None:
            self.estimates.observe(task.key, msg.finished_at - started)
        finished = msg.finished_at
        waited = (finished if started is None else started) - task.queued_since
        ran = 0.0 if started is None else finished - started
        attempts = task.attempts
        task.attempts = (
            *attempts,
            make_attempt(  # Attempt's fields in order, given positionally (made per task)
                len(attempts) + 1,  # number
                w.id,  # worker
                w.pid,  # pid
                waited if waited > 0.0 else 0.0,  # queued_for
                started,  # started_at
                finished,  # finished_at
                ran if ran > 0.0 else 0.0,  # duration
                msg.cpu_time,
                msg.peak_rss,
                msg.rss_delta,
                outcome,
                error,
                None,  # exit_code
                w.node,
            ),
        )
        if task.first_started_at is None and started is not None:
            task.first_started_at = started
        if self.outcomes.hooks:
            self.outcomes.hook("on_attempt", task.attempts[-1])

    def attempt_over(
        self,
        task: Task,
        w: WorkerView,
        outcome: Outcome,
        exc: BaseException,
        now: float,
        *,
        exit_code: int | None,
        peak_rss: int = 0,
    ) -> None:
        """An attempt ended without a report from the worker (killed, crashed, cancelled);
        ``peak_rss`` is the worker's size when it was killed for memory, else unknown (0)."""
        lost = self.ledger.lost
        if outcome in lost:
            lost[outcome] += 1
        if task.chunk is not None and outcome != "cancelled":
            self.chunks.split_chunk(task)
            return
        if task.started_at is not None:
            self.estimates.observe(task.key, now - task.started_at)
        error = str(exc) if isinstance(exc, Cancelled) else short_error(exc)
        task.attempts += (
            unreported_attempt(
                task, w, outcome, error, now, exit_code=exit_code, peak_rss=peak_rss
            ),
        )
        outcomes = self.outcomes
        if outcomes.hooks:
            outcomes.hook("on_attempt", task.attempts[-1])
        if outcome == "cancelled":
            outcomes.finish(task, "cancelled", message=str(exc))
        else:
            self.after_failure(task, exc)

    def after_failure(self, task: Task, exc: BaseException) -> None:
        """An attempt failed: try again after the backoff, or finish the task failed."""
        outcomes = self.outcomes
        if task.cancel_reason is not None:
            outcomes.finish(task, "cancelled", message=task.cancel_reason)
            return
        opts = task.opts
        delay = retry_delay(
            attempts_made=len(task.attempts),
            retries=opts.retries,
            base_delay=opts.retry_delay,
            backoff=opts.backoff,
            requested=exc.delay if isinstance(exc, Retry) else None,
        )
        if delay is None or self.sup.broken is not None:
            outcomes.finish_failed(task, exc)
            return
        task.worker = None
        task.started_at = None
        task.queued_since = time.perf_counter()  # the retry's wait (backoff included) begins
        if outcomes.hooks:
            outcomes.hook("on_retry", task.fut, exc)
        if task.state == "complete":  # the hook cancelled it
            return
        self.ledger.retries += 1
        if delay <= 0:
            self.dispatch.enqueue(task)
        else:
            self.dispatch.schedule(task, delay)
