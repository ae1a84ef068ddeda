"""What runs inside a Ray actor: the host of one osiiso_mp worker.

Imported by the actor's process (Ray finds the class by its module), never by the user's
process for its own use. :meth:`WorkerHost.serve` connects back
to the supervisor's listener, proves it holds the executor's key, and runs the same worker
loop as a local worker (:func:`..worker._entry.serve`) until the supervisor stops it (the
call then returns) or goes away. A crash, a timeout's kill or a memory cap's kill ends the
actor's process: Ray reports that, and the transport turns it into the worker's exit.

While it serves, ``ps`` shows the actor as ``ray::WorkerHost.serve osiiso_mp worker 3
(executor 1, parent 12345 on HOST)``: Ray's title with ours after it, set through Ray's own
``setproctitle`` (Ray puts its title back when the call returns). The process's name (what
``top`` shows) stays Ray's ``ray::WorkerHost``, which ``ray stop`` looks for.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..protocol._messages import Configure

__all__ = ["WorkerHost"]


def _title(cfg: Configure) -> None:
    """Add our title to Ray's (see the module's docstring); never raises."""
    if not cfg.title:
        return
    try:
        from ray import _raylet

        _raylet.setproctitle(f"ray::WorkerHost.serve {cfg.title}")  # type: ignore[attr-defined]
    except Exception:
        pass


class WorkerHost:
    """A Ray actor hosting one worker (made remote by the transport, with its options)."""

    def where(self) -> tuple[str, int]:
        """The host name and pid of this actor's process."""
        return socket.gethostname(), os.getpid()

    def serve(self, address: tuple[str, int], key: bytes, token: bytes) -> str:
        """Connect to the supervisor at ``address`` and serve it; ``"stopped"`` once it
        stopped this worker (or went away)."""
        import ray

        from ..worker._entry import serve
        from ._tcp import connect_to_supervisor

        node_id = ray.get_runtime_context().get_node_id()
        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        node = f"{ip}:{node_id[:8]}"
        serve(connect_to_supervisor(address, key, token), hosted=True, node=node, title=_title)
        return "stopped"
