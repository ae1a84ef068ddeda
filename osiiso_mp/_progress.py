"""Progress reporting for ``run(progress=...)``, ``map(progress=...)`` and ``pmap(progress=...)``.

``progress`` takes one of:

* ``True`` -- a progress bar: tqdm's ``tqdm.auto.tqdm`` (a notebook widget or a console bar)
  when tqdm is installed (``pip install osiiso_mp[progress]``), else a plain text line on
  ``sys.stderr``, redrawn in place with ``\\r``::

      osiiso_mp run: |#######             | 37/100 done (35 ok, 2 failed, 0 cancelled) 1.2s

* a callable -- called with a :class:`ProgressEvent` once per finished task and once more,
  with ``final=True``, when the tracking ends. If it raises, the error is logged on the
  ``osiiso_mp`` logger and otherwise ignored: a progress callback never breaks a run.
* ``False`` / ``None`` -- no progress reporting.

Anything else raises ``TypeError``.

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
import logging
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO, TypeAlias

from ._records import Status, TaskResult

__all__ = [
    "ProgressArg",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressTracker",
    "progress_tracker",
    "sized_total",
]

log = logging.getLogger("osiiso_mp")

_REDRAW_INTERVAL = 0.1  # the text bar redraws at most this often (seconds)
_TTY_TICK = 1.0  # on a terminal, redraw at least this often so the clock moves
_BAR_WIDTH = 20
_CLOSE_GRACE = 1.0  # close() waits up to this long for done-callbacks already under way
_DELIVERY_GRACE = 5.0  # close() waits up to this long for another thread's event delivery

DisplayKind = Literal["tqdm", "text", "callback"]
"""How a :class:`ProgressTracker` reports: a tqdm bar, the text bar, or a callable."""


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

ProgressArg: TypeAlias = bool | ProgressCallback | None
"""What a ``progress=`` parameter accepts: True (a bar), a callable, or False/None (off)."""


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


def progress_tracker(
    progress: ProgressArg,
    *,
    total: int | None = None,
    desc: str = "osiiso_mp",
    use_tqdm: bool | None = None,
    file: TextIO | None = None,
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

    Nothing is displayed, and no thread started, until the tracker tracks its first future
    (or is closed).
    """
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise ValueError(f"total must be a non-negative int or None, got {total!r}")
    if progress is None or progress is False:
        return None
    display: _Display
    if progress is True:
        tqdm_cls = None if use_tqdm is False else _tqdm_class()
        if use_tqdm is True and tqdm_cls is None:
            raise ImportError(
                "progress bars with use_tqdm=True need tqdm: pip install 'osiiso_mp[progress]'"
            )
        display = (
            _TextDisplay(desc, file) if tqdm_cls is None else _TqdmDisplay(tqdm_cls, desc, file)
        )
    elif callable(progress):
        display = _CallbackDisplay(progress)
    else:
        raise TypeError(
            "progress must be True (a progress bar), a callable taking a ProgressEvent, or "
            f"False/None, got {_short(progress)} ({type(progress).__qualname__})"
        )
    return ProgressTracker(display, total=total)


def _short(obj: object) -> str:
    try:
        text = repr(obj)
    except Exception:
        return f"<{type(obj).__qualname__} object>"
    return text if len(text) <= 60 else text[:57] + "..."


def _tqdm_class() -> Callable[..., Any] | None:
    """``tqdm.auto.tqdm`` (notebook widget or console bar), or None without tqdm."""
    try:
        from tqdm import TqdmExperimentalWarning
    except ImportError:
        return None
    with warnings.catch_warnings():
        # tqdm.auto may warn that its notebook mode is experimental: not the user's concern
        warnings.simplefilter("ignore", TqdmExperimentalWarning)
        try:
            from tqdm.auto import tqdm as auto_tqdm
        except ImportError:
            return None
    cls: Callable[..., Any] = auto_tqdm
    return cls


# --------------------------------------------------------------------------- the tracker

_local = threading.local()  # .tracking: True while track_all() attaches callbacks


def _records_of(fut: cf.Future[Any]) -> list[TaskResult]:
    """The records a finished future stands for: a map chunk's items, else its own."""
    records = getattr(fut, "records", None)
    if callable(records):
        return list(records())
    return [_record_of(fut)]


