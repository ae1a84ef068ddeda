"""``max_pending``: at most that many unfinished tasks at once.

Without room, the sync executor's ``submit`` waits up to ``submit_timeout`` for a slot
(:class:`QueueFullError` after that); the async one parks the task instead: its future is
returned at once, and the next task to finish hands its slot to the oldest parked one.
``submit_timeout=0`` refuses either way. A parked task has not reached the supervisor yet:
cancelling it withdraws it; a draining shutdown sends it past the limit, a cancelling one
cancels it.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ._errors import ClosedError, QueueFullError
from ._runtime.protocol._commands import Submit

if TYPE_CHECKING:
    from ._core import ExecutorCore
    from ._future import TaskFuture
    from ._runtime._task import Task

__all__ = ["Admission"]


class Admission:
    """The ``max_pending`` slots of one executor, and the tasks parked for one (any
    thread)."""

    def __init__(self, owner: ExecutorCore, limit: int, timeout: float | None) -> None:
        self._owner = owner
        self._limit = limit
        self._timeout = timeout
        self._room = threading.Semaphore(limit)
        self._lock = threading.Lock()  # guards _parked against freed slots
        self._parked: deque[TaskFuture[Any]] = deque()
        self.blocking = True  # the async twin parks instead of blocking

    def admit(self, fut: TaskFuture[Any], task: Task) -> None:
        """Hand the task to the supervisor once it has a slot (or park it)."""
        owner = self._owner
        if self.blocking or self._timeout == 0:
            self._wait_for_room()
        else:
            with self._lock:
                if not self._room.acquire(blocking=False):
                    owner.check_open()
                    # Invariant: a task is parked only while no slot is free; a finishing
                    # task takes the admit lock before it frees a slot (free_slot).
                    fut._parked_in = self
                    self._parked.append(fut)
                    owner.batch.add(fut, task)
                    return
        try:
            owner.post(fut, task)
        except BaseException:
            self.free_slot()
            raise

    def slot_done(self, _: object) -> None:
        """A done-callback: the task holding a slot finished."""
        self.free_slot()

    def free_slot(self) -> None:
        """Give a freed slot to the oldest parked task, or back to the semaphore."""
        owner = self._owner
        with self._lock:
            while self._parked:
                fut = self._parked.popleft()
                fut._parked_in = None
                if fut.done():  # cancelled while parked
                    continue
                task = fut._task
                assert task is not None
                try:
                    # not under owner.lock (shutdown flushes this queue, under this lock,
                    # after setting closed: taking owner.lock here inverted the order).
                    # Parked before the executor closed, it runs as a drain would run it;
                    # the Shutdown command, posted after the flush, comes after it.
                    owner.sup.post(Submit(task))
                except ClosedError:
                    fut._settle_closed()
                    continue
                fut.add_done_callback(self.slot_done)
                return
            self._room.release()

    def flush(self, *, cancel: bool) -> None:
        """At shutdown (before the Shutdown command): a drain runs the parked tasks, past
        max_pending; a cancelling shutdown cancels them."""
        with self._lock:
            parked, self._parked = list(self._parked), deque()
        for fut in parked:
            fut._parked_in = None
            task = fut._task
            if fut.done() or task is None:
                continue
            if cancel:
                fut._settle_cancelled("cancelled by shutdown before it was admitted")
                continue
            try:
                self._owner.sup.post(Submit(task))  # past max_pending: it frees no slot
            except ClosedError:
                fut._settle_closed()

    def withdraw(self, fut: TaskFuture[Any]) -> bool:
        """Cancel a parked task before it reached the supervisor; False if it had left."""
        with self._lock:
            try:
                self._parked.remove(fut)
            except ValueError:
                return False
            fut._parked_in = None
        fut._settle_cancelled("cancelled by the caller before it was admitted")
        return True

    def _wait_for_room(self) -> None:
        """Take a slot, waiting up to ``submit_timeout``."""
        timeout = self._timeout
        if threading.get_ident() == self._owner.sup.thread_id:
            timeout = 0.0  # a done-callback must not wait for the thread that frees room
        if self._room.acquire(timeout=timeout):
            return
        waited = "" if not timeout else f" within {timeout:g}s"
        raise QueueFullError(
            f"cannot submit: max_pending={self._limit} tasks are unfinished "
            f"and no room freed up{waited}"
        )
