"""Launching the fork server process, with almost nothing imported first.

Start-up of a pool is two paths run side by side on two cores: the user process imports
the executor, while the fork server (a fresh interpreter) imports what workers need. The
server's path is the longer one, so it should start as early as possible: looking up
``osiiso_mp.Executor`` calls :func:`prelaunch` before anything else is imported, and this
module needs only ``os``, ``sys`` and the C ``_socket`` module (``socket.py`` builds its
enums at import, and ``subprocess`` costs milliseconds more). The
:class:`~._forkserver.ForkServer` then adopts the launched process (:func:`take_early`).
"""

from __future__ import annotations

import _socket
import _thread
import os
import sys

__all__ = ["SERVER_BOOTSTRAP", "launch", "package_root", "prelaunch", "take_early"]

SERVER_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from osiiso_mp._runtime._forkserver import serve; serve({fd})"
)

_lock = _thread.allocate_lock()
# (the pid that launched it, the server's pid, our end of its control socket)
_early: tuple[int, int, _socket.socket] | None = None


def package_root() -> str:
    """The directory holding the ``osiiso_mp`` package (put on a fresh process's sys.path)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _server_argv(fd: int) -> list[str]:
    """The command line of a fork server serving the control socket ``fd``."""
    return [sys.executable, "-c", SERVER_BOOTSTRAP.format(root=package_root(), fd=fd)]


def launch() -> tuple[int, _socket.socket]:
    """Start a fork server process; return its pid and our end of its control socket.

    The server runs in a session of its own (so that a Ctrl-C in the terminal reaches only
    the user process, which then shuts the pool down) with ``/dev/null`` as stdin; its end
    of the socket is the only descriptor it inherits beside stdout and stderr.
    """
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        fd = theirs.fileno()
        target = 3 if fd != 3 else 4  # dup2 onto another number clears close-on-exec
        argv = _server_argv(target)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fd, target),
        ]
        try:
            pid = os.posix_spawn(
                sys.executable, argv, os.environ, file_actions=actions, setsid=True
            )
        except (AttributeError, NotImplementedError):  # no posix_spawn, or no setsid in it
            pid = _popen(fd)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return pid, ours


def _popen(fd: int) -> int:
    """:func:`launch` where ``posix_spawn`` cannot start a session: through ``subprocess``
    (slower to import), which the server's exit is then reaped through as well."""
    import subprocess

    proc = subprocess.Popen(
        _server_argv(fd), pass_fds=(fd,), start_new_session=True, stdin=subprocess.DEVNULL
    )
    _popens[proc.pid] = proc  # subprocess keeps its own record of the child: keep the object
    return proc.pid


_popens: dict[int, object] = {}  # pid -> Popen, for the servers started by _popen


def prelaunch() -> None:
    """Launch this process's fork server now, unless one launched early is still unclaimed.

    Errors are left for later: the server is launched again, and the error raised, when a
    pool needs it.
    """
    global _early
    with _lock:
        if _early is not None and _early[0] == os.getpid():
            return
        try:
            pid, ours = launch()
        except OSError:
            return
        _early = (os.getpid(), pid, ours)


def take_early() -> tuple[int, _socket.socket] | None:
    """The server :func:`prelaunch` started in this process and nobody claimed yet (its pid
    and our end of its socket), now claimed; None when there is none."""
    global _early
    with _lock:
        early, _early = _early, None
    if early is None or early[0] != os.getpid():
        return None  # none, or inherited through a fork: that server is the parent's
    return early[1], early[2]
