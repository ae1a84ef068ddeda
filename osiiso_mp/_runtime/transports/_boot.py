"""Launching the fork server process, with almost nothing imported first.

The process's fork server (a fresh interpreter that imports what workers need, then forks
them) is launched by the first executor, never before: ``import osiiso_mp`` and looking up
its names start nothing. This module needs only ``os``, ``sys`` and the C ``_socket``
module, so the launch costs the user process little.

Two guards keep processes from outliving or multiplying behind the user's back:

- The server's first instructions, before it imports anything of ours, bind it to its
  parent: ``PR_SET_PDEATHSIG`` with SIGTERM (when launched from the main thread: the
  signal follows the launching *thread*), then a check that the parent is still the one
  that launched it. A parent killed while its server boots leaves nothing behind; once
  serving, SIGTERM or end-of-file on the control socket make the server kill its workers'
  process groups and exit.
- The server runs with ``_OSIISO_MP_SERVER`` set in its environment, and so do the workers
  it starts until their ``Configure`` gives them the user's environment. :func:`launch`
  refuses to start a server there, so a ``sitecustomize.py`` or ``.pth`` hook that makes an
  executor can never make each fork server start another one.
"""

from __future__ import annotations

import _socket
import os
import sys

__all__ = ["ROLE_ENV", "SERVER_BOOTSTRAP", "launch", "package_root"]

ROLE_ENV = "_OSIISO_MP_SERVER"  # set in the fork server's environment (see above)

# Bound to the parent first (the prctl, then the parent check), then our code.
SERVER_BOOTSTRAP = (
    "import os{deathsig}; os.getppid() == {ppid} or os._exit(0); "
    "import sys; sys.path.insert(0, {root!r}); "
    "from osiiso_mp._runtime.transports._forkserver import serve; serve({fd})"
)
# PR_SET_PDEATHSIG with SIGTERM: killed while booting; once serving, the server's handler
# first kills its workers' process groups (the children tasks started), then exits
_DEATHSIG = "; import ctypes; ctypes.CDLL(None).prctl(1, 15, 0, 0, 0)"


def package_root() -> str:
    """The directory holding the ``osiiso_mp`` package (put first on a fresh process's
    sys.path, so that the fork server and its workers run the parent's copy of it)."""
    here = os.path.abspath(__file__)  # <root>/osiiso_mp/_runtime/transports/_boot.py
    for _ in range(4):
        here = os.path.dirname(here)
    return here


def _server_argv(fd: int) -> list[str]:
    """The command line of a fork server serving the control socket ``fd``."""
    # the parent-death signal follows the thread that launched the process: only the main
    # thread lives as long as the process (another thread's exit would kill the server)
    import threading

    main = threading.current_thread() is threading.main_thread()
    code = SERVER_BOOTSTRAP.format(
        deathsig=_DEATHSIG if main and sys.platform.startswith("linux") else "",
        ppid=os.getpid(),
        root=package_root(),
        fd=fd,
    )
    return [sys.executable, "-c", code]


def _server_env() -> dict[str, str]:
    return {**os.environ, ROLE_ENV: "1"}


def launch() -> tuple[int, _socket.socket]:
    """Start a fork server process; return its pid and our end of its control socket.

    The server runs in a session of its own (so that a Ctrl-C in the terminal reaches only
    the user process, which then shuts the pool down) with ``/dev/null`` as stdin; its end
    of the socket is the only descriptor it inherits beside stdout and stderr.

    Refused (RuntimeError) inside a fork server or a worker that is still starting: what
    their interpreter runs at start-up must not start servers of its own.
    """
    if os.environ.get(ROLE_ENV):
        raise RuntimeError(
            "osiiso_mp: a fork server cannot start inside osiiso_mp's own fork server or a "
            "worker that is starting up (an executor made by sitecustomize.py or a .pth "
            "file, say); executors made by tasks are fine"
        )
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
                sys.executable, argv, _server_env(), file_actions=actions, setsid=True
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
        _server_argv(fd),
        pass_fds=(fd,),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        env=_server_env(),
    )
    _popens[proc.pid] = proc  # subprocess keeps its own record of the child: keep the object
    return proc.pid


_popens: dict[int, object] = {}  # pid -> Popen, for the servers started by _popen
