"""What progress reporting speaks in: :class:`ProgressEvent`, what a ``progress=``
parameter accepts (:data:`ProgressArg`), the kinds of display, and :func:`sized_total`, the
number of tasks a ``map`` will make when it can be known up front.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .._results import TaskResult

__all__ = [
    "DisplayKind",
    "ProgressArg",
    "ProgressCallback",
    "ProgressEvent",
    "sized_total",
]

DisplayKind = Literal["tqdm", "text", "callback", "live"]
"""How a :class:`ProgressTracker` reports: a tqdm bar, the text bar, a callable, or the
live view."""


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What a ``progress=callable`` receives: the counts after one task finished.

    Attributes:
        done: tasks finished so far (``succeeded + failed + cancelled``).
        total: tasks expected, or None when unknown (``map``/``pmap`` over an iterator).
        succeeded: finished tasks that succeeded.
        failed: finished tasks that failed.
        cancelled: finished tasks that were cancelled.
        elapsed: seconds since the tracking started.
        result: the :class:`TaskResult` of the task that just finished; None in the final
            event. (For a future that carries no record, e.g. a plain
            ``concurrent.futures.Future``, a stand-in record with its outcome.)
        final: True for the one last event, sent when the tracking ends (the run, map or
            pmap is over); False for the per-task events.
    """

    done: int
    total: int | None
    succeeded: int
    failed: int
    cancelled: int
    elapsed: float
    result: TaskResult | None = None
    final: bool = False

    @property
    def fraction(self) -> float | None:
        """``done / total`` (1.0 for a total of 0), or None when the total is unknown."""
        if self.total is None:
            return None
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressCallback: TypeAlias = Callable[[ProgressEvent], object]
"""A callable that receives :class:`ProgressEvent` objects."""

ProgressArg: TypeAlias = bool | Literal["live"] | ProgressCallback | None
"""What a ``progress=`` parameter accepts: True (a bar), ``"live"`` (the live view), a
callable, or False/None (off)."""


def sized_total(iterables: Iterable[object]) -> int | None:
    """How many tasks ``map(fn, *iterables)`` makes: the shortest length, when every
    iterable has a ``len()``; None when any is an iterator (or there are none)."""
    lengths: list[int] = []
    for it in iterables:
        if not isinstance(it, Sized):
            return None
        try:
            lengths.append(len(it))
        except Exception:
            return None
    return min(lengths) if lengths else None
