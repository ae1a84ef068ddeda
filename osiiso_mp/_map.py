"""``Executor.map`` in chunks: many items per message, one record per item.

``map`` cuts its items into chunks (:func:`._runtime._policy.chunk_size`, or ``chunksize``)
and submits each chunk as one :class:`MapChunk`; the items keep their own ids and records
(see :mod:`._runtime._chunk`). The values come back in input order through
:func:`chunked_results`. Items that cannot be pickled together are submitted one by one
instead, so that the one at fault fails alone.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ClosedError
from ._progress import ProgressTracker
from ._records import RunSummary, TaskResult
from ._runtime._chunk import Chunk

if TYPE_CHECKING:
    from ._runtime._supervisor import Supervisor
    from ._runtime._task import Task

__all__ = ["MapChunk", "chunked_results", "collect_values", "weight_of"]

R = TypeVar("R")


class MapChunk(cf.Future[None]):
    """The handle of one chunk of a ``map`` (internal): done once every item has ended.

    Its result is None; the items' outcomes are in :attr:`chunk`. ``cancel()`` cancels the
    items that have not ended, as ``TaskFuture.cancel`` does for one task.
    """

    def __init__(self, supervisor: Supervisor, chunk: Chunk) -> None:
        super().__init__()
        self._sup = supervisor
        self._task: Task | None = None
        self.chunk = chunk

    def __repr__(self) -> str:
        return f"<MapChunk {self.chunk.name!r} items={self.chunk.n} done={self.done()}>"

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

    def _settle_chunk(self) -> None:
        """Every item has ended (supervisor thread)."""
        self._task = None
        self.set_result(None)

    def _settle_closed(self) -> None:
        """Fail a chunk that reached a supervisor after it stopped (any thread)."""
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


Entry = Any  # a MapChunk, or a TaskFuture for an item submitted on its own


def chunked_results(
    entries: deque[Entry],
    more: Iterator[list[tuple[Any, ...]]] | None,
    submit_items: Callable[[list[tuple[Any, ...]]], list[Entry]],
    window: int | None,
    end: float | None,
    tracker: ProgressTracker | None = None,
) -> Generator[Any, None, None]:
    """The values of ``entries`` in input order, as ``map`` yields them.

    Streaming (``more`` not None), chunks of items are taken from ``more`` and submitted
    (``submit_items``) while fewer than ``window`` items are outstanding. An entry stays in
    ``entries`` until its values are handed over, so that an exception here (a timeout, an
    item's error, Ctrl-C) or closing the generator cancels it with the rest.
    """
    outstanding = sum(weight_of(e) for e in entries)
    try:
        if tracker:
            tracker.track_all(entries, last=more is None)
        while entries or more is not None:
            if more is not None:
                assert window is not None
                while outstanding < window:
                    batch = next(more, None)
                    if batch is None:
                        more = None
                        if tracker:
                            tracker.track_all((), last=True)  # input used up: total known
                        break
                    added = submit_items(batch)
                    entries.extend(added)
                    outstanding += len(batch)
                    if tracker:
                        tracker.track_all(added)
            if not entries:
                break
            head = entries[0]
            if isinstance(head, MapChunk):
                if end is None:
                    head.result()
                else:
                    head.result(end - time.monotonic())
                chunk = head.chunk
                outcome = chunk.outcome
                values = chunk.values
                entries.popleft()
                outstanding -= chunk.n
                for i in range(chunk.n):
                    record = outcome.get(i)
                    if record is None:
                        assert values is not None
                        yield values[i]
                    elif record.status == "succeeded":
                        yield record.value
                    elif record.status == "failed":
                        assert record.exception is not None
                        raise record.exception
                    else:
                        raise cf.CancelledError(record.message)
            else:
                value = head.result() if end is None else head.result(end - time.monotonic())
                entries.popleft()
                outstanding -= 1
                yield value
    finally:
        for entry in entries:
            entry.cancel()
        if tracker:
            tracker.close()


def collect_values(entries: Iterable[Entry]) -> list[Any]:
    """Wait for every entry; their values in input order.

    Raises :class:`ExecutionError` if any task failed or was cancelled: its ``.results``
    holds those records in input order (as ``TaskGroup.values`` does).
    """
    entries = list(entries)
    cf.wait(entries)
    values: list[Any] = []
    bad: list[TaskResult] = []
    for entry in entries:
        if isinstance(entry, MapChunk):
            chunk = entry.chunk
            if not chunk.outcome and chunk.values is not None:
                values.extend(chunk.values)
                continue
            records = chunk.records()
        else:
            records = [entry._record]
        for record in records:
            if record.status == "succeeded":
                values.append(record.value)
            else:
                bad.append(record)
    if bad:
        RunSummary(results=tuple(bad), duration=0.0).raise_for_errors(include_cancelled=True)
    return values


def weight_of(entry: Entry) -> int:
    """How many tasks a batch entry stands for: a chunk's items, else one."""
    return entry.chunk.n if isinstance(entry, MapChunk) else 1
