"""Local worker processes: how they are started, killed and looked at (see
:mod:`.transports._local`, the transport built on this and on :mod:`._forkserver`).

Workers are started by the per-process server (:mod:`._forkserver`): forked from it, with
the worker modules already imported (``start_method="forkserver"``), or as fresh
interpreters it starts (``"spawn"``). Never a bare fork of the user's (threaded) process.
Either way the user's ``__main__`` is *not* re-imported in the worker, so scripts need no
``if __name__ == "__main__"`` guard: callables travel by value with cloudpickle instead.

Each worker leads its own process group (a new session), so a terminal's Ctrl-C does not
reach it and killing the group also kills any children a task started. When a worker exits,
for whatever reason, what is left of its group is killed before the worker is reaped, and
the server kills every worker's group when the user process dies.
"""

from __future__ import annotations

import os
import signal

__all__ = [
    "BOOTSTRAP",
    "kill_group",
    "process_stopped",
    "reap_group_first",
]


BOOTSTRAP = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from osiiso_mp._runtime.worker._entry import main; main({fd})"
)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid``, or ``pid`` alone; ignore vanished ones."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def reap_group_first(pid: int) -> bool:
    """If child ``pid`` has exited, kill what is left of its process group (the children a
    task started) *before* it is reaped, so that its pid cannot have been reused yet; return
    whether it has exited. Uses ``waitid(WNOWAIT)``, which looks without reaping."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # already reaped elsewhere
    except (AttributeError, OSError):  # no waitid here: fall back to reaping directly
        return True
    if info is None:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return True


def process_stopped(pid: int) -> bool:
    """True when ``pid`` is stopped (SIGSTOP, or a debugger's stop), from /proc or psutil."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"T", b"t")
    except (OSError, ValueError):
        pass
    try:
        import psutil

        return bool(psutil.Process(pid).status() == psutil.STATUS_STOPPED)
    except Exception:  # gone, or no way to tell
        return False
