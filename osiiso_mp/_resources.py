"""What this machine gives a pool: the CPU budget of this process, the per-worker thread
variables, and the resident size of another process.

:func:`cpu_budget` is what ``procs=None`` means: the number of CPUs this process may really
use, which on a shared machine or in a container is often far below ``os.cpu_count()``.
It takes the smallest of

- the CPU affinity mask (``os.sched_getaffinity``; ``os.cpu_count()`` where unavailable),
- the cgroup v2 CPU quota (``cpu.max``) of this process's cgroup and of every ancestor,
- the cgroup v1 CFS quota (``cpu.cfs_quota_us / cpu.cfs_period_us``), likewise,
- the ``OSIISO_MP_MAX_CPUS`` environment variable (a positive int), when set,

rounds a fractional quota up (1.5 CPUs -> 2) and never returns less than 1. The cgroup
files are read by :mod:`._cgroups` (a file that cannot be read or parsed counts as "no
limit"); every path is a parameter, so that tests can point the functions at fake cgroup
trees. Byte sizes (``"1.5GiB"``) are parsed in :mod:`._sizes`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._cgroups import cpu_quota, memory_max, read_membership

__all__ = [
    "ENV_MAX_CPUS",
    "THREAD_ENV_VARS",
    "ProcessRss",
    "cgroup_limits",
    "cpu_budget",
    "thread_env",
]

_log = logging.getLogger(__name__)

#: Environment variable capping :func:`cpu_budget` (a positive int).
ENV_MAX_CPUS = "OSIISO_MP_MAX_CPUS"

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# --------------------------------------------------------------------------- the budget


def _affinity_count() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where there is none)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return len(getaffinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


def _env_max_cpus(env: Mapping[str, str]) -> int | None:
    """The ``OSIISO_MP_MAX_CPUS`` cap, or ``None`` when unset or invalid (logged)."""
    raw = env.get(ENV_MAX_CPUS)
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        _log.warning("ignoring %s=%r: it must be a positive integer", ENV_MAX_CPUS, raw)
        return None
    return value


@dataclass(frozen=True, slots=True)
class _Probe:
    """Everything :func:`cpu_budget` and :func:`cgroup_limits` look at."""

    affinity: int
    cgroup_version: int | str | None
    cpu_quota: float | None
    memory_max: int | None
    env_max_cpus: int | None

    @property
    def budget(self) -> int:
        """The smallest of the CPU limits, quota rounded up, at least 1."""
        limits = [self.affinity]
        if self.cpu_quota is not None:
            limits.append(math.ceil(self.cpu_quota))
        if self.env_max_cpus is not None:
            limits.append(self.env_max_cpus)
        return max(1, min(limits))


def _probe(
    env: Mapping[str, str] | None,
    cgroup_root: str,
    proc_self_cgroup: str,
    affinity: Callable[[], int] | None,
) -> _Probe:
    """Read the affinity mask, the cgroup files and the environment once."""
    membership = read_membership(proc_self_cgroup)
    return _Probe(
        affinity=(affinity or _affinity_count)(),
        cgroup_version=membership.version,
        cpu_quota=cpu_quota(cgroup_root, membership),
        memory_max=memory_max(cgroup_root, membership),
        env_max_cpus=_env_max_cpus(os.environ if env is None else env),
    )


def cpu_budget(
    *,
    env: Mapping[str, str] | None = None,
    cgroup_root: str = "/sys/fs/cgroup",
    proc_self_cgroup: str = "/proc/self/cgroup",
    affinity: Callable[[], int] | None = None,
) -> int:
    """The number of CPUs this process may really use (at least 1).

    The smallest of the affinity mask, the cgroup v2 and v1 CPU quotas of this process's
    cgroup and its ancestors (rounded up) and ``OSIISO_MP_MAX_CPUS`` (ignored, with a
    logged warning, unless a positive int). ``env`` defaults to ``os.environ``;
    ``affinity`` (a callable returning a CPU count) to the real affinity mask.
    """
    return _probe(env, cgroup_root, proc_self_cgroup, affinity).budget


def cgroup_limits(
    *,
    env: Mapping[str, str] | None = None,
    cgroup_root: str = "/sys/fs/cgroup",
    proc_self_cgroup: str = "/proc/self/cgroup",
    affinity: Callable[[], int] | None = None,
) -> dict[str, object]:
    """What :func:`cpu_budget` found, for ``python -m osiiso_mp info``.

    Keys: ``cpu_count`` (``os.cpu_count()``), ``affinity`` (CPUs in the affinity mask),
    ``cgroup_version`` (``1``, ``2``, ``"hybrid"`` or ``None``), ``cpu_quota`` (CPUs, may
    be fractional, or ``None``), ``memory_max`` (bytes or ``None``), ``env_max_cpus``
    (the ``OSIISO_MP_MAX_CPUS`` cap or ``None``) and ``cpu_budget``.
    """
    probe = _probe(env, cgroup_root, proc_self_cgroup, affinity)
    return {
        "cpu_count": os.cpu_count(),
        "affinity": probe.affinity,
        "cgroup_version": probe.cgroup_version,
        "cpu_quota": probe.cpu_quota,
        "memory_max": probe.memory_max,
        "env_max_cpus": probe.env_max_cpus,
        "cpu_budget": probe.budget,
    }


# --------------------------------------------------------------------------- inner threads

#: The variables that size the thread pools of OpenMP, OpenBLAS, MKL, Accelerate (vecLib),
#: numexpr and BLIS: ``inner_threads`` sets them in every worker.
THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)


def thread_env(
    inner_threads: int | None,
    procs: int,
    *,
    env: Mapping[str, str] | None = None,
    budget: Callable[[], int] = cpu_budget,
) -> tuple[tuple[str, str], ...]:
    """The ``(name, value)`` pairs of :data:`THREAD_ENV_VARS` a worker sets at start.

    A variable the parent's environment (``env``, default ``os.environ``) already defines
    keeps the parent's value; the others get ``inner_threads``, or, when that is ``None``,
    ``max(1, budget() // procs)`` so that ``procs`` workers times their threads do not exceed
    the CPU budget. ``budget`` is only called when a value is missing.

    The parent's own values are passed on explicitly because a worker forked by the fork
    server inherits the server's environment, which may predate changes made in the parent.
    """
    environ = os.environ if env is None else env
    missing = [name for name in THREAD_ENV_VARS if name not in environ]
    if missing and inner_threads is None:
        inner_threads = max(1, budget() // max(1, procs))
    default = str(inner_threads)
    return tuple((name, environ.get(name, default)) for name in THREAD_ENV_VARS)


# --------------------------------------------------------------------------- another's RSS


class ProcessRss:
    """Reads the resident set size of another process, cheaply enough to poll it often.

    On Linux it keeps ``/proc/<pid>/statm`` open and reads it with one ``pread`` (a couple
    of microseconds); the open file stays bound to that process, so a recycled pid is never
    mistaken for it. Elsewhere it asks psutil. :meth:`read` answers ``0`` once the process
    has gone or when its size cannot be read.
    """

    __slots__ = ("_fd", "_proc")

    def __init__(self, pid: int) -> None:
        self._proc: Any = None
        try:
            self._fd: int | None = os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None
            try:
                import psutil

                self._proc = psutil.Process(pid)
            except Exception:  # no psutil, or the process has gone already
                self._proc = None

    def read(self) -> int:
        """The process's resident size in bytes now (``0`` when unknown)."""
        if self._fd is not None:
            try:
                return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE_SIZE
            except (OSError, IndexError, ValueError):
                return 0
        if self._proc is not None:
            try:
                return int(self._proc.memory_info().rss)
            except Exception:  # psutil.NoSuchProcess, AccessDenied, ...
                return 0
        return 0

    def close(self) -> None:
        """Release the open file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._proc = None
