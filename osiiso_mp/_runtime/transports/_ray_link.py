"""The Ray transport's link to one worker actor, and the thread that watches every
actor's end (see :mod:`._ray`)."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
from typing import TYPE_CHECKING, Any

from ..protocol._channel import Channel
from ._base import LinkEvents

if TYPE_CHECKING:
    from ..protocol._messages import Message
    from ._ray import RayTransport

__all__ = ["ExitWatch", "RayLink"]

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
        # sent before the actor connected back: messages, and frames already encoded
        self._queued: list[Message | bytes] = []
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
            if type(msg) is bytes:
                channel.send_frame(msg)
            else:
                channel.send(msg)  # type: ignore[arg-type]
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

    def send_frame(self, frame: bytes) -> None:
        """Queue one whole frame, already encoded (held until the actor has connected)."""
        if self._channel is None:
            self._queued.append(frame)
        else:
            self._channel.send_frame(frame)

    def will_flush(self) -> None:
        """Promise a :meth:`flush` before this loop callback returns (once connected)."""
        if self._channel is not None:
            self._channel.will_flush()

    def direct_lock(self) -> threading.Lock | None:
        """None: a cluster's worker takes its tasks from the supervisor only."""
        return None

    def direct_ready(self) -> bool:
        """Never (see :meth:`direct_lock`)."""
        return False

    def write_direct(self, frame: bytes) -> bool:
        """Never called (see :meth:`direct_lock`)."""
        raise NotImplementedError("a cluster's worker takes no direct writes")

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


class ExitWatch:
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
