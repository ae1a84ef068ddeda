"""The fork server: a small single-threaded process that forks workers on request.

Starting a fresh interpreter per worker costs tens of milliseconds of CPU; forking one from a
process that already imported the worker modules costs about one. So, once per user process,
we start this server (itself a fresh interpreter, never a fork of the threaded user process)
and ask it for workers::

    user process                                   fork server (no threads)
    ------------                                   ------------------------
    ForkServer.spawn(child socket)
      send b"S" + the socket's fd (SCM_RIGHTS) -->  fork(); the child runs the worker main
                                                     on the fd it was handed
      (or b"E" for start_method="spawn")             posix_spawn a fresh interpreter instead
      <-- ("P", pid)
    reader thread                                  SIGCHLD: waitpid()
      <-- ("X", pid, exit code) ------------------   reports every worker's exit code
      -> on_exit(code) on the owning supervisor's loop

- The server holds no pipes of the user process but its control socket. When the user
  process dies, even by SIGKILL, the server reads end-of-file, kills every worker's process
  group and exits; workers also die with the server (``PR_SET_PDEATHSIG``).
- Workers are the server's children, so only the server can ``waitpid`` them: it forwards
  their exit codes, and the user process keeps a pidfd per worker to signal it safely.
- ``ps`` shows the server as ``osiiso_mp fork server (parent 12345)`` and each worker, once
  configured, as ``osiiso_mp worker 3 (executor 1, parent 12345)`` (:mod:`.._title`).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._boot import launch, package_root
from ._processes import BOOTSTRAP, kill_group, reap_group_first

if TYPE_CHECKING:
    import asyncio

__all__ = ["ForkServer", "ForkedProcess", "serve", "start_early"]

_REPLY = struct.Struct("!cqq")  # kind, pid, exit code
_IDLE_MS = 200  # the server imports what can wait once no request came for this long


# --- server side ---------------------------------------------------------------------------


def serve(fd: int) -> None:  # pragma: no cover - runs in the server process
    """Main loop of the fork server, serving the control socket ``fd``."""
    _close_inherited(keep=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .._title import SERVER_COMM, server_title, set_title

    # "osiiso_mp fork server (parent 12345)" in ps; it also loads setproctitle for the workers
    set_title(server_title(os.getppid()), SERVER_COMM)
    import uvloop  # noqa: F401  (each worker's main() imports it: loaded once, here)

    from ..worker import _entry as _worker_entry  # preload what every worker imports

    ctl = socket.socket(fileno=fd)
    ctl.setblocking(True)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    poller = select.poll()  # not selectors: that module is import time the server can skip
    poller.register(fd, select.POLLIN)
    poller.register(wake_r, select.POLLIN)

    def reap() -> None:
        while children:
            try:  # look without reaping: the worker's group dies before its pid is free
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            reap_group_first(info.si_pid)
            pid, status = os.waitpid(info.si_pid, 0)
            children.discard(pid)
            ctl.sendall(_REPLY.pack(b"X", pid, os.waitstatus_to_exitcode(status)))

    def quit_all() -> None:
        for pid in children:
            kill_group(pid)
        os._exit(0)

    # the parent died (PR_SET_PDEATHSIG, see _boot) or someone asks us to stop
    signal.signal(signal.SIGTERM, lambda *_: quit_all())

    idle_import = True  # cloudpickle: not on the way to the first workers, but preloaded
    while True:
        try:
            ready = poller.poll(_IDLE_MS if idle_import else None)
        except InterruptedError:  # pragma: no cover - poll is retried after signals (PEP 475)
            continue
        if not ready and idle_import:  # quiet for a while: later workers get it preloaded
            idle_import = False
            try:
                import cloudpickle  # noqa: F401
            except ImportError:  # pragma: no cover - a dependency; a worker reports it
                pass
        for ready_fd, _ in ready:
            if ready_fd != fd:
                os.read(wake_r, 4096)
                reap()
                continue
            try:
                data, fds, _, _ = socket.recv_fds(ctl, 1, 1)
            except OSError:
                quit_all()
            if not data:
                quit_all()
            if not fds:
                continue
            if data == b"E":  # a fresh interpreter (start_method="spawn"), in its own session
                os.set_inheritable(fds[0], True)
                code = BOOTSTRAP.format(root=package_root(), fd=fds[0])
                argv = [sys.executable, "-c", code]
                pid = os.posix_spawn(sys.executable, argv, os.environ, setsid=True)
                os.close(fds[0])
                children.add(pid)
                ctl.sendall(_REPLY.pack(b"P", pid, 0))
                continue
            pid = os.fork()
            if pid == 0:
                try:
                    os.setsid()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server's, not ours
                    ctl.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    _worker_entry.main(fds[0])
                finally:
                    os._exit(1)
            os.close(fds[0])
            children.add(pid)
            ctl.sendall(_REPLY.pack(b"P", pid, 0))
        reap()


def _close_inherited(keep: int) -> None:  # pragma: no cover - runs in the server process
    """Close every descriptor but stdin, stdout, stderr and ``keep``: the user process's
    inheritable descriptors (``posix_spawn`` passes them all on) must not live on in the
    server and its workers, where a pipe's write end would keep its reader from seeing
    end-of-file."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor, closed already
                pass


