"""The Ray transport: each worker a Ray actor, reached over a TCP connection of our own.

::

    user's process                                   Ray actor (any node)
    supervisor --RunTask/Stop frames over TCP-->     WorkerHost.serve: the worker loop
               <--TaskFinished/... frames------      (the same as a local worker's)
    exit watch thread: ray.wait on every actor's serve() call -> the link's exit

The supervisor stays in the user's process and decides everything, as with local workers;
Ray only places and starts the actors, and tells us when one ends. Frames never go through
Ray's own calls (one actor call a task would cost about a millisecond): each actor connects
back to a :class:`~._tcp.Listener` bound to the driver's cluster address, and proves it
holds the executor's key before a frame is read.

What differs from local workers, and what the supervisor does instead (see
``Capabilities``): no shared memory (large buffers travel inline), no exit codes (Ray's
reason is put in the crash record, with the code where Ray gives one), no common clock
(times mapped at the hand-shake), no pids to read (workers report their memory and CPU and
watch ``max_rss`` themselves), no process groups (a killed actor's own children may
outlive it). A timeout, a sync cancel or a memory cap kills the actor
(``ray.kill(no_restart=True)``), and the supervisor starts another.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

from ..protocol._channel import Channel
from ._base import Capabilities, LinkEvents
from ._ray_reaper import Reaper, ray_processes
from ._tcp import Listener, new_key

if TYPE_CHECKING:
    from ..protocol._messages import Message

__all__ = ["RayLink", "RayTransport"]

log = logging.getLogger("osiiso_mp")

_WATCH_TICK = 0.1  # seconds the exit watch waits for an end before it looks for new actors
_EXIT_CODE = re.compile(r"exits with an exit code (-?\d+)")


def _reason(exc: BaseException) -> str:
    """Ray's reason for an actor's end, in a line."""
    text = str(exc)
    detail = text.split("Worker exit detail: ", 1)
    if len(detail) == 2:
        text = detail[1].split(" Some common causes", 1)[0]
    else:
        text = text.strip().splitlines()[0] if text.strip() else ""
    return f"Ray: {type(exc).__name__}: {text}".rstrip(": ")


def _exit_code(reason: str) -> int | None:
    match = _EXIT_CODE.search(reason)
    return None if match is None else int(match.group(1))


class RayLink:
    """One worker actor: its TCP channel once it has connected back, its Ray handles."""

    def __init__(
        self, transport: RayTransport, loop: asyncio.AbstractEventLoop, events: LinkEvents
    ) -> None:
        self.pid = 0  # the worker reports it when ready
        self.node = ""  # the peer's address, once connected
        self.parent_pid: int | None = None
        self._transport = transport
        self._loop = loop
        self._events = events
        self._channel: Channel | None = None
        self._queued: list[Message] = []  # sent before the actor connected back
        self._closed = False
        self._killed = False
        self.actor: Any = None
        self.ref: Any = None  # its serve() call: done when the actor ends
        self.token = b""

    def arrived(self, sock: socket.socket) -> None:
        """The actor connected back and proved itself (on the loop)."""
        if self._closed:
            sock.close()
            return
        self.node = str(sock.getpeername()[0])
        events = self._events
        channel = self._channel = Channel(self._loop, sock, events.message, events.closed)
        for msg in self._queued:
            channel.send(msg)
        self._queued.clear()

    def ended(self, code: int | None, reason: str | None) -> None:
        """The actor's serve() call ended (on the loop, from the exit watch)."""
        if not self._closed:
            self._events.exited(code, reason)

    def send(self, msg: Message) -> None:
        """Queue ``msg`` (held until the actor has connected)."""
        if self._channel is None:
            self._queued.append(msg)
        else:
            self._channel.send(msg)

    def flush(self) -> None:
        """Write what is queued now (once connected)."""
        if self._channel is not None:
            self._channel.flush()

    def drain(self) -> None:
        """Deliver what the worker sent and we have not read yet."""
        if self._channel is not None and not self._channel.closed:
            self._channel.drain()

    def kill(self) -> None:
        """Kill the actor (``ray.kill``, no restart); idempotent, never raises."""
        if self._killed or self.actor is None:
            return
        self._killed = True
        try:
            import ray

            ray.kill(self.actor, no_restart=True)
        except Exception as exc:  # gone already, or Ray is shutting down
            log.debug("osiiso_mp: ray.kill of a worker actor: %s", exc)

    def close(self) -> None:
        """Release the connection and the actor (it has ended, or is being killed)."""
        if self._closed:
            return
        self._closed = True
        if self._channel is not None:
            self._channel.close()
        self._transport.forget(self)
        self.kill()  # a stopped worker's actor idles until killed: release its resources

    def rss(self) -> int:
        """Not read here: the worker reports its memory (``UsageReported``)."""
        return 0

    def stopped(self) -> bool:
        """Not read here (a stopped actor is Ray's to see)."""
        return False

    def usage(self) -> tuple[int, float]:
        """Not read here: the worker reports it."""
        return 0, 0.0


