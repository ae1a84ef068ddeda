"""The local transport: worker processes from this process's fork server, over socket pairs.

Each worker is forked by the fork server (:mod:`.._forkserver`), or started by it as a fresh
interpreter (``start_method="spawn"``), and serves the other end of a Unix socket pair that
carries framed messages (:class:`..protocol._channel.Channel`). The fork server reports its
exit code; a pidfd makes sure a kill reaches the right process, and its process group goes
with it. Its memory and state are read from ``/proc`` (or psutil): one ``pread`` of
``/proc/<pid>/statm`` for ``max_rss``, the process state for the stopped-worker check.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import TYPE_CHECKING, Any

from ..._resources import ProcessRss
from ..protocol._channel import Channel
from ._base import ON_THIS_HOST, LinkEvents
from ._forkserver import ForkedProcess, ForkServer
from ._processes import process_stopped

if TYPE_CHECKING:
    from ..protocol._messages import Message

__all__ = ["LocalLink", "LocalTransport"]

_HOST = socket.gethostname()  # where every local worker runs, for the records


class LocalLink:
    """One local worker process: its socket's channel, its process, its ``/proc`` files."""

    def __init__(self, proc: ForkedProcess, channel: Channel, parent_pid: int) -> None:
        self.pid = proc.pid
        self.node = _HOST
        self.parent_pid: int | None = parent_pid
        self._proc = proc
        self._channel = channel
        self._rss: ProcessRss | None = None  # opened on first read
        self._ps: Any = None  # a psutil.Process, for usage()

    def send(self, msg: Message) -> None:
        """Queue ``msg`` (``ValueError`` if no frame can hold it)."""
        self._channel.send(msg)

    def flush(self) -> None:
        """Write what is queued now."""
        self._channel.flush()

    def send_frame(self, frame: bytes) -> None:
        """Queue one whole frame, already encoded (no buffers, no descriptors)."""
        self._channel.send_frame(frame)

    def direct_lock(self) -> threading.Lock | None:
        """The lock under which another thread may write a frame straight to the worker
        (:meth:`write_direct`); call it first on the supervisor's thread."""
        return self._channel.direct_lock()

    def direct_ready(self) -> bool:
        """With :meth:`direct_lock` held: may :meth:`write_direct` write now?"""
        return self._channel.direct_ready()

    def write_direct(self, frame: bytes) -> bool:
        """With :meth:`direct_lock` held and :meth:`direct_ready` true, from any thread:
        write ``frame`` now; False if the socket failed."""
        return self._channel.write_direct(frame)

    def will_flush(self) -> None:
        """Promise a :meth:`flush` before this loop callback returns (see the channel's)."""
        self._channel.will_flush()

    def drain(self) -> None:
        """Deliver what the worker sent and we have not read yet."""
        if not self._channel.closed:
            self._channel.drain()

    def kill(self) -> None:
        """SIGKILL the worker and its process group."""
        self._proc.kill()

    def close(self) -> None:
        """Close the socket, the pidfd and the ``/proc`` file."""
        self._channel.close()
        self._proc.close()
        if self._rss is not None:
            self._rss.close()
            self._rss = None

    def rss(self) -> int:
        """The resident size now, from ``/proc/<pid>/statm`` (kept open: a couple of µs)."""
        if self._rss is None:
            self._rss = ProcessRss(self.pid)
        return self._rss.read()

    def stopped(self) -> bool:
        """Is the process stopped (its ``/proc`` state ``T`` or ``t``)?"""
        return process_stopped(self.pid)

    def usage(self) -> tuple[int, float]:
        """Resident size and CPU percent since the previous call (psutil, imported here:
        it costs start-up time)."""
        import psutil

        try:
            ps = self._ps
            if ps is None:
                ps = self._ps = psutil.Process(self.pid)
                ps.cpu_percent(None)  # starts the measurement window
                cpu = 0.0
            else:
                cpu = ps.cpu_percent(None)
            return int(ps.memory_info().rss), float(cpu)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._ps = None
            return 0, 0.0


class LocalTransport:
    """Workers forked by this process's shared fork server (``fresh=True``: started by it
    as new interpreters, ``start_method="spawn"``). Either way the server is their parent:
    it reaps them, reports their exit codes, and kills their process groups when this
    process dies."""

    name = "local"
    capabilities = ON_THIS_HOST

    def __init__(self, *, fresh: bool = False) -> None:
        self._server = ForkServer.get()
        self._fresh = fresh

    def open(self) -> None:
        """Nothing to do: the fork server starts with the first worker."""

    def connect(self, slot: int, loop: asyncio.AbstractEventLoop, events: LinkEvents) -> LocalLink:
        """Fork a worker (restarting the fork server if it died) and link it."""
        if not self._server.alive:
            self._server = ForkServer.get()
        parent, child = socket.socketpair()
        try:
            proc = ForkedProcess(self._server, self._server.spawn(child, fresh=self._fresh))
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()  # the worker has its own copy of this end now
        channel = Channel(loop, parent, events.message, events.closed)
        proc.watch(loop, events.exited)
        return LocalLink(proc, channel, self._server.pid)

    def close(self) -> None:
        """The fork server is shared and outlives this transport."""
