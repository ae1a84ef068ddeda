"""A worker's watch over itself, for a worker the supervisor cannot read (elsewhere).

The supervisor reads a local worker's memory from ``/proc`` and enforces ``max_rss``
itself. A worker on another host (a cluster's) reports instead: this thread reads the
process's resident size every ``RSS_INTERVAL`` and its CPU time, sends
:class:`UsageReported` every ``Configure.report_usage`` seconds (what ``stats()`` shows),
and, with ``max_rss``, :class:`MemoryExceeded` as soon as the process is above it, even in
the middle of a sync task, which holds the worker's loop: the thread writes on the channel
itself (``Channel.send_threadsafe``). The supervisor then kills and replaces the worker,
as it does a local one it finds above the cap.
"""

from __future__ import annotations

import resource
import threading
import time

from ..protocol._channel import Channel
from ..protocol._messages import MemoryExceeded, UsageReported
from ._telemetry import Meter

__all__ = ["RSS_INTERVAL", "UsageWatch"]

RSS_INTERVAL = 0.1  # seconds between reads of the resident size (as the supervisor's)


def _cpu_time() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class UsageWatch:
    """Reports this worker's usage on ``channel`` every ``every`` seconds, and its
    crossing of ``max_rss`` at once (a daemon thread; it ends with the process)."""

    def __init__(self, channel: Channel, meter: Meter, every: float, max_rss: int | None):
        self._channel = channel
        self._meter = meter
        self._every = every
        self._max_rss = max_rss
        channel.allow_threadsafe_sends()
        self._thread = threading.Thread(target=self._run, name="osiiso_mp-usage", daemon=True)

    def start(self) -> None:
        """Begin watching (after the worker reported itself ready)."""
        self._thread.start()

    def _run(self) -> None:
        channel, meter, limit = self._channel, self._meter, self._max_rss
        tick = RSS_INTERVAL if limit is not None else self._every
        next_report = 0.0  # at once: the supervisor has a figure from the start
        over_sent = False
        while not channel.closed:
            rss = meter.rss()
            if limit is not None and rss > limit and not over_sent:
                over_sent = channel.send_threadsafe(MemoryExceeded(rss))
            now = time.monotonic()
            if now >= next_report and channel.send_threadsafe(UsageReported(rss, _cpu_time())):
                next_report = now + self._every
            time.sleep(tick)