class _ExitWatch:
    """A thread waiting on every actor's serve() call at once; an ended one is reported
    to its link on the supervisor's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._links: dict[Any, RayLink] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osiiso_mp-ray-exits", daemon=True)
        self._thread.start()

    def add(self, link: RayLink) -> None:
        with self._lock:
            self._links[link.ref] = link

    def remove(self, link: RayLink) -> None:
        with self._lock:
            self._links.pop(link.ref, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import ray

        while not self._stop.is_set():
            with self._lock:
                refs = list(self._links)
            if not refs:
                self._stop.wait(_WATCH_TICK)
                continue
            try:
                ready, _ = ray.wait(refs, num_returns=1, timeout=_WATCH_TICK, fetch_local=False)
            except Exception as exc:  # Ray shut down under us
                log.debug("osiiso_mp: the Ray exit watch stops: %s", exc)
                return
            for ref in ready:
                with self._lock:
                    link = self._links.pop(ref, None)
                if link is None:
                    continue
                code: int | None
                try:
                    ray.get(ref, timeout=0)
                    code, reason = 0, None  # stopped: its serve() returned
                except Exception as exc:
                    reason = _reason(exc)
                    code = _exit_code(reason)
                try:
                    self._loop.call_soon_threadsafe(link.ended, code, reason)
                except RuntimeError:  # the supervisor's loop is closed
                    return


def _str_keyed(name: str, value: Any) -> dict[str, Any]:
    """A copy of ``value``, a mapping with string keys (None: empty)."""
    from collections.abc import Mapping

    from ..._checks import describe

    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{name} must be a dict with string keys, got {describe(value)}")
    return dict(value)


class _Residue:
    """What ``ray.init`` and ``ray.shutdown`` change in the driver's process, taken before
    a Ray this transport starts, and put back once it has shut that Ray down: the
    builtin ``print`` (replaced at shutdown), the SIGTERM handler (from the main thread
    only) and the environment variables Ray sets."""

    def __init__(self) -> None:
        import builtins

        self._print = builtins.print
        self._environ = dict(os.environ)
        main = threading.current_thread() is threading.main_thread()
        self._sigterm = signal.getsignal(signal.SIGTERM) if main else None

    def restore(self) -> None:
        import builtins

        builtins.print = self._print
        for name in set(os.environ) - set(self._environ):
            del os.environ[name]
        for name, value in self._environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        if self._sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._sigterm)


class RayTransport:
    """Workers as Ray actors on a Ray cluster (``transport="ray"`` makes a default one).

    ``address``: the cluster to join (as ``ray.init(address=...)``; None: the Ray session
    already started in this process, else ``RAY_ADDRESS``, else a new local Ray, which
    this transport shuts down when the executor shuts down, and which dies with this
    process however it ends).

    ``num_cpus``, ``memory`` (bytes or a size such as ``"2GiB"``: Ray's admission only,
    not a cap, see ``max_rss``) and ``resources`` are each worker actor's Ray resources;
    ``runtime_env`` is passed to the actors; ``init`` holds further ``ray.init`` keywords
    for a Ray started here (which otherwise has no dashboard and logs only errors to this
    process). ``bind`` is the address the listener for the workers' connections binds
    (default: this node's address in the cluster).

    Constructing one starts nothing; the executor joins (or starts) Ray when it is made.
    Bad arguments raise ``TypeError`` or ``ValueError`` here.
    """

    name = "ray"
    capabilities = Capabilities(
        same_host=False,
        shared_memory=False,
        exit_codes=False,
        one_clock=False,
        local_pids=False,
        process_groups=False,
    )

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1.0,
        memory: int | str | None = None,
        resources: dict[str, float] | None = None,
        runtime_env: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None,
        bind: str | None = None,
    ) -> None:
        from ..._checks import check_bytes, check_seconds, describe

        for name, value in (("address", address), ("bind", bind)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, got {describe(value)}")
        self.address = address
        self.num_cpus = check_seconds(
            "num_cpus", num_cpus, requirement="a number of CPUs >= 0", minimum=0, inclusive=True
        )
        self.memory = (
            None
            if memory is None
            else check_bytes(
                "memory", memory, minimum=1, requirement="a number of bytes or a size like '2GiB'"
            )
        )
        self.resources = _str_keyed("resources", resources)
        for name, amount in self.resources.items():
            check_seconds(
                f"resources[{name!r}]",
                amount,
                requirement="an amount >= 0",
                minimum=0,
                inclusive=True,
            )
        self.runtime_env = None if runtime_env is None else _str_keyed("runtime_env", runtime_env)
        self.init = _str_keyed("init", init)
        self.bind = bind
        self.started_ray = False  # this transport started Ray, and shuts it down
        self._key = new_key()
        self._listener: Listener | None = None
        self._watch: _ExitWatch | None = None
        self._host_class: Any = None
        self._links: set[RayLink] = set()
        self._residue: _Residue | None = None
        self._reaper: Reaper | None = None

    def __repr__(self) -> str:
        where = self.address or "the current Ray session"
        return f"RayTransport({where}, num_cpus={self.num_cpus:g})"

    def open(self) -> None:
        """Join Ray (or start a local one) in the caller's thread, before any worker."""
        if self.started_ray:
            return
        residue = _Residue()  # before Ray is imported: importing it sets a variable too
        import psutil
        import ray

        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": True,  # what tasks print reaches this process
                "logging_level": logging.ERROR,  # not Ray's start-up lines (init= may)
            }
            options.update(self.init)
            self._residue = residue
            before = {child.pid for child in psutil.Process().children(recursive=True)}
            ray.init(address=self.address, **options)
            self.started_ray = True
            # what it started dies with this process, however it ends
            self._reaper = Reaper(ray_processes(before))

    def default_procs(self) -> int:
        """``procs=None``: as many workers as the cluster's CPUs hold."""
        self.open()
        import ray

        cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
        return max(1, int(cpus // self.num_cpus) if self.num_cpus else int(cpus))

    def connect(self, slot: int, loop: asyncio.AbstractEventLoop, events: LinkEvents) -> RayLink:
        """Start a worker actor for ``slot``; it connects back to our listener."""
        import ray

        self.open()
        if self._listener is None:
            host = self.bind or ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            self._listener = Listener(loop, host, self._key)
        if self._watch is None:
            self._watch = _ExitWatch(loop)
        if self._host_class is None:
            from ._ray_host import WorkerHost

            self._host_class = ray.remote(WorkerHost)
        link = RayLink(self, loop, events)
        link.token = self._listener.expect(link.arrived)
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "max_restarts": 0}
        if self.memory is not None:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = self.resources
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        try:
            link.actor = self._host_class.options(**options).remote()
            link.ref = link.actor.serve.remote(self._listener.address, self._key, link.token)
        except BaseException:
            self._listener.forget(link.token)
            raise
        self._links.add(link)
        self._watch.add(link)
        return link

    def forget(self, link: RayLink) -> None:
        """``link`` is closed: refuse its token, stop watching it."""
        self._links.discard(link)
        if self._listener is not None:
            self._listener.forget(link.token)
        if self._watch is not None and link.ref is not None:
            self._watch.remove(link)

    def close(self) -> None:
        """Kill what actors are left, stop listening and watching; shut down a Ray that
        this transport started."""
        for link in list(self._links):
            link.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self.started_ray:
            import ray

            self.started_ray = False
            ray.shutdown()
            if self._reaper is not None:
                self._reaper.stop()
                self._reaper = None
            if self._residue is not None:
                self._residue.restore()
                self._residue = None
