"""The displays of ``progress=True``: a tqdm bar when tqdm is installed, else a text line.

:func:`bar_display` picks one. The tqdm bar is ``tqdm.auto.tqdm`` (a notebook widget or a
console bar; in a notebook without ipywidgets, the text line instead), updated once per
finished task (or map chunk). The text bar is one line on a stream, redrawn in place with
``\\r`` by a small thread of its own, at most ten times a second, and every second on a
terminal so that its clock moves.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ._events import DisplayKind, ProgressEvent

if TYPE_CHECKING:
    from .._results import TaskResult
    from ._tracker import Display, ProgressTracker

__all__ = ["TextDisplay", "bar_display", "in_kernel"]

log = logging.getLogger("osiiso_mp")

_REDRAW_INTERVAL = 0.1  # the text bar redraws at most this often (seconds)
_TTY_TICK = 1.0  # on a terminal, redraw at least this often so the clock moves
_BAR_WIDTH = 20


def bar_display(desc: str, file: TextIO | None, use_tqdm: bool | None) -> Display:
    """The display of ``progress=True``, labelled ``desc``, writing to ``file``.

    ``use_tqdm``: None uses tqdm when it can be imported and the text bar otherwise; True
    requires tqdm (``ImportError`` without it); False forces the text bar.
    """
    tqdm_cls = None if use_tqdm is False else _tqdm_class()
    if use_tqdm is True and tqdm_cls is None:
        raise ImportError(
            "progress bars with use_tqdm=True need tqdm: pip install 'osiiso_mp[progress]'"
        )
    if tqdm_cls is None:
        return TextDisplay(desc, file)
    return _TqdmDisplay(tqdm_cls, desc, file)


def _tqdm_class() -> Callable[..., Any] | None:
    """``tqdm.auto.tqdm`` (notebook widget or console bar), or None without tqdm, and in a
    notebook kernel without ipywidgets (where tqdm would warn, then stack console bars
    line after line: the text line reads better there)."""
    try:
        from tqdm import TqdmExperimentalWarning
    except ImportError:
        return None
    if in_kernel() and not _widgets_work():
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


def in_kernel() -> bool:
    """Is this a Jupyter kernel (where ``tqdm.auto`` picks its notebook bar)? The test is
    tqdm.auto's own: an IPython shell whose configuration names ``IPKernelApp``."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:
        return False


def _widgets_work() -> bool:
    """Can tqdm's notebook bar draw its widget (ipywidgets' ``IProgress`` imports)?"""
    try:
        from tqdm.notebook import IProgress
    except Exception:
        return False
    return IProgress is not None


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


class TextDisplay:
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

    def attach(self) -> None:
        """Take the stream to draw on (``file``, else ``sys.stderr`` as it is now)."""
        stream = sys.stderr if self._file is None else self._file
        self._stream = stream
        try:
            self._tty = bool(stream.isatty())
        except Exception:
            self._tty = False

    def open(self, tracker: ProgressTracker) -> None:
        self.attach()
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
        self.write(_line(self._desc, event), end)

    def write(self, text: str, end: str = "") -> None:
        """Draw ``text`` over the line (cut to a terminal's width), then ``end``."""
        stream = self._stream
        if stream is None or self._broken:
            return
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
