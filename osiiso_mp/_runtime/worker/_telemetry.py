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


def _resident(fd: int) -> int:
    """The resident size in bytes that the statm file open as ``fd`` gives ("size resident
    shared ...", in pages: only the second field is parsed). Raises ``OSError``,
    ``IndexError`` or ``ValueError`` when it cannot be read or parsed."""
    return int(os.pread(fd, 128, 0).split(None, 2)[1]) * _PAGE


class Meter:
    """Takes snapshots of this process and turns two of them into attempt telemetry.

    ``statm``: the file it reads the resident size from (``/proc/self/statm``; tests give
    others). Its descriptor stays open for the meter's life; should a task close it behind
    the meter's back (a double close of its own, a ``closerange``), the next read finds the
    descriptor gone or the number taken by another file, opens the file again and goes on,
    rather than reporting 0 for every later attempt. The old number is never closed then:
    it is no longer the meter's.
    """

    __slots__ = ("_ident", "_path", "_statm")

    def __init__(self, statm: str = "/proc/self/statm") -> None:
        self._path = statm
        self._statm: int | None = None
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the descriptor
        self._open()

    def _open(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._statm = self._ident = None
            return
        st = os.fstat(fd)
        self._statm, self._ident = fd, (st.st_dev, st.st_ino)

    def _ours(self) -> bool:
        """Whether the descriptor is still the file the meter opened."""
        if self._statm is None:
            return False
        try:
            st = os.fstat(self._statm)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def rss(self) -> int:
        """Current resident set size of this process in bytes (0 when unknown)."""
        if self._statm is None:
            return 0
        try:
            return _resident(self._statm)
        except (OSError, IndexError, ValueError):
            return self._read_again()

    def _read_again(self) -> int:
        """A read failed: with the descriptor still ours, the file holds nothing to parse
        (0); with it gone or another file's, open the file again and read once more."""
        if self._ours():
            return 0
        self._open()  # (the old number is not ours any more: left alone)
        if self._statm is None:
            return 0
        try:
            return _resident(self._statm)
        except (OSError, IndexError, ValueError):
            return 0

    def close(self) -> None:
        """Close the descriptor, if it is still the meter's (a worker's meter lives as long
        as the worker: this is for meters made elsewhere, in tests)."""
        if self._ours():
            assert self._statm is not None
            os.close(self._statm)
        self._statm = self._ident = None

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
