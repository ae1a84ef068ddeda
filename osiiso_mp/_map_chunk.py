"""``MapChunk``: the handle of one chunk of a ``map``, a future done once every item has
ended, holding its items' values for the map's reader.

The reader takes a chunk's items as they end, in order, without waiting for the whole
chunk: a chunk whose values are large stops in its worker at 16 MiB of them, and its other
items then run one by one, each of whose values the reader takes as soon as it comes
(``_ready``, which the supervisor advances, says how many have ended).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Generator, Iterator
from itertools import repeat, starmap
from typing import TYPE_CHECKING, Any

from ._errors import ClosedError
from ._results import TaskResult
from ._runtime._chunk import Chunk

if TYPE_CHECKING:
    from ._runtime._task import Task
    from ._runtime.supervisor import Supervisor

__all__ = ["MapChunk", "handing_over", "take"]


def take(values: list[Any], i: int) -> Any:
    """``values[i]``, taken out of the list (nothing here holds it once handed over)."""
    value, values[i] = values[i], None
    return value


def handing_over(values: list[Any]) -> Iterator[Any]:
    """The items of ``values``, in order, each taken out of the list as it is yielded (C
    loops only: a map over small values yields millions a second)."""
    values.reverse()
    return starmap(values.pop, repeat((), len(values)))


# guards every chunk's ``_ready``, ``_wakers`` and ``_waiting``: the condition a reader of
# the chunk waits on, made by the first (over this lock), notified when the chunk advances
# or settles. One per chunk, not one for all: a map's reader waits for its next chunk while
# the others settle, and a shared condition woke it for each (a thread switch and a GIL
# hand-over each time: about 5% of a fast map's CPU in the caller's process).
_PROGRESS = threading.Lock()


class MapChunk(cf.Future[None]):
    """The handle of one chunk of a ``map`` (internal): done once every item has ended.

    Its result is None; the items' outcomes are in :attr:`chunk`, their values (for the
    map's reader, once) in ``_values``. ``cancel()`` cancels the items that have not ended,
    as ``TaskFuture.cancel`` does for one task. It is also its own entry in the batch of
    the next ``run()`` (as a task submitted on its own is: its ``Task``).
    """

    # bytes of values its map's reader frees by taking them (a map without buffersize)
    _unread_bytes = 0

    def __init__(self, supervisor: Supervisor, chunk: Chunk) -> None:
        super().__init__()
        self._sup = supervisor
        self._task: Task | None = None
        self.chunk = chunk
        # the items' values, set by the supervisor, until the map reads them (None where an
        # item did not succeed); then, or when nobody will read them, None
        self._values: list[Any] | None = None
        # how many items, from the first, have ended (under _PROGRESS, while unsettled),
        # and the async readers to wake when that or the chunk's state changes
        self._ready = 0
        self._wakers: list[Callable[[], object]] = []
        self._waiting: threading.Condition | None = None

    def future(self) -> MapChunk:
        """The future to wait on for this batch entry: itself."""
        return self

    def __repr__(self) -> str:
        return f"<MapChunk {self.chunk.name!r} items={self.chunk.n} done={self.done()}>"

    @property
    def holder(self) -> Chunk:
        """What keeps its items' values for ``run()`` (see ``ValueBudget``): its chunk."""
        return self.chunk

    @property
    def weight(self) -> int:
        """How many tasks (items) it stands for."""
        return self.chunk.n

    @property
    def finished_at(self) -> float | None:
        """When its last item ended, or None while one is under way."""
        return self.chunk.finished_at if self.chunk.settled else None

    def records(self) -> list[TaskResult]:
        """Every item's record, in order (once done)."""
        return self.chunk.records()

    def failed(self) -> TaskResult | None:
        """The first failed item's record, or None (once done)."""
        for record in self.chunk.outcome.values():
            if record.status == "failed":
                return record
        return None

    # -- settled by the supervisor ---------------------------------------------------------

    def _deliver(self, values: list[Any]) -> None:
        """The values of the chunk's run (supervisor thread, before it is settled)."""
        self._values = values

    def _deliver_item(self, i: int, value: Any) -> None:
        """The value of item ``i``, which succeeded on its own (supervisor thread)."""
        values = self._values
        if values is None:
            values = self._values = [None] * self.chunk.n
        values[i] = value

    def _settle_chunk(self) -> None:
        """Every item has ended (supervisor thread)."""
        self._task = None
        self.set_result(None)
        self._wake()

    def _advance(self) -> None:
        """Some of its items may have ended while others run on (supervisor thread): count
        the ended ones from the first, and wake a reader waiting for them."""
        chunk = self.chunk
        i, n = self._ready, chunk.n
        clock = chunk.clock
        ran = 0 if clock is None else len(clock) - 1  # the items its worker ran in it
        outcome, split = chunk.outcome, chunk.split
        while i < n and (i in outcome or (i < ran and i not in split)):
            i += 1
        if i != self._ready:
            with _PROGRESS:
                self._ready = i
            self._wake()

    def _wake(self) -> None:
        with _PROGRESS:
            waiting = self._waiting
            if waiting is not None:
                waiting.notify_all()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    # -- read by the map's reader ----------------------------------------------------------

    def _ended(self, i: int) -> bool:
        """Has item ``i`` ended, or the whole chunk?"""
        return self._ready > i or self.done()

    def _wait_item(self, i: int, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for item ``i`` (or the chunk) to end; whether it did."""
        with _PROGRESS:
            waiting = self._waiting
            if waiting is None:
                waiting = self._waiting = threading.Condition(_PROGRESS)
            return waiting.wait_for(lambda: self._ended(i), timeout)

    def _on_progress(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` (on the supervisor thread, or here if it is due already) once more of
        it has ended or it has settled."""
        with _PROGRESS:
            self._wakers.append(wake)

    def _item(self, i: int) -> Any:
        """Item ``i``'s value, handed over (it has ended; the chunk may not have): its
        error, or ``CancelledError``, is raised instead."""
        return self._value_at(self._values, i)

    def _value_at(self, values: list[Any] | None, i: int) -> Any:
        record = self.chunk.outcome.get(i)
        if record is None or record.status == "succeeded":
            assert values is not None
            return take(values, i)
        if record.status == "failed":
            assert record.exception is not None
            raise record.exception
        raise cf.CancelledError(record.message)

    def _take_values(self, start: int = 0) -> Iterator[Any]:
        """The values of its items from ``start`` on (the reader took those before), in
        order, once it is done; an item's error (or cancellation) is raised at its place,
        after the values before it. The chunk gives them up to the iterator, which lets go
        of each as it yields it. Read them once."""
        values, self._values = self._values, None
        if not self.chunk.outcome and not start:
            assert values is not None
            return handing_over(values)
        return self._handing_over_from(values, start)

    def _handing_over_from(
        self, values: list[Any] | None, start: int
    ) -> Generator[Any, None, None]:
        for i in range(start, self.chunk.n):
            yield self._value_at(values, i)  # not bound to a name here while the caller has it

    def _drop_values(self) -> None:
        """Nobody will read its values (the batch of ``run()`` has its own copy)."""
        self._values = None

    def _collect(self, values: list[Any], bad: list[TaskResult]) -> None:
        """Once done: append its items' values to ``values``, in order, and the records of
        those that did not succeed to ``bad``."""
        chunk = self.chunk
        mine, self._values = self._values, None
        if not chunk.outcome and mine is not None:
            values.extend(mine)
            return
        for i, record in enumerate(chunk.records()):
            if record.status == "succeeded":
                values.append(take(mine, i) if mine is not None else record.value)
            else:
                bad.append(record)

    def _in_batch(self, task: Task) -> MapChunk:
        """What the batch of ``run()`` keeps for it: itself (its chunk keeps the records)."""
        return self

    def _settle_closed(self) -> None:
        """Fail a chunk that reached a supervisor after it stopped (any thread)."""
        # (_settle_chunk wakes its readers)
        now = time.perf_counter()
        exc = ClosedError(f"the executor shut down before map items {self.chunk.name!r} could run")
        self.chunk.end_all("failed", exc=exc, message=str(exc), attempts=(), finished_at=now)
        self.chunk.settle(now)
        self._settle_chunk()

    # -- cancellation ----------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel every item that has not ended (a running chunk's worker is replaced);
        False when none was left to cancel."""
        task = self._task
        if self.done() or task is None:
            return False
        return bool(self._sup.request_cancel(task, "cancelled by the caller"))
