"""Machine facts: the CPU budget of this process, its cgroup limits, byte sizes, the
per-worker thread variables, and the resident size of another process.

:func:`cpu_budget` is what ``procs=None`` means: the number of CPUs this process may really
use, which on a shared machine or in a container is often far below ``os.cpu_count()``.
It takes the smallest of

- the CPU affinity mask (``os.sched_getaffinity``; ``os.cpu_count()`` where unavailable),
- the cgroup v2 CPU quota (``cpu.max``) of this process's cgroup and of every ancestor,
- the cgroup v1 CFS quota (``cpu.cfs_quota_us / cpu.cfs_period_us``), likewise,
- the ``OSIISO_MP_MAX_CPUS`` environment variable (a positive int), when set,

rounds a fractional quota up (1.5 CPUs -> 2) and never returns less than 1. A file that
cannot be read or parsed counts as "no limit". Every path is a parameter, so that tests can
point the functions at fake cgroup trees.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENV_MAX_CPUS",
    "THREAD_ENV_VARS",
    "ProcessRss",
    "cgroup_limits",
    "cpu_budget",
    "parse_size",
    "thread_env",
]

_log = logging.getLogger(__name__)

#: Environment variable capping :func:`cpu_budget` (a positive int).
ENV_MAX_CPUS = "OSIISO_MP_MAX_CPUS"

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# cgroup v1 reports "no memory limit" as a huge page-aligned number (LONG_MAX rounded down).
_V1_UNLIMITED_BYTES = 1 << 62


# --------------------------------------------------------------------------- file reading


def _read(path: str) -> str | None:
    """The stripped text of a small file, or ``None`` if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(65536).strip()
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _read_int(path: str) -> int | None:
    """An integer file (``cpu.cfs_quota_us``, ``memory.limit_in_bytes``), else ``None``."""
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _ProcCgroup:
    """This process's cgroup membership, from ``/proc/self/cgroup``."""

    v2_path: str | None  # the "0::<path>" line (unified hierarchy)
    v1: tuple[tuple[tuple[str, ...], str], ...]  # (controllers, path) per v1 hierarchy

    @property
    def version(self) -> int | str | None:
        """``2`` (unified), ``1`` (legacy), ``"hybrid"`` (both), ``None`` (no cgroups)."""
        if self.v2_path is not None and self.v1:
            return "hybrid"
        if self.v2_path is not None:
            return 2
        return 1 if self.v1 else None

    def v1_path(self, controller: str) -> tuple[tuple[str, ...], str] | None:
        """``(controllers, path)`` of the v1 hierarchy holding ``controller``."""
        for controllers, path in self.v1:
            if controller in controllers:
                return controllers, path
        return None


def _parse_proc_cgroup(text: str | None) -> _ProcCgroup:
    """Parse ``/proc/self/cgroup`` lines ``hierarchy-id:controllers:path``."""
    v2_path: str | None = None
    v1: list[tuple[tuple[str, ...], str]] = []
    for line in (text or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif controllers:
            v1.append((tuple(controllers.split(",")), path))
    return _ProcCgroup(v2_path, tuple(v1))


def _up_to_root(root: str, path: str) -> Iterator[str]:
    """The directories from ``root/path`` up to ``root`` itself, deepest first.

    In a container without its own cgroup namespace the path names a cgroup that is not
    visible under the mount; walking up still reaches the mount's root, which then is the
    container's cgroup. A path trying to climb out with ``..`` is reduced to ``root``.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        parts = []
    for depth in range(len(parts), -1, -1):
        yield os.path.join(root, *parts[:depth])


def _smallest(values: Iterator[float | None]) -> float | None:
    """The smallest of the values that are not ``None``; ``None`` if there are none."""
    found = [v for v in values if v is not None]
    return min(found) if found else None


# --------------------------------------------------------------------------- CPU quota


def _parse_cpu_max(text: str | None) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` (``"150000 100000"`` -> 1.5; ``"max ..."``)."""
    if text is None:
        return None
    parts = text.split()
    if not 1 <= len(parts) <= 2 or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) == 2 else 100_000
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _v1_quota(directory: str) -> float | None:
    """CPUs allowed by the cgroup v1 CFS files in ``directory`` (quota -1: unlimited)."""
    quota = _read_int(os.path.join(directory, "cpu.cfs_quota_us"))
    if quota is None or quota <= 0:
        return None
    period = _read_int(os.path.join(directory, "cpu.cfs_period_us"))
    if period is None or period <= 0:
        return None
    return quota / period


def _v1_mount(cgroup_root: str, controllers: tuple[str, ...], wanted: str) -> str | None:
    """The mount directory of a v1 hierarchy (``cpu,cpuacct``, ``cpu``, ``memory``, ...)."""
    candidates = [",".join(controllers), ",".join(sorted(controllers))]
    if wanted == "cpu":
        candidates += ["cpu,cpuacct", "cpuacct,cpu", "cpu"]
    else:
        candidates.append(wanted)
    for name in dict.fromkeys(candidates):
        directory = os.path.join(cgroup_root, name)
        if os.path.isdir(directory):
            return directory
    return None


def _v2_roots(cgroup_root: str) -> list[str]:
    """Where the unified hierarchy may be mounted: the root, or ``unified/`` (hybrid)."""
    roots = [cgroup_root]
    unified = os.path.join(cgroup_root, "unified")
    if os.path.isdir(unified):
        roots.append(unified)
    return roots


