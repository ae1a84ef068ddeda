"""What the executor keeps of finished tasks' values, and the budget that bounds them.

A finished task's value reaches the caller as the object itself: through the task's future
(``fut.result()``, ``fut.task_result().value``), which the caller holds, or through a
``map`` iterator, which lets go of each value as it hands it over. What the executor keeps
besides, for ``run()`` and for lookups by id, holds the value in the serialized form it
came in from the worker (:class:`StoredValue`: the pickle and its out-of-band buffers, as
received, not copied again), so that a value the caller drops is freed::

    worker --TaskFinished(payload, buffers)--> supervisor: _on_finished
                                                 |  pickle.loads(...) -> the value
                                                 |  StoredValue(payload, buffers)
                      +--------------------------+-----------------------+
                      v                                                  v
      the record with the value -> TaskFuture          the kept record (StoredValue) -> Task,
      the caller's: the future holds it                in the batch of run() and in the
                                                       lookups by id (result_ttl)

While the caller holds the future, the future's own record is the one handed out (a
summary's, a lookup's: the same object every time; the task keeps a weak reference to the
future for this). Otherwise a record handed out from what is kept is a copy that makes the
value on first read and then keeps it (:func:`handout`: the copy is the caller's); a kept
record never holds the object. A small immutable scalar (``None``, a number, a short
string) is kept as it is, in the future's own record (:func:`kept_as_is`), as are
failures and cancellations, which have no value: such a record is handed out itself.

:class:`ValueBudget` counts the kept values at their serialized size, oldest first, from
their task's end until the executor lets go of them: once ``run()`` has summarised the task
(or the batch dropped it) *and* its ``result_ttl`` has run out. Past ``retain_bytes`` the
oldest are released: their records stay, and the value reads as
:class:`~osiiso_mp.ValueReleasedError`. A map chunk keeps its items' values as one pickle
and counts as one holder.

The budget is the supervisor thread's; the batch tells it what ``run()`` took over with a
posted call (``Supervisor.batch_let_go``).
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from .._results import DeferredValue, ReleasedValue, TaskResult, raw_value, with_value
from .protocol._buffers import blob_size

__all__ = [
    "IN_BATCH",
    "IN_LOOKUPS",
    "ChunkValues",
    "Holder",
    "StoredValue",
    "ValueBudget",
    "handout",
    "kept_as_is",
]

IN_BATCH = 1
"""A holder's value is kept for the batch of the next ``run()``."""
IN_LOOKUPS = 2
"""A holder's value is kept for lookups by id, until ``result_ttl`` runs out."""


class StoredValue(DeferredValue):
    """A value as it came from the worker: its pickle (``payload``) and out-of-band
    ``buffers``, as received (they belong to nothing else once the message is read).
    Loading it unpickles them again: a value whose data was out of band (a numpy array)
    shares that memory, as the first object made from it did."""

    __slots__ = ("buffers", "nbytes", "payload")

    def __init__(self, payload: Any, buffers: tuple[Any, ...]) -> None:
        self.payload = payload
        self.buffers = buffers
        self.nbytes = blob_size(payload) + sum(blob_size(b) for b in buffers)

    def load(self, record: TaskResult | None = None) -> Any:
        return pickle.loads(self.payload, buffers=self.buffers)


class _Handed(DeferredValue):
    """The value of a record handed to the caller from a kept one: made from the stored
    form on first read, then kept by that record (the caller's)."""

    __slots__ = ("stored",)

    cache: ClassVar[bool] = True

    def __init__(self, stored: StoredValue) -> None:
        self.stored = stored

    def load(self, record: TaskResult) -> Any:
        return self.stored.load()


