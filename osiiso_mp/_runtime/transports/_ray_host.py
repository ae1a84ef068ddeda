"""What runs inside a Ray actor: the host of one osiiso_mp worker.

Imported by the actor's process (Ray finds the class by its module), never by the user's
process for its own use. :meth:`WorkerHost.serve` connects back
to the supervisor's listener, proves it holds the executor's key, and runs the same worker
loop as a local worker (:func:`..worker._entry.serve`) until the supervisor stops it (the
call then returns) or goes away. A crash, a timeout's kill or a memory cap's kill ends the
actor's process: Ray reports that, and the transport turns it into the worker's exit.
"""

from __future__ import annotations

import os
import socket

__all__ = ["WorkerHost"]


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
        serve(connect_to_supervisor(address, key, token), hosted=True, node=node)
        return "stopped"
