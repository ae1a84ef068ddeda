"""The progress tracker: :class:`ProgressTracker` counts finished futures and reports them
through a display (:mod:`._bars`, :mod:`._callback`); :func:`progress_tracker` makes one
for a ``progress=`` argument.

The executor builds a :class:`ProgressTracker` with :func:`progress_tracker`, hands it the
futures to watch (:meth:`ProgressTracker.track_all`) and closes it when it stops waiting::

    tracker = progress_tracker(progress, desc="osiiso_mp run")  # None when progress is falsy
    if tracker:
        tracker.track_all(batch, last=True)
    try:
        ...  # wait
    finally:
        if tracker:
            tracker.close()

Tasks are counted as their futures finish, through done-callbacks, so counting happens on
the executor's supervisor thread (or at once, in the caller's thread, for a future already
finished when it is tracked). That path is thread-safe and cheap: tqdm's ``update`` (which
redraws at most ten times a second), or for the text bar only a flag -- a small thread of
the tracker's own redraws the line at most ten times a second. A callable's events are
delivered in order, one at a time, on the thread that finished the task.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .._results import Status, TaskResult, record_of
from ._bars import bar_display
from ._callback import CallbackDisplay, short_repr
from ._events import DisplayKind, ProgressArg, ProgressEvent

if TYPE_CHECKING:
    from .._snapshots import PoolStats

__all__ = ["Display", "ProgressTracker", "progress_tracker"]

_CLOSE_GRACE = 1.0  # close() waits up to this long for done-callbacks already under way


def progress_tracker(
    progress: ProgressArg,
    *,
    total: int | None = None,
    desc: str = "osiiso_mp",
    use_tqdm: bool | None = None,
    file: TextIO | None = None,
    pool: Callable[[], PoolStats] | None = None,
) -> ProgressTracker | None:
    """A :class:`ProgressTracker` for a ``progress=`` argument, or None when it is off.

    Args:
        progress: True for a bar, a callable for :class:`ProgressEvent` objects,
            False/None for nothing. Anything else raises ``TypeError``.
        total: how many tasks to expect, or None when unknown (it can also be settled later
            by ``track_all(..., last=True)``).
        desc: the bar's label.
        use_tqdm: for ``progress=True``: None uses tqdm when it can be imported and the text
            bar otherwise; True requires tqdm (``ImportError`` without it); False forces the
            text bar.
        file: the stream the bar writes to; None means ``sys.stderr`` as it is when the bar
            appears (a tqdm notebook widget ignores it).
        pool: where the live view takes its :class:`~osiiso_mp.PoolStats` snapshots (the
            executor's ``stats``; also settable later, :meth:`ProgressTracker.watch_pool`).

    Nothing is displayed, and no thread started, until the tracker tracks its first future
    (or is closed).
    """
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise ValueError(f"total must be a non-negative int or None, got {total!r}")
    if progress is None or progress is False:
        return None
    display: Display
    if progress is True:
        display = bar_display(desc, file, use_tqdm)
    elif isinstance(progress, str) and progress == "live":
        from ._live import live_display

        display = live_display(desc, file)
    elif callable(progress):
        display = CallbackDisplay(progress)
    else:
        raise TypeError(
            'progress must be True (a progress bar), "live" (the live view), a callable '
            f"taking a ProgressEvent, or False/None, got {short_repr(progress)} "
            f"({type(progress).__qualname__})"
        )
    tracker = ProgressTracker(display, total=total)
    if pool is not None:
        tracker.watch_pool(pool)
    return tracker


# --------------------------------------------------------------------------- the tracker

_local = threading.local()  # .tracking: True while track_all() attaches callbacks


def _records_of(fut: cf.Future[Any]) -> list[TaskResult]:
    """The records a finished future stands for: a map chunk's items, else its own."""
    records = getattr(fut, "records", None)
    if callable(records):
        return list(records())
    return [record_of(fut)]


class ProgressTracker:
    """Counts finished futures and reports them through a bar or a callable.

    Made by :func:`progress_tracker`. :meth:`track_all` / :meth:`track` attach it to
    futures; :meth:`close` ends the tracking (the bar's last redraw, the callable's final
    event). Safe to use from any thread; a context manager closes it on exit.
    """

    def __init__(self, display: Display, *, total: int | None = None) -> None:
        self._display = display
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._total = total
        self._tracked = 0
        self._pending: set[Any] = set()  # futures (or batch entries) not counted yet
        self._counts: dict[Status, int] = {"succeeded": 0, "failed": 0, "cancelled": 0}
        self._callback_threads: set[int] = set()
        self._t0: float | None = None
        self._closed = False
        self._pool: Callable[[], PoolStats] | None = None

    def __repr__(self) -> str:
        snap = self.snapshot()
        total = "?" if snap.total is None else str(snap.total)
        state = "closed" if self._closed else "open"
        return f"<ProgressTracker {self.kind} {snap.done}/{total} done {state}>"

    # -- state ---------------------------------------------------------------------------

    @property
    def kind(self) -> DisplayKind:
        """``"tqdm"``, ``"text"``, ``"callback"`` or ``"live"``: how this tracker reports."""
        return self._display.kind

    @property
    def total(self) -> int | None:
        """The number of tasks expected, or None when unknown."""
        return self._total

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def snapshot(self) -> ProgressEvent:
        """The counts now, as a :class:`ProgressEvent` (``result`` None; ``final`` True once
        closed)."""
        with self._lock:
            return self._event(None, self._closed)

    def _event(self, result: TaskResult | None, final: bool) -> ProgressEvent:
        c = self._counts
        ok, failed, cancelled = c["succeeded"], c["failed"], c["cancelled"]
        return ProgressEvent(
            done=ok + failed + cancelled,
            total=self._total,
            succeeded=ok,
            failed=failed,
            cancelled=cancelled,
            elapsed=0.0 if self._t0 is None else time.perf_counter() - self._t0,
            result=result,
            final=final,
        )

    def watch_pool(self, stats: Callable[[], PoolStats]) -> None:
        """Take the pool's snapshots from ``stats`` (an executor's ``stats``), for the live
        view."""
        self._pool = stats

    def pool_stats(self) -> PoolStats | None:
        """The pool now, or None without a source or when no snapshot could be taken.
        Never call it with the tracker's lock held (the supervisor answers it, and counts
        finished tasks under that lock)."""
        source = self._pool
        if source is None:
            return None
        try:
            return source()
        except Exception:
            return None

    # -- tracking ------------------------------------------------------------------------

    def track(self, fut: cf.Future[Any]) -> None:
        """Count ``fut`` when it finishes (at once if it already has)."""
        self.track_all((fut,))

    def track_all(self, futures: Iterable[Any], *, last: bool = False) -> None:
        """Count each of ``futures`` when it finishes (at once for those already finished).

        Futures, or anything with ``done()``, ``add_done_callback(fn)`` (``fn`` called with
        it) and a ``_record`` or ``records()``: an executor's batch entries, for instance.

        ``last=True`` says no more futures will be tracked: the total becomes the number
        tracked (so the caller need not know it in advance). Track a future only once.
        Futures given after :meth:`close` are ignored.
        """
        futs = list(futures)
        with self._lock:
            if self._closed:
                return
            self._pending.update(futs)
            self._tracked += sum(getattr(f, "weight", 1) for f in futs)
            new_total = last and self._total != self._tracked
            if last:
                self._total = self._tracked
            if self._t0 is None:
                self._open_locked()
            elif new_total:
                self._display.set_total(self._tracked)
        outer = getattr(_local, "tracking", False)
        _local.tracking = True
        try:
            for fut in futs:
                fut.add_done_callback(self.on_done)
        finally:
            _local.tracking = outer
        self._display.flush()

    def _open_locked(self) -> None:
        self._t0 = time.perf_counter()
        self._display.open(self)

    def on_done(self, fut: Any) -> None:
        """Count one finished future (a done-callback; :meth:`track` attaches it).

        Any thread; a call for an unfinished future, or after :meth:`close`, is ignored.
        """
        if not fut.done():
            return
        display = self._display
        # a map chunk is counted from its compact outcome, unless every record is reported
        chunk = getattr(fut, "chunk", None)
        bulk = chunk is not None and display.kind != "callback"
        records = [] if bulk else _records_of(fut)
        with self._lock:
            if self._closed:
                return
            self._pending.discard(fut)
            if not getattr(_local, "tracking", False):
                self._callback_threads.add(threading.get_ident())
            if self._t0 is None:
                self._open_locked()
            if bulk:
                assert chunk is not None
                issues = [r for r in chunk.outcome.values() if r.status != "succeeded"]
                self._counts["succeeded"] += chunk.n - len(issues)
                for record in issues:
                    self._counts[record.status] += 1
                display.tasks_done(self, chunk.n, issues)
            for record in records:
                self._counts[record.status] += 1
                display.task_done(self, record)
            self._settled.notify_all()
        display.flush()

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """End the tracking: the bar's final redraw, or the callable's final event.

        Done-callbacks already under way (a future that has finished but is not counted
        yet) are waited for, briefly, so the final counts include them; tasks finishing
        later are not counted. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            if self._t0 is None:
                self._open_locked()
            if threading.get_ident() not in self._callback_threads:
                # the callback thread cannot count while it runs this, so never wait there
                deadline = time.monotonic() + _CLOSE_GRACE
                under_way = [f for f in self._pending if f.done()]
                while any(f in self._pending for f in under_way):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._settled.wait(remaining)
            self._closed = True
            final = self._event(None, True)
            self._pending.clear()
            self._display.final(final)
        self._display.close(final)

    def __enter__(self) -> ProgressTracker:
        """The tracker itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """:meth:`close` it."""
        self.close()


# ------------------------------------------------------------------ what a display does


class Display(Protocol):
    """How a tracker reports. ``open``, ``task_done``, ``set_total`` and ``final`` run with
    the tracker's lock held (keep them cheap); ``flush`` and ``close`` run without it."""

    kind: DisplayKind

    def open(self, tracker: ProgressTracker) -> None: ...

    def task_done(self, tracker: ProgressTracker, record: TaskResult) -> None: ...

    def tasks_done(self, tracker: ProgressTracker, n: int, issues: list[TaskResult]) -> None:
        """``n`` tasks finished at once (a map chunk), ``issues`` the records of those that
        failed or were cancelled. Not called on the callback display, which reports each
        record."""

    def set_total(self, total: int) -> None: ...

    def final(self, event: ProgressEvent) -> None: ...

    def flush(self) -> None: ...

    def close(self, event: ProgressEvent) -> None: ...