def _record_of(fut: cf.Future[Any]) -> TaskResult:
    """The record of a finished future: its ``_record``, else a stand-in from its outcome."""
    record = getattr(fut, "_record", None)
    if isinstance(record, TaskResult):
        return record
    task_id = getattr(fut, "task_id", "")
    name = getattr(fut, "name", "")
    task_id = task_id if isinstance(task_id, str) else ""
    name = name if isinstance(name, str) else ""
    if fut.cancelled():
        return TaskResult(task_id=task_id, name=name, status="cancelled", message="cancelled")
    exc = fut.exception(0)
    if exc is not None:
        try:
            message = str(exc)
        except Exception:
            message = type(exc).__qualname__
        return TaskResult(
            task_id=task_id, name=name, status="failed", exception=exc, message=message
        )
    return TaskResult(task_id=task_id, name=name, status="succeeded", value=fut.result(0))


class ProgressTracker:
    """Counts finished futures and reports them through a bar or a callable.

    Made by :func:`progress_tracker`. :meth:`track_all` / :meth:`track` attach it to
    futures; :meth:`close` ends the tracking (the bar's last redraw, the callable's final
    event). Safe to use from any thread; a context manager closes it on exit.
    """

    def __init__(self, display: _Display, *, total: int | None = None) -> None:
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

    def __repr__(self) -> str:
        snap = self.snapshot()
        total = "?" if snap.total is None else str(snap.total)
        state = "closed" if self._closed else "open"
        return f"<ProgressTracker {self.kind} {snap.done}/{total} done {state}>"

    # -- state ---------------------------------------------------------------------------

    @property
    def kind(self) -> DisplayKind:
        """``"tqdm"``, ``"text"`` or ``"callback"``: how this tracker reports."""
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


# --------------------------------------------------------------------------- displays


class _Display(Protocol):
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


class _CallbackDisplay:
    """Delivers events to a callable, in order, one at a time.

    Events are queued under the tracker's lock (so their order is the counting order) and
    delivered outside it by whichever thread finds no delivery under way; a thread that
    finds one leaves its event to that thread.
    """

    kind: DisplayKind = "callback"

    def __init__(self, fn: ProgressCallback) -> None:
        self._fn = fn
        self._queue: deque[ProgressEvent] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._deliverer: int | None = None
        self._errors = 0

    def open(self, tracker: ProgressTracker) -> None:
        pass

    def task_done(self, tracker: ProgressTracker, record: TaskResult) -> None:
        event = tracker._event(record, False)
        with self._lock:
            self._queue.append(event)

    def tasks_done(self, tracker: ProgressTracker, n: int, issues: list[TaskResult]) -> None:
        raise AssertionError("a callback is given every record, one by one")

    def set_total(self, total: int) -> None:
        pass

    def final(self, event: ProgressEvent) -> None:
        with self._lock:
            self._queue.append(event)

    def flush(self) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._deliverer is not None or not self._queue:
                return
            self._deliverer = me
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._deliverer = None
                        self._idle.notify_all()
                        return
                    event = self._queue.popleft()
                self._call(event)
        except BaseException:
            with self._lock:  # KeyboardInterrupt and the like: let another thread go on
                self._deliverer = None
                self._idle.notify_all()
            raise

    def _call(self, event: ProgressEvent) -> None:
        try:
            self._fn(event)
        except Exception:
            self._errors += 1
            if self._errors == 1:
                log.exception("the progress callback %s raised (ignored)", _short(self._fn))

    def close(self, event: ProgressEvent) -> None:
        # deliver what is queued (the final event last), or wait for the thread doing it
        me = threading.get_ident()
        deadline = time.monotonic() + _DELIVERY_GRACE
        while True:
            self.flush()
            with self._lock:
                if self._deliverer == me or (self._deliverer is None and not self._queue):
                    break  # done, or called from inside our own delivery: it goes on after
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._deliverer is not None:
                    self._idle.wait(remaining)
        with self._lock:
            errors = self._errors
        if errors > 1:
            log.warning(
                "the progress callback %s raised %d times in all (only the first was logged)",
                _short(self._fn),
                errors,
            )


