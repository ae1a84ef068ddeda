"""The live view of ``progress="live"``: the run's counts, throughput, queue, workers and
last failure, redrawn a few times a second while the executor works.

In a Jupyter kernel it is one HTML block (an IPython display, updated in place: no
widget library and no server), which stays in the saved notebook as the run's final
state; elsewhere one line on ``sys.stderr``, redrawn with ``\\r`` (the text bar's line,
with the pool's figures added). :func:`live_display` picks one.

Counting only notes the latest failure; a thread of the display's own takes a
:class:`~osiiso_mp.PoolStats` snapshot from the executor (the tracker's pool source) and
redraws, every ``TICK`` seconds. The snapshot is never asked for with the tracker's lock
held: the supervisor thread, which answers it, counts finished tasks under that lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from ._bars import TextDisplay, in_kernel
from ._events import DisplayKind, ProgressEvent
from ._live_view import LiveView, live_html, live_line

if TYPE_CHECKING:
    from .._results import TaskResult
    from ._tracker import Display, ProgressTracker

__all__ = ["TICK", "live_display"]

TICK = 0.25  # seconds between redraws
_RATE_WINDOW = 3.0  # throughput is measured over this many seconds of history


def live_display(desc: str, file: TextIO | None) -> Display:
    """The live view for ``progress="live"``: an HTML block in a Jupyter kernel, else a
    line on ``file`` (None: ``sys.stderr``)."""
    if file is None and in_kernel():
        return NotebookLive(desc)
    return LiveLine(desc, file)


def _failure(record: TaskResult) -> str:
    """``"Type: first line of the message (task name)"``, cut to a line's length."""
    error = record.exception
    kind = type(error).__name__ if error is not None else "failed"
    lines = record.message.strip().splitlines()
    text = f"{kind}: {lines[0]}" if lines else kind
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{text} ({record.name})"


class _Rate:
    """Tasks finished per second over the last ``_RATE_WINDOW`` seconds."""

    def __init__(self) -> None:
        self._history: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> float | None:
        now = time.perf_counter()
        history = self._history
        history.append((now, done))
        while len(history) > 2 and now - history[0][0] > _RATE_WINDOW:
            history.popleft()
        then, before = history[0]
        if now - then < 0.5:
            return None
        return (done - before) / (now - then)


class _LiveBase:
    """What both live displays do: note failures, redraw on a ticker thread, and draw
    the final view at close."""

    kind: DisplayKind = "live"

    def __init__(self, desc: str) -> None:
        self._desc = desc
        self._tracker: ProgressTracker | None = None
        self._rate = _Rate()
        self._last_failure: str | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- the tracker's calls (open, task_done, tasks_done, set_total, final: lock held)

    def open(self, tracker: ProgressTracker) -> None:
        self._tracker = tracker
        self._show(LiveView(self._desc, tracker._event(None, False), None, None))
        self._ticker = threading.Thread(target=self._tick, name="osiiso_mp-live", daemon=True)
        self._ticker.start()

    def task_done(self, tracker: ProgressTracker, record: TaskResult) -> None:
        if record.status == "failed":
            self._last_failure = _failure(record)

    def tasks_done(self, tracker: ProgressTracker, n: int, issues: list[TaskResult]) -> None:
        for record in issues:
            self.task_done(tracker, record)

    def set_total(self, total: int) -> None:
        pass

    def final(self, event: ProgressEvent) -> None:
        self._stop.set()

    def flush(self) -> None:
        pass

    def close(self, event: ProgressEvent) -> None:
        self._stop.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(5.0)
        self._show(self._view(event), final=True)

    # -- drawing -------------------------------------------------------------------------

    def _view(self, event: ProgressEvent) -> LiveView:
        tracker = self._tracker
        stats = None if tracker is None else tracker.pool_stats()
        rate = self._rate.add(event.done)
        if event.final and event.elapsed > 0:
            rate = event.done / event.elapsed  # the run's own average, at the end
        return LiveView(self._desc, event, rate, stats, self._last_failure)

    def _tick(self) -> None:
        tracker = self._tracker
        assert tracker is not None
        while not self._stop.wait(TICK):
            self._show(self._view(tracker.snapshot()))

    def _show(self, view: LiveView, final: bool = False) -> None:
        raise NotImplementedError


class LiveLine(_LiveBase):
    """The live view in a console: one line, redrawn in place."""

    def __init__(self, desc: str, file: TextIO | None) -> None:
        super().__init__(desc)
        self._line = TextDisplay(desc, file)

    def open(self, tracker: ProgressTracker) -> None:
        self._line.attach()
        super().open(tracker)

    def _show(self, view: LiveView, final: bool = False) -> None:
        self._line.write(live_line(view), end="\n" if final else "")


class NotebookLive(_LiveBase):
    """The live view in a notebook: an HTML block updated in place (its plain-text
    form, the console's line, for front ends that show no HTML)."""

    def __init__(self, desc: str) -> None:
        super().__init__(desc)
        self._handle: Any = None
        self._broken = False

    def _show(self, view: LiveView, final: bool = False) -> None:
        if self._broken:
            return
        bundle = {"text/html": live_html(view), "text/plain": live_line(view)}
        try:
            if self._handle is None:
                from IPython.display import display

                self._handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
            else:
                self._handle.update(bundle, raw=True)
        except Exception:  # no front end to draw on: stop drawing, never break the run
            self._broken = True
