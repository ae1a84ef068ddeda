"""The worker process: its entry point, its set-up, and its tie to its parent.

Started as ``python -c "...; main(FD)"`` (or forked by the fork server, which imported this
module beforehand) with one end of a socket pair as ``FD``. :func:`main` reads a
:class:`Configure` frame (blocking), sets up ``sys.path``, the working directory, the
environment (thread variables: ``inner_threads``), its CPU affinity and niceness, runs the
initializer, and starts the :class:`~._actor.WorkerActor` on a uvloop event loop, which
reports :class:`WorkerReady` and serves tasks until it exits. It takes its process title
(``osiiso_mp worker 3 (executor 1, parent 12345)``, see :mod:`.._title`) as soon as its
:class:`Configure` arrives, before applying anything else of it.

- The worker ignores SIGINT (Ctrl-C belongs to the parent) and dies with its parent
  (``PR_SET_PDEATHSIG`` on Linux, and end-of-file on its pipe everywhere).
- A set-up that cannot be applied (CPU affinity, niceness), an initializer that raises, and
  a failure of the worker's own start-up are reported as :class:`InitFailed`, after which
  the worker exits with status 3. A failure of the event loop itself is fatal
  (:func:`~._failures.fatal`).

It imports only what a worker needs, so it starts fast.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import signal
import socket
import sys
from collections.abc import Callable
from multiprocessing import process as mp_process  # loaded once in the fork server
from typing import Any, NoReturn

from .._title import set_title, worker_comm
from ..protocol._framing import encode, read_frame_blocking
from ..protocol._messages import Configure, InitFailed
from ..protocol._serialize import error_info
from ._actor import WorkerActor
from ._failures import fatal

__all__ = ["main", "retitle", "serve"]


def _libc() -> Any:
    """The C library, for prctl (Linux only; else None). Loaded on import, so that the
    fork server does it once for all the workers it forks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when our parent dies (Linux), then check it is alive."""
    if _LIBC is not None:
        try:
            _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except AttributeError:
            pass
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(0)


def _configure(sock: socket.socket, title: Callable[[Configure], None]) -> Configure:
    """Read the :class:`Configure` frame and apply it: process title, parent watch,
    ``sys.path``, working directory, environment, CPU affinity and niceness (before any
    user code runs). The title comes first: setproctitle finds the command line's memory
    through the environment block, which is not ours to find once the environment is
    replaced.

    A CPU affinity or niceness that cannot be applied is reported as :class:`InitFailed`
    (the worker then exits with status 3), like an initializer that raises.
    """
    msg = read_frame_blocking(sock)
    if not isinstance(msg, Configure):
        os._exit(0)  # the supervisor went away before configuring us
    title(msg)
    if msg.parent_pid is not None:
        _die_with_parent(msg.parent_pid)
    if msg.authkey:  # as a child process of the user's would have it: proxies connect
        mp_process.current_process().authkey = msg.authkey
    if msg.sys_path is not None:
        sys.path[:] = list(msg.sys_path)
    if msg.cwd is not None:
        try:
            os.chdir(msg.cwd)
        except OSError:
            pass
    if msg.env:
        if msg.whole_env:
            os.environ.clear()
        os.environ.update(msg.env)
    if msg.cpu_affinity is not None:
        try:
            os.sched_setaffinity(0, msg.cpu_affinity)
        except (OSError, AttributeError) as exc:
            cpus = ", ".join(map(str, msg.cpu_affinity))
            _setup_failed(sock, f"cannot pin the worker to CPUs {{{cpus}}} (cpu_affinity): {exc}")
    if msg.nice:
        try:
            os.nice(msg.nice)
        except OSError as exc:
            _setup_failed(sock, f"cannot apply nice={msg.nice}: {exc}")
    return msg


def _setup_failed(sock: socket.socket, error: str) -> NoReturn:
    """Tell the supervisor this worker cannot be set up, and exit."""
    sock.sendall(encode(InitFailed(error, "", "setup")))
    os._exit(3)


def _initialize(sock: socket.socket, cfg: Configure) -> None:
    if cfg.initializer is None:
        return
    try:
        if cfg.inherited:  # the descriptors of the multiprocessing objects in initargs
            from .._inherit import receive

            receive(cfg.inherited)
        init, initargs, initkwargs = pickle.loads(cfg.initializer)
        init(*initargs, **initkwargs)
    except BaseException as exc:
        info = error_info(exc)
        sock.sendall(encode(InitFailed(f"{info.type_name}: {info.message}", info.traceback)))
        os._exit(3)


def retitle(cfg: Configure) -> None:
    """Show what this worker is in ``ps`` (its command line) and ``top`` (its name)."""
    if cfg.title:
        set_title(cfg.title, worker_comm(cfg.worker_id))


def main(fd: int) -> None:
    """Entry point of a worker process serving the supervisor at the other end of ``fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=fd))


def serve(
    sock: socket.socket,
    *,
    hosted: bool = False,
    node: str = "",
    title: Callable[[Configure], None] = retitle,
) -> None:
    """Serve the supervisor at the other end of ``sock`` (connected, ours to own) until it
    stops this worker, or goes: the process exits then. A worker ``hosted`` in a process
    that lives on (a cluster's actor, which connected back with
    :func:`..transports._tcp.connect_to_supervisor`) returns instead; a failure still
    ends the process. ``node`` names where it runs, for the records (its host's word);
    ``title(cfg)`` sets the process title from its set-up (a host may title it its way)."""
    sock.setblocking(True)
    cfg = _configure(sock, title)
    _initialize(sock, cfg)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        actor = WorkerActor(loop, sock, cfg, loop.stop if hosted else None, node)
        actor.start()
    except BaseException as exc:  # our own start-up failed: say so, as a failed setup
        sock.setblocking(True)
        info = error_info(exc)
        error = f"internal error starting the worker: {info.type_name}: {info.message}"
        sock.sendall(encode(InitFailed(error, info.traceback, "setup")))
        os._exit(3)
    try:
        loop.run_forever()
    except BaseException as exc:
        fatal(exc, "in the event loop")
    if not actor.left:
        fatal(RuntimeError("the event loop stopped"), "in the event loop")
    sock.close()
    asyncio.set_event_loop(None)
    loop.close()
