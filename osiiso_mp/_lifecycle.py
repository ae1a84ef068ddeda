"""Executors and the interpreter's exit: what happens to the live ones.

As with ``ProcessPoolExecutor``: once the main thread has finished, no new task is taken
(``submit`` raises ``RuntimeError("cannot schedule new futures after interpreter
shutdown")``) and the interpreter waits for every executor still open to finish what was
submitted to it; Ctrl-C stops that wait, and an ``atexit`` handler then force-stops what is
left, without hanging. An executor dropped without ``shutdown()`` finishes its tasks, then
stops its workers.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import TYPE_CHECKING

from ._errors import ClosedError
from ._runtime.protocol._commands import Shutdown

if TYPE_CHECKING:
    from ._runtime.supervisor import Supervisor

__all__ = ["adopt", "exiting", "graceful_stop"]

_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()
_exiting = False  # the main thread has finished: no new tasks


def exiting() -> bool:
    """Has the main thread finished (so that no new task may be submitted)?"""
    return _exiting


def adopt(sup: Supervisor) -> None:
    """Watch ``sup`` at exit (it is forgotten once collected)."""
    _live.add(sup)


def graceful_stop(sup: Supervisor) -> None:
    """An executor was garbage collected: finish its tasks, then stop its workers."""
    try:
        sup.post(Shutdown(cancel_pending=False, kill=False, reply=None))
    except ClosedError:
        pass


def _wait_all_at_exit() -> None:
    """The main thread has finished: refuse new tasks and wait for every executor still
    open to finish what was submitted to it. Runs before atexit handlers (with the
    threads' own exit hooks)."""
    global _exiting
    _exiting = True
    sups = list(_live)
    for sup in sups:
        try:
            sup.post(Shutdown(cancel_pending=False, kill=False, reply=None))
        except ClosedError:
            continue
    for sup in sups:
        sup.join()


try:  # where concurrent.futures hooks in too: before non-daemon threads are joined
    threading._register_atexit(_wait_all_at_exit)  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - every supported Python has it
    atexit.register(_wait_all_at_exit)


@atexit.register
def _stop_all_at_exit() -> None:
    """Interpreter exit, after the wait above (or its interruption): force-stop every
    executor still alive, without hanging."""
    for sup in list(_live):
        try:
            sup.post(Shutdown(cancel_pending=True, kill=True, reply=None))
        except ClosedError:
            continue
    for sup in list(_live):
        sup.join(2.0)
