"""The worker transport interface: what the supervisor needs of a way to run workers.

::

    Supervisor --connect(slot, events)--> Transport --> WorkerLink (one per worker process)
        |                                                  |  send(msg) / flush()
        |<-- events.message(msg), events.closed(), --------|  kill() / close() / drain()
        |    events.exited(code)                           |  rss() / stopped() / usage()

A transport starts workers and hands back a :class:`WorkerLink` for each: the only way the
supervisor reaches that worker. The link carries typed messages both ways (the worker's
arrive through ``events`` on the supervisor's loop), kills the worker, says when it has
exited (with an exit code where the transport knows one), and reads what the transport
can read of the process (its resident size, whether it is stopped). :class:`Capabilities`
say which of the supervisor's host-bound features apply: a worker on another host gets no
``sys.path``, working directory or environment of ours, no descriptors and no shared
memory, and its clock is mapped onto ours from the hand-shake (unless it turns out to be
ours: see :mod:`.._clock`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # asyncio too: the executor's class loads this before it needs asyncio
    import asyncio
    import threading

    from ..._config import ExecutorConfig
    from ..protocol._messages import Message

__all__ = [
    "ELSEWHERE",
    "ON_THIS_HOST",
    "Capabilities",
    "LinkEvents",
    "Transport",
    "WorkerLink",
    "make_transport",
    "named_transport",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport's workers share with the supervisor's process."""

    same_host: bool
    """Workers run on this host: they take our ``sys.path``, working directory, environment,
    CPU affinity and inherited descriptors, and watch our fork server as their parent."""
    shared_memory: bool
    """Large buffers may travel in shared memory (Linux ``memfd``) rather than inline."""
    exit_codes: bool
    """A worker's exit reports its exit code (else ``None``)."""
    one_clock: bool
    """The workers' ``time.perf_counter()`` readings are ours (one clock on the host)."""
    local_pids: bool
    """A worker's pid is a process here: its memory and state can be read directly."""
    process_groups: bool
    """Killing a worker kills the processes its tasks started (its process group)."""


ON_THIS_HOST = Capabilities(
    same_host=True,
    shared_memory=True,
    exit_codes=True,
    one_clock=True,
    local_pids=True,
    process_groups=True,
)
"""Workers that are child processes on this host (the local transport): every capability."""

ELSEWHERE = Capabilities(
    same_host=False,
    shared_memory=False,
    exit_codes=False,
    one_clock=False,
    local_pids=False,
    process_groups=False,
)
"""Workers reached only through their connection (a cluster's): no capability of the host."""


class LinkEvents(Protocol):
    """What a link reports, on the supervisor's event loop."""

    def message(self, msg: Message) -> None:
        """The worker sent ``msg``."""

    def closed(self) -> None:
        """The connection ended (end of file) before the exit was seen."""

    def exited(self, code: int | None, reason: str | None = None) -> None:
        """The worker process has exited (``code``: its exit status, None if unknown;
        ``reason``: what the transport knows of why, for the crash records)."""


@runtime_checkable
class WorkerLink(Protocol):
    """The supervisor's only handle on one worker process."""

    pid: int
    node: str  # the host (or cluster node) the worker runs on
    parent_pid: int | None  # the process the worker must die with, where it is on our host

    def send(self, msg: Message) -> None:
        """Queue ``msg``; it goes out at the end of this loop iteration (or on flush)."""

    def flush(self) -> None:
        """Write what is queued now."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one whole frame without buffers or descriptors, already encoded (see
        :func:`..protocol._framing.run_frame`); as :meth:`send` otherwise."""

    def will_flush(self) -> None:
        """Promise a :meth:`flush` before the current loop callback returns: until then,
        what is sent schedules no write of its own (a turn of the loop saved)."""

    def direct_lock(self) -> threading.Lock | None:
        """The lock under which a thread other than the supervisor's may write one frame
        straight to the worker (:meth:`write_direct`), or None where the link cannot take
        such writes. Called first on the supervisor's thread."""

    def direct_ready(self) -> bool:
        """With :meth:`direct_lock` held: may :meth:`write_direct` write now (the link is
        open, and nothing it queued waits to be written)?"""

    def write_direct(self, frame: bytes) -> bool:
        """With :meth:`direct_lock` held and :meth:`direct_ready` found true, from any
        thread: write ``frame`` (no buffers, no descriptors) now, whole. False if the
        connection failed (the supervisor then finds it failed, as it would have)."""

    def drain(self) -> None:
        """Deliver every message already received (before the link is closed)."""

    def kill(self) -> None:
        """Kill the worker now (and what its tasks started); idempotent, never raises."""

    def close(self) -> None:
        """Release the connection and whatever watches the process (after its exit)."""

    def rss(self) -> int:
        """The worker's resident size in bytes now (0 when unknown). Called on the
        supervisor's loop, every 100 ms under ``max_rss``: it must not block. A transport
        that cannot read the process itself answers from what its worker last reported."""

    def stopped(self) -> bool:
        """Is the worker stopped (SIGSTOP, a debugger), so that it runs nothing?"""

    def usage(self) -> tuple[int, float]:
        """Resident size in bytes and CPU percent since the previous call, for ``stats()``
        (non-blocking, as :meth:`rss`)."""


@runtime_checkable
class Transport(Protocol):
    """Starts workers and links the supervisor to them."""

    name: str
    capabilities: Capabilities

    def open(self) -> None:
        """Get ready to start workers (join a cluster, say), in the thread that makes the
        executor, before the supervisor starts; idempotent."""

    def connect(self, slot: int, loop: asyncio.AbstractEventLoop, events: LinkEvents) -> WorkerLink:
        """Start a worker for ``slot`` and return its link; its messages, the end of its
        connection and its exit are reported through ``events`` on ``loop``. Raises
        ``OSError`` (or another exception) when no worker could be started."""

    def close(self) -> None:
        """Release the transport's own resources (after every worker has exited)."""


def named_transport(value: Any) -> Any:
    """The transport object a cluster transport's name stands for (``"ray"``); anything
    else as it is (``"local"`` is made by :func:`make_transport`, with the start method)."""
    if value == "ray":
        from ._ray import RayTransport

        return RayTransport()
    return value


def make_transport(config: ExecutorConfig) -> Transport:
    """The transport an executor's ``transport`` option names (or the one it holds)."""
    chosen: Any = named_transport(config.transport)
    if not isinstance(chosen, str):
        return chosen  # type: ignore[no-any-return]  # checked by ExecutorConfig
    from ._local import LocalTransport

    return LocalTransport(fresh=config.start_method == "spawn")