class ChunkValues:
    """A map chunk's values as the records handed out for it read them: the chunk's stored
    pickle ``(values, errors)``, unpickled once, on the first read of any of them."""

    __slots__ = ("_stored", "_values")

    def __init__(self, stored: StoredValue) -> None:
        self._stored: StoredValue | None = stored
        self._values: list[Any] | None = None

    def item(self, i: int) -> Any:
        """Item ``i``'s value."""
        values = self._values
        if values is None:
            stored = self._stored
            assert stored is not None
            values = self._values = stored.load()[0]
            self._stored = None
        return values[i]

    def deferred(self, i: int) -> DeferredValue:
        """What a handed-out record of item ``i`` holds in its ``value`` slot."""
        return _ChunkItem(self, i)


class _ChunkItem(DeferredValue):
    """Item ``index`` of a :class:`ChunkValues`, made on first read and then kept."""

    __slots__ = ("index", "values")

    cache: ClassVar[bool] = True

    def __init__(self, values: ChunkValues, index: int) -> None:
        self.values = values
        self.index = index

    def load(self, record: TaskResult) -> Any:
        return self.values.item(self.index)


_AS_IS = frozenset({type(None), bool, int, float, str, bytes})
_AS_IS_MAX = 256  # bytes of pickle


def kept_as_is(value: Any, payload: Any, buffers: tuple[Any, ...]) -> bool:
    """Is ``value`` kept as it is rather than serialized? For a small immutable scalar
    (``None``, a bool, a number, a short string), whose pickle ``payload`` (``bytes``) is
    about as large as the object: nothing would be saved, and a record shared with the
    caller's future saves making another (nor can such a value be watched with a weak
    reference). A hot path: one per task."""
    return (
        type(value) in _AS_IS
        and type(payload) is bytes
        and len(payload) <= _AS_IS_MAX
        and not buffers
    )


def handout(record: TaskResult) -> TaskResult:
    """The record to give the caller for a kept ``record``: a copy that makes its value on
    first read when the value is stored, else the record itself (nothing in it changes)."""
    value = raw_value(record)
    if type(value) is StoredValue:
        return with_value(record, _Handed(value))
    return record


class Holder(Protocol):
    """What holds kept values for :class:`ValueBudget`: a finished task of its own (its
    ``Task``) or a map chunk."""

    holds: int  # IN_BATCH | IN_LOOKUPS: who still needs the values
    kept_size: int  # bytes counted for it (set by the budget)

    def release(self, marker: ReleasedValue) -> None:
        """Let go of the values: each becomes ``marker``."""


class ValueBudget:
    """The kept values, oldest first, within ``limit`` bytes (``None``: no limit).

    Supervisor thread only. A holder enters with :meth:`keep` (again, for more values of
    the same holder: a chunk's retried items), leaves when nobody needs its values any more
    (:meth:`let_go` clears one of its ``holds`` bits at a time), or is released, oldest
    first, while the total is above the limit.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.total = 0
        self.released = 0  # holders released so far
        self.marker = ReleasedValue(limit)
        self._kept: OrderedDict[Holder, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, holder: Holder, size: int) -> None:
        """Count ``size`` more bytes of values kept by ``holder`` (whose ``holds`` is set),
        then release the oldest while over the limit."""
        if holder in self._kept:
            holder.kept_size += size
        else:
            holder.kept_size = size
            self._kept[holder] = None
        self.total += size
        limit = self.limit
        if limit is not None and self.total > limit:
            self._release_oldest(limit)

    def let_go(self, holder: Holder, what: int) -> None:
        """``what`` (``IN_BATCH`` or ``IN_LOOKUPS``) no longer needs ``holder``'s values;
        once nothing does, they no longer count."""
        holder.holds &= ~what
        if not holder.holds and holder in self._kept:
            del self._kept[holder]
            self.total -= holder.kept_size
            holder.kept_size = 0

    def let_go_all(self, holders: Iterable[Holder], what: int) -> None:
        """:meth:`let_go` for each of ``holders``."""
        for holder in holders:
            self.let_go(holder, what)

    def _release_oldest(self, limit: int) -> None:
        kept = self._kept
        while self.total > limit and kept:
            holder, _ = kept.popitem(last=False)
            self.total -= holder.kept_size
            holder.kept_size = 0
            holder.release(self.marker)
            self.released += 1
