"""``map`` in chunks: many items per message, one record per item.

``map`` cuts its items into chunks (:func:`._runtime._policy.chunk_size`, or ``chunksize``)
and submits each chunk as one :class:`MapChunk`; the items keep their own ids and records
(see :mod:`._runtime._chunk`). A :class:`MapWindow` holds what is in flight (and streams
more in with ``buffersize``); the values come back in input order through
:func:`map_results` (``Executor.map``; ``AsyncExecutor.map`` awaits the same window).
Items that cannot be pickled together are submitted one by one instead, so that the one at
fault fails alone; so are the items of a map that needs one task per message.

Values are handed over, not kept: a chunk's values wait in its :class:`MapChunk` until the
map reads them, and the reader lets go of each as it yields it, so that once the caller
drops a value nothing of the executor's holds it (what ``run()`` and lookups read is the
chunk's serialized copy). A map whose iterator is closed or dropped lets go of the values
it never read.

The reader takes a chunk's items as they end, in order, without waiting for the whole
chunk: a chunk whose values are large stops in its worker at 16 MiB of them, and its other
items then run one by one, each of whose values the reader takes as soon as it comes
(the chunk's ``_ready`` count, which the supervisor advances, says how many have ended).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._results import TaskResult
from ._runtime._chunk import MAX_CHUNK, SEQ_STEP
from ._runtime.protocol._commands import MapRead

if TYPE_CHECKING:
    from ._progress import ProgressTracker
    from ._resume import Resume
    from ._runtime._read_ahead import ReadAhead
    from ._runtime._task import Task
    from ._runtime.supervisor import Supervisor

__all__ = [
    "MapEntry",
    "MapWindow",
    "check_map_sizes",
    "collect_values",
    "map_results",
]


class MapEntry(Protocol):
    """What a map's window and a group's values read of an entry: a ``MapChunk`` (many
    items), or a ``TaskFuture`` (one item, submitted on its own). Item ``i`` is the
    entry's ``i``-th task, in input order."""

    _task: Task | None  # while the supervisor holds it
    _unread_bytes: int  # bytes of values its map's reader frees by taking them

    @property
    def weight(self) -> int:
        """How many items (tasks) it stands for."""

    def done(self) -> bool:
        """Have all its items ended?"""

    def cancel(self) -> bool:
        """Cancel the items that have not ended."""

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(entry)`` once it is done."""

    def _ended(self, i: int) -> bool:
        """Has item ``i`` ended, or the whole entry?"""

    def _wait_item(self, i: int, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for item ``i`` (or the entry) to end; whether it did."""

    def _on_progress(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` once more of it has ended (any thread)."""

    def _item(self, i: int) -> Any:
        """Item ``i``'s value, handed over once it has ended; its error raised instead."""

    def _take_values(self, start: int = 0) -> Iterator[Any]:
        """Once done, the values of its items from ``start`` on, handed over one by one
        (an item's error raised at its place). Read them once."""

    def _drop_values(self) -> None:
        """Let go of the values waiting to be read (nobody will read them)."""

    def _collect(self, values: list[Any], bad: list[TaskResult]) -> None:
        """Once done: append its values to ``values`` and the records of the items that
        did not succeed to ``bad``."""


Items = list[tuple[Any, ...]]


# a map's reader tells the supervisor what it has read in steps of at least this many bytes
# (the read-ahead's limit is far larger: see ReadAhead)
READ_REPORT_BYTES = 1 << 20
# and, after waiting this long (seconds) for the entry it reads next, that it waits for it
READER_PATIENCE = 0.05


class MapWindow:
    """The entries of one ``map`` in flight, in input order, and (streaming) where more
    come from: batches of argument tuples from ``more``, submitted by ``submit_items``
    while fewer than ``window`` items are outstanding.

    An entry stays here until its values are handed over, so that an exception in the
    reader (a timeout, an item's error, Ctrl-C) or closing it cancels it with the rest.

    A map without ``window`` has a read-ahead (``flow``, see ``ReadAhead``) when the
    executor bounds values: the window reports to the supervisor (``sup``) the bytes of
    values the reader has taken, and that the reader is gone.
    """

    def __init__(
        self,
        entries: deque[MapEntry],
        more: Iterator[Items] | None,
        submit_items: Callable[[Items], list[MapEntry]],
        window: int | None,
        flow: ReadAhead[Task] | None = None,
        sup: Supervisor | None = None,
        resume: Resume | None = None,
    ) -> None:
        self.entries = entries
        self.more = more
        self._submit_items = submit_items
        self._window = window
        self._outstanding = sum(e.weight for e in entries)
        self._flow = flow
        self._sup = sup
        self._read = 0  # bytes taken and not yet reported
        self._tracker: ProgressTracker | None = None
        self._total_known = more is None
        self._resume = resume  # the map's checkpoint: what is handed over is recorded first

    def refill(self) -> list[MapEntry]:
        """Submit from ``more`` up to the window; the entries added. When ``more`` runs out
        it becomes None."""
        added: list[MapEntry] = []
        more = self.more
        if more is None:
            return added
        assert self._window is not None
        while self._outstanding < self._window:
            batch = next(more, None)
            if batch is None:
                self.more = None
                break
            new = self._submit_items(batch)
            added.extend(new)
            self.entries.extend(new)
            self._outstanding += len(batch)
        return added

    def track(self, tracker: ProgressTracker | None) -> None:
        """Follow this map's tasks with ``tracker`` (a progress bar), from now on."""
        self._tracker = tracker
        self._total_known = self.more is None
        if tracker:
            tracker.track_all(self.entries, last=self._total_known)

    def advance(self) -> bool:
        """Submit more (streaming) up to the window, the tracker following; whether an
        entry is left to read. (The step both facades' map loops take per entry.)"""
        added = self.refill()
        tracker = self._tracker
        if tracker:
            if added:
                tracker.track_all(added)
            if not self._total_known and self.more is None:
                tracker.track_all((), last=True)  # input used up: the total is known
        self._total_known = self.more is None
        return bool(self.entries)

    def close(self) -> None:
        """The reader is done (or gone): cancel what is left, close the tracker."""
        self.cancel_rest()
        if self._tracker:
            self._tracker.close()

    def pop(self) -> MapEntry:
        """The first entry, taken out (its values are about to be handed over)."""
        head = self.entries.popleft()
        self._outstanding -= head.weight
        if self._flow is not None:
            self._read += head._unread_bytes
            if self._read >= READ_REPORT_BYTES:
                self._report(gone=False)
        return head

    def item(self, head: MapEntry, i: int) -> Any:
        """Item ``i`` of the first entry, ``head`` (under way), handed over: its error, or
        ``CancelledError``, raised instead. Recorded in the map's checkpoint first."""
        if self._resume is not None:
            self._resume.durable(head, i)
        return head._item(i)

    def take(self, start: int) -> Iterator[Any]:
        """The first entry's values from item ``start`` on, handed over (see
        ``MapEntry._take_values``), the entry taken out; recorded in the map's checkpoint
        first."""
        head = self.pop()
        if self._resume is not None:
            self._resume.durable(head)
        return head._take_values(start)

    @property
    def bounded(self) -> bool:
        """Does this map's read-ahead hold tasks back while its reader is behind?"""
        return self._flow is not None

    def patience(self, end: float | None) -> float:
        """How long a reader waits for an entry before it says so (``waiting``): a bounded
        map's reader, that is, with the whole map due at ``end`` (monotonic)."""
        if end is None:
            return READER_PATIENCE
        return max(0.0, min(READER_PATIENCE, end - time.monotonic()))

    def wait_item(self, head: MapEntry, i: int, end: float | None) -> None:
        """Wait for item ``i`` of the first entry, ``head``, to end (or the whole entry);
        ``TimeoutError`` once ``end`` has passed."""
        if head._ended(i):
            return
        if self.bounded:
            if head._wait_item(i, self.patience(end)):
                return
            self.waiting()
        left = None if end is None else max(0.0, end - time.monotonic())
        if not head._wait_item(i, left):
            raise TimeoutError()

    def waiting(self) -> None:
        """The reader has been waiting for the first entry a while: make sure its tasks are
        not held back (a retried element, say, may come after later ones: see ReadAhead)."""
        task = self.entries[0]._task
        if task is not None:
            self._report(gone=False, waiting_for=task.seq + SEQ_STEP - 1)

    def _report(self, *, gone: bool, waiting_for: int | None = None) -> None:
        """Tell the supervisor what the reader has taken (``gone``: it will take no more;
        ``waiting_for``: the last seq of the entry it waits for)."""
        flow, sup = self._flow, self._sup
        if flow is None or sup is None:
            return
        nbytes, self._read = self._read, 0
        if gone:
            self._flow = None  # once
        try:
            sup.post(MapRead(flow, nbytes, waiting_for, gone))
        except Exception:  # ClosedError: nothing is held back any more
            pass

    def cancel_rest(self) -> None:
        """The reader is gone: cancel every entry still here, and let go of the values
        they hold for it."""
        for entry in self.entries:
            entry.cancel()
        self.drop_values()
        if self.entries:
            self._report(gone=True)

    def drop_values(self) -> None:
        """Let go of the values waiting here to be read (nobody will read them now; the
        batch of ``run()`` has its own copy)."""
        for entry in self.entries:
            entry._drop_values()

    def __del__(self) -> None:
        # a map whose iterator was dropped without being started never runs its cleanup:
        # its tasks run on (as in the standard library), without waiting for a reader
        self.drop_values()
        if self.entries:
            self._report(gone=True)


def map_results(
    win: MapWindow, end: float | None, tracker: ProgressTracker | None = None
) -> Generator[Any, None, None]:
    """The values of a ``map``, in input order, as ``Executor.map`` yields them: an entry's
    items as they end (a chunk under way, see the module's docstring), the rest of them at
    once when it is done.

    No local variable refers to an entry or a value while a value is yielded: what the
    caller drops is freed.
    """
    win.track(tracker)
    try:
        while win.advance():
            head = win.entries[0]
            i = 0
            while True:
                win.wait_item(head, i, end)
                if head.done():
                    break
                yield win.item(head, i)  # its error, if it failed, is raised here
                i += 1
            del head
            yield from win.take(i)
    finally:
        win.close()


def collect_values(entries: Iterable[MapEntry]) -> list[Any]:
    """Wait for every entry; their values in input order.

    Raises :class:`ExecutionError` if any task failed or was cancelled: its ``.results``
    holds those records in input order (as ``TaskGroup.values`` does).
    """
    entries = list(entries)
    cf.wait(entries)  # type: ignore[arg-type]
    values: list[Any] = []
    bad: list[TaskResult] = []
    for entry in entries:
        entry._collect(values, bad)
    if bad:
        from ._summary import RunSummary

        RunSummary(results=tuple(bad), duration=0.0).raise_for_errors(include_cancelled=True)
    return values


def check_map_sizes(chunksize: int | None, buffersize: int | None) -> None:
    """Raise ``ValueError`` for a ``chunksize`` or ``buffersize`` that ``map`` refuses."""
    if chunksize is not None and (
        not isinstance(chunksize, int)
        or isinstance(chunksize, bool)
        or not 1 <= chunksize <= MAX_CHUNK
    ):
        raise ValueError(f"chunksize must be an int from 1 to {MAX_CHUNK}, got {chunksize!r}")
    if buffersize is not None and (
        not isinstance(buffersize, int) or isinstance(buffersize, bool) or buffersize < 1
    ):
        raise ValueError(f"buffersize must be a positive int, got {buffersize!r}")
