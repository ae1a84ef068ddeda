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
promised (times mapped at the hand-shake, except for actors on this host, which share
ours: see :mod:`.._clock`), no pids to read (workers report their memory and CPU and
watch ``max_rss`` themselves), no process groups (a killed actor's own children may
outlive it). A timeout, a sync cancel or a memory cap kills the actor
(``ray.kill(no_restart=True)``), and the supervisor starts another.

:mod:`._ray_host` runs in the actor; :mod:`._ray_link` holds the link to one actor and the
thread watching their ends; :mod:`._ray_reaper` undoes what a Ray started here leaves in
this process, and kills what it leaves on the machine if this process is killed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._base import ELSEWHERE, LinkEvents
from ._ray_link import ExitWatch, RayLink
from ._ray_reaper import Reaper, Residue, ray_processes
from ._tcp import Listener, new_key

__all__ = ["RayLink", "RayTransport"]


def _str_keyed(name: str, value: Any) -> dict[str, Any]:
    """A copy of ``value``, a mapping with string keys (None: empty)."""
    from collections.abc import Mapping

    from ..._checks import describe

    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{name} must be a dict with string keys, got {describe(value)}")
    return dict(value)


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
    capabilities = ELSEWHERE

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
        self._watch: ExitWatch | None = None
        self._host_class: Any = None
        self._links: set[RayLink] = set()
        self._residue: Residue | None = None
        self._reaper: Reaper | None = None

    def __repr__(self) -> str:
        where = self.address or "the current Ray session"
        return f"RayTransport({where}, num_cpus={self.num_cpus:g})"

    def open(self) -> None:
        """Join Ray (or start a local one) in the caller's thread, before any worker."""
        if self.started_ray:
            return
        residue = Residue()  # before Ray is imported: importing it sets a variable too
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
            residue.keep_signals()
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
            self._watch = ExitWatch(loop)
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