# --- client side ---------------------------------------------------------------------------


def start_early(transport: object) -> None:
    """Launch this process's fork server now if an executor with this ``transport`` option
    will take its workers from it and none runs yet.

    The executor's constructor calls this before it imports the runtime (asyncio, the
    supervisor, the protocol: tens of milliseconds), so that the server's own start (a
    fresh interpreter importing what workers need) runs beside that import rather than after
    it. The server is the one :meth:`ForkServer.get` hands the executor's transport.
    """
    if isinstance(transport, str) and transport == "local":
        ForkServer.get()


class ForkServer:
    """The user process's handle on its fork server (one per process, shared by executors)."""

    _instance: ForkServer | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> ForkServer:
        """The running server, started on first use (and again after it died or we forked)."""
        with cls._instance_lock:
            inst = cls._instance
            if inst is None or not inst.alive or inst.owner_pid != os.getpid():
                inst = cls._instance = cls()
            return inst

    def __init__(self) -> None:
        self.owner_pid = os.getpid()
        pid, ours = launch()
        self.pid = pid
        self._ctl = socket.socket(fileno=ours.detach())
        self._lock = threading.Lock()
        self._replies: deque[tuple[threading.Event, list[int]]] = deque()
        self._watchers: dict[
            int, tuple[asyncio.AbstractEventLoop, Callable[[int | None], None]]
        ] = {}
        self._exited: dict[int, int] = {}
        self.alive = True
        self._reader = threading.Thread(target=self._read, name="osiiso_mp-forkserver", daemon=True)
        self._reader.start()

    def spawn(self, child: socket.socket, *, fresh: bool = False) -> int:
        """Start a worker serving ``child``'s socket pair; return its pid.

        Forked from the server (which has the worker modules imported), or, with
        ``fresh=True``, a new interpreter the server starts (``start_method="spawn"``).
        """
        done = threading.Event()
        slot: list[int] = []
        with self._lock:
            if not self.alive:
                raise OSError("the osiiso_mp fork server is not running")
            self._replies.append((done, slot))
            socket.send_fds(self._ctl, [b"E" if fresh else b"S"], [child.fileno()])
        if not done.wait(30) or not slot:
            raise OSError("the osiiso_mp fork server did not answer")
        return slot[0]

    def watch(
        self, pid: int, loop: asyncio.AbstractEventLoop, on_exit: Callable[[int | None], None]
    ) -> None:
        """Call ``on_exit(code)`` on ``loop`` when worker ``pid`` exits."""
        with self._lock:
            code = self._exited.pop(pid, None)
            if code is None and self.alive:
                self._watchers[pid] = (loop, on_exit)
                return
        loop.call_soon(on_exit, code)

    def unwatch(self, pid: int) -> None:
        """Forget ``pid``'s watcher."""
        with self._lock:
            self._watchers.pop(pid, None)
            self._exited.pop(pid, None)

    def _read(self) -> None:
        size = _REPLY.size
        while True:
            try:
                data = self._ctl.recv(size, socket.MSG_WAITALL)
            except OSError:
                data = b""
            if len(data) < size:
                break
            kind, pid, code = _REPLY.unpack(data)
            with self._lock:
                if kind == b"P":
                    done, slot = self._replies.popleft()
                    slot.append(pid)
                    done.set()
                    continue
                watcher = self._watchers.pop(pid, None)
                if watcher is None:
                    self._exited[pid] = code
            if watcher is not None:
                _notify(watcher, code)
                # not kept while this thread waits for the next reply: the watcher holds
                # the supervisor (and through it the values it retains) of an executor
                # that may be shut down and dropped meanwhile
                watcher = None
        # The server is gone: every worker it had is gone with it (they die with it).
        with self._lock:
            self.alive = False
            watchers = list(self._watchers.values())
            self._watchers.clear()
            pending = list(self._replies)
            self._replies.clear()
        for done, _ in pending:
            done.set()
        for watcher in watchers:
            _notify(watcher, None)
        try:
            os.waitpid(self.pid, 0)  # reap it
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler, say)
            pass


def _notify(
    watcher: tuple[asyncio.AbstractEventLoop, Callable[[int | None], None]], code: int | None
) -> None:
    loop, on_exit = watcher
    try:
        loop.call_soon_threadsafe(on_exit, code)
    except RuntimeError:  # that supervisor's loop is closed: nobody is waiting any more
        pass


class ForkedProcess:
    """A worker forked by the fork server."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.pid = pid
        self._server = server
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None
        self._exited = False

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[int | None], None]) -> None:
        """Exit codes come from the fork server's reports."""

        def exited(code: int | None) -> None:
            self._exited = True
            on_exit(code)

        self._server.watch(self.pid, loop, exited)

    def kill(self) -> None:
        """SIGKILL the worker's group; the pidfd makes sure the right process is hit."""
        if self._exited:
            return
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                return
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        else:
            kill_group(self.pid)

    def close(self) -> None:
        """Release the pidfd."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._server.unwatch(self.pid)