class _TqdmDisplay:
    """A ``tqdm.auto.tqdm`` bar: one ``update(1)`` per finished task."""

    kind: DisplayKind = "tqdm"

    def __init__(self, cls: Callable[..., Any], desc: str, file: TextIO | None) -> None:
        self._cls = cls
        self._desc = desc
        self._file = file
        self._bar: Any = None
        self._shown_issues = (0, 0)

    def open(self, tracker: ProgressTracker) -> None:
        kwargs: dict[str, Any] = {"total": tracker.total, "desc": self._desc, "unit": "task"}
        if self._file is not None:
            kwargs["file"] = self._file
        try:
            self._bar = self._cls(**kwargs)
        except Exception:
            log.warning("could not start a tqdm progress bar", exc_info=True)

    def _postfix(self, failed: int, cancelled: int) -> None:
        """Show the failures and cancellations, when there are any (no redraw of its own)."""
        if (failed, cancelled) != self._shown_issues:
            self._shown_issues = (failed, cancelled)
            self._bar.set_postfix_str(f"{failed} failed, {cancelled} cancelled", refresh=False)

    def task_done(self, tracker: ProgressTracker, record: TaskResult) -> None:
        if self._bar is None:
            return
        try:
            if record.status != "succeeded":
                c = tracker._counts
                self._postfix(c["failed"], c["cancelled"])
            self._bar.update(1)
        except Exception:
            log.debug("tqdm progress bar update failed", exc_info=True)

    def tasks_done(self, tracker: ProgressTracker, n: int, issues: list[TaskResult]) -> None:
        if self._bar is None:
            return
        try:
            if issues:
                c = tracker._counts
                self._postfix(c["failed"], c["cancelled"])
            self._bar.update(n)
        except Exception:
            log.debug("tqdm progress bar update failed", exc_info=True)

    def set_total(self, total: int) -> None:
        if self._bar is None:
            return
        try:
            self._bar.total = total
            self._bar.refresh()
        except Exception:
            log.debug("tqdm progress bar update failed", exc_info=True)

    def final(self, event: ProgressEvent) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, event: ProgressEvent) -> None:
        bar = self._bar
        if bar is None:
            return
        try:
            self._postfix(event.failed, event.cancelled)
            bar.close()
        except Exception:
            log.debug("closing the tqdm progress bar failed", exc_info=True)
        finally:
            self._bar = None


def _line(desc: str, event: ProgressEvent) -> str:
    """The text bar's line for ``event``."""
    counts = f"({event.succeeded} ok, {event.failed} failed, {event.cancelled} cancelled)"
    clock = f"{event.elapsed:.1f}s"
    if event.total is None:
        return f"{desc}: {event.done} done {counts} {clock}"
    fraction = event.fraction or 0.0
    filled = int(fraction * _BAR_WIDTH)
    bar = "#" * filled + " " * (_BAR_WIDTH - filled)
    return f"{desc}: |{bar}| {event.done}/{event.total} done {counts} {clock}"


class _TextDisplay:
    """A single line on a text stream, redrawn with ``\\r``.

    Counting only marks the line stale; a thread of its own redraws it at most every
    ``_REDRAW_INTERVAL`` seconds (and, on a terminal, every second so the clock moves).
    """

    kind: DisplayKind = "text"

    def __init__(self, desc: str, file: TextIO | None) -> None:
        self._desc = desc
        self._file = file
        self._stream: TextIO | None = None
        self._tty = False
        self._width = 0
        self._dirty = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._broken = False

    def open(self, tracker: ProgressTracker) -> None:
        stream = sys.stderr if self._file is None else self._file
        self._stream = stream
        try:
            self._tty = bool(stream.isatty())
        except Exception:
            self._tty = False
        self._draw(tracker._event(None, False))
        self._ticker = threading.Thread(
            target=self._tick, args=(tracker,), name="osiiso_mp-progress", daemon=True
        )
        self._ticker.start()

    def task_done(self, tracker: ProgressTracker, record: TaskResult) -> None:
        self._dirty = True

    def tasks_done(self, tracker: ProgressTracker, n: int, issues: list[TaskResult]) -> None:
        self._dirty = True

    def set_total(self, total: int) -> None:
        self._dirty = True

    def final(self, event: ProgressEvent) -> None:
        self._stop.set()

    def flush(self) -> None:
        pass

    def _tick(self, tracker: ProgressTracker) -> None:
        last = time.monotonic()
        while not self._stop.wait(_REDRAW_INTERVAL):
            now = time.monotonic()
            if self._dirty or (self._tty and now - last >= _TTY_TICK):
                self._dirty = False
                last = now
                self._draw(tracker.snapshot())

    def _draw(self, event: ProgressEvent, end: str = "") -> None:
        stream = self._stream
        if stream is None or self._broken:
            return
        text = _line(self._desc, event)
        if self._tty:
            import shutil  # here: importing it costs start-up time, and few draw on a tty

            try:
                columns = shutil.get_terminal_size().columns
            except Exception:
                columns = 0
            if columns > 1:
                text = text[: columns - 1]
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        try:
            stream.write("\r" + text + pad + end)
            stream.flush()
        except Exception:  # a closed or broken stream: stop drawing, never break the run
            self._broken = True

    def close(self, event: ProgressEvent) -> None:
        self._stop.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join()
        self._draw(event, end="\n")
