"""``TaskFuture``: a real ``concurrent.futures.Future`` with ArdiQ-style introspection."""

from __future__ import annotations

import _thread
import concurrent.futures as cf
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._errors import ClosedError
from ._map_chunk import handing_over
from ._results import TaskResult, pack
from ._runtime._task import AS_KEPT, UNBOUND
from ._runtime.protocol._commands import Info, Status

if TYPE_CHECKING:
    from ._runtime._task import Task
    from ._runtime.supervisor import Supervisor
    from ._snapshots import TaskInfo

__all__ = ["FutureCondition", "TaskFuture"]

T = TypeVar("T")
_PENDING = cf._base.PENDING
_FINISHED = cf._base.FINISHED
# the states in which cf.Future.set_result raises InvalidStateError
_DONE = frozenset((cf._base.CANCELLED, cf._base.CANCELLED_AND_NOTIFIED, _FINISHED))


class FutureCondition(_thread.RLock, threading.Condition):  # type: ignore[misc]
    """A future's ``threading.Condition`` that is also its own ``RLock`` (``cf.Future``
    makes a condition over an RLock), with its deque of waiters made on the first
    ``wait()``: 1 object a future, not 3 (8 with ``Condition.__init__``'s bound methods),
    for the cyclic garbage collector to allocate and walk, and ``with fut._condition``
    enters the lock in C. Every future of a bulk submission lives until its result is read,
    so each object tracked per task was paid for again by each full collection while they
    lived (see ``TaskFuture.__init__``). ``wait`` and ``notify`` are the standard
    library's own (this Python's); the lock methods they use are the RLock's."""

    __slots__ = ("_waiters",)
    _waiters: deque[Any]
    # not Condition.__init__ (a lock of its own, its methods bound on the instance): the
    # RLock is made by __new__, and nothing else is set
    __init__ = _thread.RLock.__init__

    def __repr__(self) -> str:
        return f"<FutureCondition({_thread.RLock.__repr__(self)})>"

    def wait(self, timeout: float | None = None) -> bool:
        try:
            self._waiters  # noqa: B018 - made on the first wait
        except AttributeError:
            self._waiters = deque()
        return threading.Condition.wait(self, timeout)

    def notify(self, n: int = 1) -> None:
        try:
            self._waiters  # noqa: B018
        except AttributeError:  # nobody ever waited: only the ownership check is left
            if not self._is_owned():  # type: ignore[attr-defined]
                raise RuntimeError("cannot notify on un-acquired lock") from None
            return
        threading.Condition.notify(self, n)

    def notify_all(self) -> None:
        try:
            waiters = self._waiters
        except AttributeError:  # nobody ever waited (as notify, without a second probe)
            if not self._is_owned():  # type: ignore[attr-defined]
                raise RuntimeError("cannot notify on un-acquired lock") from None
            return
        threading.Condition.notify(self, len(waiters))


