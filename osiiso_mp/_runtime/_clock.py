"""Whose clock a worker's readings are on: the decision, and what it is made from.

A worker reports its times as ``time.perf_counter()`` readings. For a local worker they are
ours (one host, one ``CLOCK_MONOTONIC``). A worker of a transport without that promise (Ray,
TCP) says in ``WorkerReady`` what its clock read as it sent it; the supervisor maps the
worker's readings onto its own by the difference, which is late by the message's delivery
(a fraction of a millisecond idle, tens of milliseconds on a loaded machine).

Such a worker is often on this host all the same (a local Ray). Then its clock is ours and
no mapping is right: the worker also sends the kernel's boot id, and a worker with ours
whose reading is behind ours by less than :data:`SHARED_WITHIN` is taken to share our clock.
The bound keeps the mapping for a worker in another time namespace (same kernel, its own
monotonic offset), which reads seconds or days apart. Pure: no I/O but :func:`boot_id`.
"""

from __future__ import annotations

BOOT_ID = "/proc/sys/kernel/random/boot_id"
SHARED_WITHIN = 1.0
"""Seconds: a reading with our boot id at most this far behind ours is on our clock."""


def boot_id() -> str:
    """This kernel's boot id (Linux), or ``""`` where there is none to read."""
    try:
        with open(BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return ""


def clock_offset(ours: str, theirs: str, now: float, their_clock: float) -> float:
    """What to add to a worker's readings to put them on our clock.

    ``ours``/``theirs``: the boot ids (``""``: unknown); ``now``: our ``perf_counter()``
    as the worker's ``WorkerReady`` arrived; ``their_clock``: the reading it carried.
    """
    offset = now - their_clock
    if ours and theirs == ours and 0.0 <= offset < SHARED_WITHIN:
        return 0.0  # one kernel, one clock: the difference is only the delivery
    return offset
