"""Outcomes: each task's one record, made once (``finish``); cancellation; ``fail_first``;
the user's hooks.

Cancellation always wins unless the record already exists: a cancelled task is finished at
once; a worker still holding it is told to drop it, or killed if it is running it (a sync
attempt; an async one is cancelled inside the worker). Supervisor thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._config import HOOKS
from ..._results import TaskResult, make_result, pack_fields, with_value
from ..protocol._buffers import release
from ..protocol._messages import CancelTask
from ._chunks import ItemSink
from ._common import Cancelled, log, message_of

if TYPE_CHECKING:
    from .._retention import StoredValue
    from .._task import Task
    from ._actor import Supervisor

__all__ = ["Outcomes"]


class Outcomes:
    """Finishes tasks, cancels them, and runs the hooks (supervisor thread)."""

    def __init__(self, sup: Supervisor) -> None:
        config = sup.config
        self.sup = sup
        self.fail_policy = config.fail_policy  # run(fail_policy=...) may swap it for a run
        self.hooks: dict[str, Callable[..., Any]] = {
            name: hook for name in HOOKS if (hook := getattr(config, name)) is not None
        }

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        sup = self.sup
        self.ledger = sup.ledger
        self.pool = sup.pool
        self.dispatch = sup.dispatch
        self.attempts = sup.attempts
        self.chunks = sup.chunks

    # -- records ---------------------------------------------------------------------------

    def finish_failed(self, task: Task, exc: BaseException) -> None:
        """Finish ``task`` failed with ``exc``."""
        self.finish(task, "failed", exc=exc, message=message_of(exc))

    def finish(
        self,
        task: Task,
        status: str,
        *,
        value: Any = None,
        stored: StoredValue | None = None,
        kept_size: int = 0,
        exc: BaseException | None = None,
        message: str = "",
        flow_bytes: int = 0,
    ) -> None:
        """Make the task's one record and settle its future. ``value`` goes to the caller;
        what the executor keeps is ``stored``, its serialized form, or else the record as
        it is (no value, or one kept as is); ``kept_size`` bytes of it count in the value
        budget (0: none). ``flow_bytes``: the value's size as it came, for the read-ahead
        of the map it belongs to."""
        if task.state == "complete":  # pragma: no cover - the invariant says once
            log.error("osiiso_mp: task %s finished twice", task.task_id)
            return
        if task.chunk is not None:
            self.chunks.end_chunk(task, status, exc, message)
            return
        task.state = "complete"
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        self.ledger.forget(task)
        attempts = task.attempts
        finished = attempts[-1].finished_at if attempts else time.perf_counter()
        first = task.first_started_at
        ran = 0.0 if first is None else finished - first
        opts = task.opts
        head = (  # TaskResult's fields in order, but attempt_log (made per task)
            task.task_id,
            task.name,
            status,
            value,
            exc,  # exception
            len(attempts),  # attempts
            opts.priority,
            opts.must_complete,
            opts.group_id,
            opts.detached,
            task.created_at,
            first,  # started_at
            finished,  # finished_at
            ran if ran > 0.0 else 0.0,  # duration
            message,
            opts.metadata,
        )
        if task.buffers or type(task.payload) is not bytes:  # (plain bytes: nothing shared)
            release((task.payload, *task.buffers))  # shared memory is freed here, not later
        task.payload = b""
        task.buffers = ()
        sink = task.fut
        flow = task.flow
        record: TaskResult | None = None
        if type(sink) is ItemSink:  # an item of a map chunk: the chunk keeps it
            self.ledger.ended[status] += 1
            record = make_result(*head, attempts)
            sink.settle_item(
                record,
                record if stored is None else with_value(record, stored),
                kept_size,
                flow_bytes,
            )
        else:
            # what the executor keeps: the record packed, its value stored when it is (the
            # future's own record is made when first read: most never are)
            if stored is None:
                self.ledger.retain(task, status, pack_fields(head, attempts), kept_size)
            else:
                kept = pack_fields(head, attempts, value=stored)
                self.ledger.retain(task, status, kept, kept_size, value)
            if flow is not None and status == "succeeded":
                self.dispatch.delivered(flow, sink, flow_bytes)
            sink._settle_as(status, value, exc)
        if flow is not None:
            self.dispatch.ended_in_flow(flow, task.seq)
        if self.hooks:
            if record is None:
                record = task.records()[0]  # (the future's own, made now)
            self.hook("on_complete", record)
        if status == "failed" and self.fail_policy == "fail_first":
            self.trip_fail_first(task)
        if self.sup.closing:
            self.sup.maybe_finish_shutdown()

    # -- cancellation ----------------------------------------------------------------------

    def cancel(self, task: Task, reason: str) -> bool:
        """Cancel ``task`` now; False only when it had already finished. For a map chunk:
        every item of it that has not ended."""
        chunk = task.chunk
        if chunk is None:
            return self._cancel_one(task, reason)
        cancelled = self._cancel_one(task, reason)
        for item in list(chunk.split.values()):
            cancelled = self._cancel_one(item, reason) or cancelled
        return cancelled

    def _cancel_one(self, task: Task, reason: str) -> bool:
        if task.state == "complete":
            return False
        if task.seq not in self.ledger.tasks:  # not yet seen: its Submit is still queued
            return False
        task.cancel_reason = reason
        now = time.perf_counter()
        w = task.worker
        if self.dispatch.queue.remove(task.seq) or task.state == "scheduled" or w is None:
            self.finish(task, "cancelled", message=reason)
        elif task.seq in w.unstarted:
            task.abandoned = True
            w.link.send(CancelTask(task.seq))
            self.finish(task, "cancelled", message=reason)
        else:  # running
            if task.is_async:
                task.abandoned = True
                w.link.send(CancelTask(task.seq))
                self.attempts.attempt_over(
                    task, w, "cancelled", Cancelled(reason), now, exit_code=None
                )
            else:
                self.dispatch.detach(w, task)
                self.pool.kill_settling(w, now, f"task {task.name!r} was cancelled there")
                self.attempts.attempt_over(
                    task, w, "cancelled", Cancelled(reason), now, exit_code=-9
                )
        return True

    # -- fail policy and hooks -------------------------------------------------------------

    def set_fail_policy(self, policy: str, batch: tuple[Any, ...]) -> str | None:
        """Use ``policy`` from now on; the one it replaced, or None when unchanged.
        Switching to ``fail_first`` trips at once if ``batch`` already holds a failure."""
        old = self.fail_policy
        if old == policy:
            return None
        self.fail_policy = policy
        if policy == "fail_first":
            for entry in batch:
                record = entry.failed()
                if record is not None:
                    self.trip_fail_first(record)
                    break
        return old

    def trip_fail_first(self, failed: Task | TaskResult) -> None:
        """``fail_first``: cancel every unfinished task but ``must_complete`` ones."""
        reason = f"cancelled: fail_first after task {failed.name!r} failed"
        for other in list(self.ledger.tasks.values()):
            if not other.opts.must_complete:
                self.cancel(other, reason)

    def hook(self, name: str, *args: Any) -> None:
        """Run a user hook on this thread; one that raises is logged and ignored."""
        hook = self.hooks.get(name)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            log.exception("osiiso_mp: the %s hook raised; ignored", name)