class TaskFuture(cf.Future[T], Generic[T]):
    """The handle of one submitted task.

    A :class:`concurrent.futures.Future`, so ``result()``, ``exception()``, ``done()``,
    ``add_done_callback()``, ``concurrent.futures.wait``/``as_completed`` and
    ``asyncio.wrap_future`` all work; ``await fut`` works in any running event loop.

    Beyond the standard:

    - :meth:`cancel` also stops a *running* task (a sync attempt's worker is killed and
      replaced; an async one is cancelled inside its worker). It returns False only when the
      task has already finished; a task it cancels ends with a ``cancelled`` record.
    - :meth:`status`, :meth:`info` and :meth:`task_result` introspect the task.

    Done-callbacks run on the executor's supervisor thread: keep them short, and do not wait
    there for another task's result.

    The value is the future's: ``result()`` gives the same object every time, and once you
    drop the future (and the value) the executor holds no reference to it; ``run()`` and
    lookups by id make it again from the serialized form they keep.
    """

    # bytes of value its map's reader frees by taking it (a map without buffersize)
    _unread_bytes = 0
    # cf.Future only iterates it, and appends in add_done_callback (which makes the list
    # first, below): most futures never get a callback, and each list would be one more
    # object a task for the garbage collector
    _done_callbacks: Any = ()
    # the list of cf.wait/as_completed's waiters (see _waiters), until made: most futures
    # are never waited on so
    _waiter_list: list[Any] | None = None
    # the finished task that keeps this future's record, packed (see Task.finished): the
    # record is made from it on first read, and handed out by lookups too while the future
    # lives; the task lets go of it with the future (__del__)
    _kept_by: Any = None
    weight: ClassVar[int] = 1
    """How many tasks it stands for, in a map's window (a chunk's handle: its items)."""

    @property
    def _waiters(self) -> list[Any]:
        """``concurrent.futures``' list of this future's waiters, made on first use.
        ``concurrent.futures`` uses it only with the future's condition held, as
        ``set_result`` does (reading ``_waiter_list``, which makes nothing)."""
        waiters = self._waiter_list
        if waiters is None:
            waiters = self._waiter_list = []
        return waiters

    @_waiters.setter
    def _waiters(self, waiters: list[Any]) -> None:
        self._waiter_list = waiters

    def __del__(self) -> None:
        kept_by = self._kept_by
        if kept_by is not None:  # from now on, what it hands out is made from what it kept
            kept_by.live = UNBOUND  # (first: see Task.own_record)
            kept_by.record = None

    def __init__(self, supervisor: Supervisor, task_id: str, name: str) -> None:
        # cf.Future.__init__'s fields (a unit test keeps them in step), with a lighter
        # condition: one is made per task (see FutureCondition)
        self._condition = FutureCondition()
        self._state = _PENDING
        self._result = None
        self._exception = None
        # _waiters: made on first use; _done_callbacks: the class's empty tuple until the
        # first add_done_callback
        self._sup = supervisor
        self._task: Task | None = None
        # its record once read (with the value itself: the caller's); one a settled task
        # keeps is made on first read (see _own_record)
        self._record: TaskResult | None = None
        self._parked_in: Any = None  # the executor holding it back for max_pending, if any
        self.task_id = task_id
        """The task's id (yours, from ``task_id=``, or a uuid4 hex)."""
        self.name = name
        """The task's name (``name=``, or the callable's name)."""

    def __repr__(self) -> str:
        with self._condition:
            state = self._state
        return f"<TaskFuture {self.name!r} id={self.task_id} state={state.lower()}>"

    # -- settled by the supervisor ---------------------------------------------------------

    def _settle(self, record: TaskResult) -> None:
        """Attach the task's record and resolve the future (one settling thread)."""
        self._record = record
        self._settle_as(record.status, record.value, record.exception)

    def _settle_as(self, status: str, value: Any, exc: BaseException | None) -> None:
        """Resolve the future as the task ended (supervisor thread; the supervisor has
        given the task its kept record first, which the future's record is made from)."""
        self._task = None
        if status == "succeeded":
            self.set_result(value)
        elif status == "failed":
            assert exc is not None
            self.set_exception(exc)
        else:
            super().cancel()
            # wakes cf.wait/as_completed waiters, which plain cancel() does not
            self.set_running_or_notify_cancel()

    def _own_record(self) -> TaskResult | None:
        """Its record once done (made on the first read, see ``Task.own_record``), else
        None."""
        record = self._record
        if record is None and self.done():
            kept_by = self._kept_by
            if kept_by is None:  # (settled without a task: it has its record already)
                return self._record
            ok = self._state == _FINISHED and self._exception is None
            record = kept_by.own_record(self._result if ok else AS_KEPT)
            self._record = record
        return record

    def _settle_closed(self) -> None:
        """Fail a task that reached a supervisor after it stopped (any thread)."""
        exc = ClosedError(f"the executor shut down before task {self.name!r} could run")
        self._settle_here("failed", exc, str(exc))

    def _settle_cancelled(self, message: str) -> None:
        """Cancel a task the supervisor never received (a parked submission)."""
        self._settle_here("cancelled", None, message)

    def _settle_here(self, status: str, exc: BaseException | None, message: str) -> None:
        """Settle, in this thread, a task no supervisor holds: no attempt was made."""
        task = self._task
        opts = None if task is None else task.opts
        now = time.perf_counter()
        record = TaskResult(
            task_id=self.task_id,
            name=self.name,
            status=status,  # type: ignore[arg-type]
            exception=exc,
            priority=3 if opts is None else opts.priority,
            must_complete=False if opts is None else opts.must_complete,
            group_id=None if opts is None else opts.group_id,
            detached=False if opts is None else opts.detached,
            created_at=now if task is None else task.created_at,
            finished_at=now,
            message=message,
            metadata=None if opts is None else opts.metadata,
        )
        if task is not None:  # what the executor keeps of it: this record
            task.finished(pack(record))
            task.record = record  # (the future's own, handed out while it lives)
        self._settle(record)

    # -- standard surface ------------------------------------------------------------------

    def set_result(self, result: T) -> None:
        """Set the future's value, as :meth:`concurrent.futures.Future.set_result` does
        (``InvalidStateError`` if it is done already).

        The same steps inline, run once per task on the supervisor thread: the condition
        is notified only if someone ever waited on it (see ``FutureCondition``), and the
        done-callbacks are walked only if there are any."""
        cond = self._condition
        with cond:
            if self._state in _DONE:
                raise cf.InvalidStateError(f"{self._state}: {self!r}")
            self._result = result  # before _state: result() reads a finished one unlocked
            self._state = _FINISHED
            waiters = self._waiter_list  # (None: nobody ever waited so)
            if waiters:
                for waiter in waiters:
                    waiter.add_result(self)
            if getattr(cond, "_waiters", None):  # (made by a wait; empty: nobody waits now)
                cond.notify_all()
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]

    def cancel(self) -> bool:
        """Cancel the task, even a running one; False only if it had already finished."""
        if self.done():
            return self.cancelled()
        task = self._task
        if task is None:
            return self.cancelled()
        parked_in = self._parked_in
        if parked_in is not None and parked_in.withdraw(self):
            return True
        cancelled = self._sup.request_cancel(task, "cancelled by the caller")
        return self.cancelled() if cancelled is None else cancelled

    def result(self, timeout: float | None = None) -> T:
        """The task's value, waiting up to ``timeout`` seconds (None: no limit), as
        :meth:`concurrent.futures.Future.result` gives it: its exception raised instead,
        ``CancelledError`` if cancelled, ``TimeoutError`` when time runs out."""
        # a value already there is read without the lock (the supervisor sets _result
        # before _state, under the lock; a state read as finished has its result): bulk
        # submissions read most values after they arrived
        if self._state == _FINISHED and self._exception is None:
            return self._result  # type: ignore[return-value]
        return super().result(timeout)

    def add_done_callback(self, fn: Callable[[cf.Future[T]], object]) -> None:
        """Call ``fn(future)`` once the future is done (at once if it is), as
        :meth:`concurrent.futures.Future.add_done_callback` does."""
        if type(self._done_callbacks) is tuple:
            with self._condition:
                if type(self._done_callbacks) is tuple:
                    self._done_callbacks = []
        super().add_done_callback(fn)

    def __await__(self) -> Generator[Any, None, T]:
        """``await fut``: the value, or the task's exception raised."""
        import asyncio  # loaded already where anything awaits (not at the executor's start)

        return asyncio.wrap_future(self).__await__()

    # -- as an entry of a map's window or of a group (see ``_map.MapEntry``): one item ----

    def _in_batch(self, task: Task) -> Task:
        """What the batch of ``run()`` keeps for it: its task (which keeps its record)."""
        return task

    def _ended(self, i: int) -> bool:
        """Has it ended? (Its only item is item 0.)"""
        return self.done()

    def _wait_item(self, i: int, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for it to end; whether it did."""
        try:
            self.exception(timeout)
        except cf.TimeoutError:
            return False
        except cf.CancelledError:
            pass
        return True

    def _on_progress(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` once it has ended (on the supervisor thread, or here if it has)."""
        self.add_done_callback(lambda _: wake())

    def _item(self, i: int) -> T:
        """Its value (once done); its error, or ``CancelledError``, is raised instead."""
        return self.result()

    def _take_values(self, start: int = 0) -> Iterator[Any]:
        """Once done: its value (``start`` 0) as an iterator that does not hold it once
        yielded; its error, or ``CancelledError``, is raised instead when it is read."""
        if start:
            return iter(())
        if self.cancelled() or self.exception() is not None:
            return self._raising()
        return handing_over([self.result()])

    def _raising(self) -> Generator[Any, None, None]:
        self.result()  # raises the task's exception, or CancelledError
        yield from ()

    def _drop_values(self) -> None:
        """Nobody will read its value through the map: nothing to let go of (the value is
        the future's, and so the caller's)."""

    def _collect(self, values: list[Any], bad: list[TaskResult]) -> None:
        """Once done: append its value to ``values``, or its record to ``bad``."""
        if self._state == _FINISHED and self._exception is None:
            values.append(self._result)
            return
        record = self._own_record()
        assert record is not None
        bad.append(record)

    # -- introspection ---------------------------------------------------------------------

    def status(self) -> str:
        """``"queued"`` | ``"scheduled"`` | ``"running"`` | ``"complete"`` (a record exists).

        A task sent ahead to a busy worker but not started yet is still ``"queued"``.
        """
        task = self._task
        if self.done() or task is None:
            return "complete"
        state: str = self._sup.ask(Status(None, task))
        return state

    def info(self) -> TaskInfo | None:
        """A :class:`TaskInfo` snapshot while the task is unfinished, else None."""
        task = self._task
        if self.done() or task is None:
            return None
        info: TaskInfo | None = self._sup.ask(Info(None, task))
        return info

    def task_result(self, timeout: float | None = None) -> TaskResult | None:
        """The task's :class:`TaskResult`.

        Without ``timeout``: the record if the task has finished, else None (no waiting).
        With ``timeout`` (seconds): wait up to that long; ``TimeoutError`` when time runs out.
        """
        if timeout is not None and not self.done():
            done, _ = cf.wait([self], timeout)
            if not done:
                raise TimeoutError(
                    f"task {self.name!r} (id {self.task_id}) did not finish within {timeout:g}s"
                )
        return self._own_record()
