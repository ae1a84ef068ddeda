"""Per-attempt measurement, taken inside the worker around each attempt.

Cheap by design (two ``getrusage`` calls and two ``pread`` of ``/proc/self/statm`` per attempt,
a few microseconds in all; no psutil on the hot path):

- ``cpu_time``: user + system seconds of the worker process during the attempt. Sync attempts
  run one at a time, so this is the attempt's own CPU. For concurrent ``async def`` attempts
  it is the worker's CPU over the attempt's span, shared with whatever else ran meanwhile.
- ``peak_rss``: when the process's high-water mark (``ru_maxrss``) rose during the attempt,
  that new mark, which is exactly the attempt's peak; otherwise the larger of the resident
  sizes at start and end (the attempt never went above the earlier high-water mark).
- ``rss_delta``: resident size at the end minus at the start.
"""

from __future__ import annotations

import os
import sys
from resource import RUSAGE_SELF, getrusage
from time import perf_counter

__all__ = ["Meter", "Snapshot"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# ru_maxrss is in KiB on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024

Snapshot = tuple[float, float, int, int]  # (perf_counter, cpu seconds, maxrss bytes, rss bytes)


class Meter:
    """Takes snapshots of this process and turns two of them into attempt telemetry."""

    __slots__ = ("_statm",)

    def __init__(self) -> None:
        try:
            self._statm: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._statm = None

    def rss(self) -> int:
        """Current resident set size of this process in bytes (0 when unknown)."""
        if self._statm is None:
            return 0
        try:
            # "size resident shared ...", in pages: only the second field is parsed
            return int(os.pread(self._statm, 128, 0).split(None, 2)[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def snapshot(self) -> Snapshot:
        """The clock, CPU time, high-water mark and resident size, now."""
        ru = getrusage(RUSAGE_SELF)
        return (perf_counter(), ru.ru_utime + ru.ru_stime, ru.ru_maxrss * _MAXRSS_UNIT, self.rss())

    def measure(self, start: Snapshot) -> tuple[float, float, int, int]:
        """``(finished_at, cpu_time, peak_rss, rss_delta)`` of an attempt begun at ``start``."""
        # what snapshot() reads, in the same order, without building its tuple
        ru = getrusage(RUSAGE_SELF)
        finished_at = perf_counter()
        cpu = ru.ru_utime + ru.ru_stime - start[1]
        maxrss = ru.ru_maxrss * _MAXRSS_UNIT
        rss = self.rss()
        # the new high-water mark if it rose, else the larger resident size, start or end
        # (as max() gives it, less the call)
        peak = maxrss if maxrss > start[2] else rss if rss > start[3] else start[3]
        return finished_at, cpu if cpu > 0.0 else 0.0, peak, rss - start[3]
