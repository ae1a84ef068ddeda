"""The display of ``progress=callable``: :class:`CallbackDisplay` delivers each
:class:`~._events.ProgressEvent` to the callable, in order, one at a time; one that raises
is logged on the ``osiiso_mp`` logger (the first time) and otherwise ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from ._events import DisplayKind, ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from .._results import TaskResult
    from ._tracker import ProgressTracker

__all__ = ["CallbackDisplay", "short_repr"]

log = logging.getLogger("osiiso_mp")

_DELIVERY_GRACE = 5.0  # close() waits up to this long for another thread's event delivery


def short_repr(obj: object) -> str:
    """``repr(obj)``, cut to 60 characters, never raising (for messages about arguments)."""
    try:
        text = repr(obj)
    except Exception:
        return f"<{type(obj).__qualname__} object>"
    return text if len(text) <= 60 else text[:57] + "..."


class CallbackDisplay:
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
                log.exception("the progress callback %s raised (ignored)", short_repr(self._fn))

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
                short_repr(self._fn),
                errors,
            )