def _smallest_limit(
    cgroup_root: str,
    membership: _ProcCgroup,
    controller: str,
    v2_limit: Callable[[str], float | None],
    v1_limit: Callable[[str], float | None],
) -> float | None:
    """The smallest limit on this process's cgroup and its ancestors, in v2 and v1 trees.

    ``v2_limit(directory)`` and ``v1_limit(directory)`` read one cgroup directory's limit
    (None: no limit there).
    """
    limits: list[float | None] = []
    if membership.v2_path is not None:
        limits.extend(
            _smallest(v2_limit(d) for d in _up_to_root(root, membership.v2_path))
            for root in _v2_roots(cgroup_root)
        )
    found = membership.v1_path(controller)
    if found is not None:
        controllers, path = found
        mount = _v1_mount(cgroup_root, controllers, controller)
        if mount is not None:
            limits.append(_smallest(v1_limit(d) for d in _up_to_root(mount, path)))
    return _smallest(iter(limits))


def _cpu_quota(cgroup_root: str, membership: _ProcCgroup) -> float | None:
    """The smallest CPU quota (in CPUs) on this process's cgroup and its ancestors."""
    return _smallest_limit(
        cgroup_root,
        membership,
        "cpu",
        lambda d: _parse_cpu_max(_read(os.path.join(d, "cpu.max"))),
        _v1_quota,
    )


# --------------------------------------------------------------------------- memory limit


def _parse_memory_max(text: str | None) -> int | None:
    """Bytes allowed by a cgroup v2 ``memory.max`` (``"max"``: no limit)."""
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _v1_memory(directory: str) -> int | None:
    """Bytes allowed by a cgroup v1 ``memory.limit_in_bytes`` (huge values: no limit)."""
    value = _read_int(os.path.join(directory, "memory.limit_in_bytes"))
    if value is None or value <= 0 or value >= _V1_UNLIMITED_BYTES:
        return None
    return value


def _memory_max(cgroup_root: str, membership: _ProcCgroup) -> int | None:
    """The smallest memory limit (bytes) on this process's cgroup and its ancestors."""
    smallest = _smallest_limit(
        cgroup_root,
        membership,
        "memory",
        lambda d: _parse_memory_max(_read(os.path.join(d, "memory.max"))),
        _v1_memory,
    )
    return None if smallest is None else int(smallest)


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
    membership = _parse_proc_cgroup(_read(proc_self_cgroup))
    return _Probe(
        affinity=(affinity or _affinity_count)(),
        cgroup_version=membership.version,
        cpu_quota=_cpu_quota(cgroup_root, membership),
        memory_max=_memory_max(cgroup_root, membership),
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


# --------------------------------------------------------------------------- sizes

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
    "pi": 1024**5,
}
_AMBIGUOUS = {"k": "kB", "m": "MB", "g": "GB", "t": "TB", "p": "PB"}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*", re.ASCII | re.IGNORECASE)


def parse_size(value: int | str, *, minimum: int = 1) -> int:
    """A number of bytes from an int (>= ``minimum``, 1 unless told) or a string such as
    ``"1.5GiB"``.

    Binary units ``KiB MiB GiB TiB PiB`` (also ``Ki Mi Gi Ti Pi``) are powers of 1024;
    decimal units ``kB KB MB GB TB PB`` are powers of 1000; ``B`` or no unit means bytes.
    Units are case-insensitive and may be separated by spaces; a fractional result is
    rounded down to whole bytes. A bare ``K``/``M``/``G``/``T`` is refused as ambiguous.
    Anything else (below ``minimum``, negative, a bool, junk) raises :class:`ValueError`.
    """
    given: object = value  # checked at run time whatever the annotation says
    if isinstance(given, bool):
        raise ValueError(f"size must be a number of bytes or a string like '1.5GiB', got {given!r}")
    if isinstance(given, numbers.Integral):
        size = int(given)
        if size < minimum:
            what = "a positive number" if minimum == 1 else f"a number >= {minimum}"
            raise ValueError(f"size must be {what} of bytes, got {given!r}")
        return size
    if not isinstance(given, str):
        raise ValueError(
            "size must be a number of bytes or a string like '1.5GiB', "
            f"got {given!r} ({type(given).__name__})"
        )
    value = given
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise ValueError(
            f"cannot parse size {value!r}: expected a number with an optional unit, "
            "like '512MiB', '1.5GiB' or '2GB'"
        )
    number, unit = match.groups()
    unit_key = unit.lower()
    if unit_key in _AMBIGUOUS:
        raise ValueError(
            f"ambiguous size unit in {value!r}: write {_AMBIGUOUS[unit_key]!r} (powers of 1000) "
            f"or {unit_key.upper() + 'iB'!r} (powers of 1024)"
        )
    if unit_key not in _UNITS:
        raise ValueError(
            f"unknown size unit {unit!r} in {value!r}; "
            "use B, kB, MB, GB, TB, PB or KiB, MiB, GiB, TiB, PiB"
        )
    from fractions import Fraction  # here: importing it costs start-up time

    size = int(Fraction(number) * _UNITS[unit_key])  # exact, then rounded down
    if size < minimum:
        unit = "byte" if minimum == 1 else "bytes"
        raise ValueError(f"size must be at least {minimum} {unit}, got {value!r}")
    return size


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
