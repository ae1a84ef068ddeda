"""How far the workers of a ``map`` without ``buffersize`` run ahead of its reader: its
values waiting to be read are bounded, and what the reader waits for never waits. Pure
policy (no I/O), owned by the supervisor thread, tested without processes."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["ReadAhead"]

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """How far the workers of one ``map`` without ``buffersize`` run ahead of its reader.

    Every element of such a map is submitted at once (as in the standard library), so a
    reader slower than the workers would hold a growing backlog of values nobody has read
    yet. This bounds it: while more than ``limit`` bytes of the map's values (counted as
    they came from the workers) wait for the reader, its tasks stay queued instead of
    starting, except those up to the one the reader waits for (``waiting_for``, a seq: the
    reader reads in input order, which is seq order, and says so when it has to wait), so
    that what it waits for always comes. Once ``opened`` (something waits for all of the
    map's tasks: ``run()``, a shutdown, a lookup with a timeout; or the reader is gone),
    nothing is held back any more.

    The supervisor thread owns it: it tracks the map's live tasks (``track`` as they
    arrive, ``untrack`` as they end), counts values ``delivered`` and, from the reader's
    messages, ``read`` and ``wait_for``; ``holds_back`` decides at dispatch, ``park``
    keeps a task held back, and ``release`` gives back the parked tasks that may start.
    """

    __slots__ = ("_live", "limit", "opened", "parked", "reader_gone", "unread", "waiting_for")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.unread = 0  # bytes delivered and not (yet, as far as we know) read
        self.waiting_for = -(1 << 62)  # no task is needed by the reader yet
        self.opened = False
        self.reader_gone = False
        self.parked: dict[int, T] = {}
        self._live: set[int] = set()

    def __len__(self) -> int:
        """How many of the map's tasks are live (submitted and not ended)."""
        return len(self._live)

    def track(self, seq: int) -> None:
        """A task of the map, ``seq``, is live (submitted, or split off a chunk)."""
        self._live.add(seq)

    def untrack(self, seq: int) -> None:
        """Task ``seq`` has ended (it is no longer parked either)."""
        self._live.discard(seq)
        self.parked.pop(seq, None)

    def delivered(self, nbytes: int) -> None:
        """``nbytes`` more of the map's values wait for the reader."""
        self.unread += nbytes

    def read(self, nbytes: int) -> None:
        """The reader has taken ``nbytes`` of them."""
        self.unread = max(0, self.unread - nbytes)

    def wait_for(self, seq: int) -> None:
        """The reader waits for the tasks up to ``seq``: none of them is held back."""
        self.waiting_for = max(self.waiting_for, seq)

    def open(self) -> None:
        """Hold nothing back from now on."""
        self.opened = True

    @property
    def holding(self) -> bool:
        """Are the map's tasks beyond ``waiting_for`` held back now?"""
        return not self.opened and self.unread > self.limit

    def holds_back(self, seq: int) -> bool:
        """Must task ``seq`` wait (be parked) rather than start now?"""
        return self.holding and seq > self.waiting_for

    def park(self, seq: int, item: T) -> None:
        """Keep ``item`` (task ``seq``, live) until :meth:`release` gives it back."""
        self.parked[seq] = item

    def release(self) -> list[T]:
        """The parked tasks that may start now, in seq order: all of them unless the map is
        holding, else those up to ``waiting_for``."""
        parked = self.parked
        if not parked:
            return []
        holding = self.holding
        free = sorted(s for s in parked if not holding or s <= self.waiting_for)
        return [parked.pop(s) for s in free]
