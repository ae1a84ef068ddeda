"""What the cgroups this process belongs to allow it: a CPU quota and a memory limit.

This process's membership comes from ``/proc/self/cgroup``; the limits are read from the
cgroup v2 files (``cpu.max``, ``memory.max``) and the cgroup v1 ones
(``cpu.cfs_quota_us / cpu.cfs_period_us``, ``memory.limit_in_bytes``) of its cgroup and of
every ancestor, and the smallest one counts. A file that cannot be read or parsed counts as
"no limit". Every path is a parameter, so that tests can point the functions at fake
cgroup trees. :mod:`._resources` turns these into :func:`~._resources.cpu_budget`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["ProcCgroup", "cpu_quota", "memory_max", "read_membership"]

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
class ProcCgroup:
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


def _parse_proc_cgroup(text: str | None) -> ProcCgroup:
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
    return ProcCgroup(v2_path, tuple(v1))


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


def read_membership(proc_self_cgroup: str = "/proc/self/cgroup") -> ProcCgroup:
    """This process's cgroups, from ``proc_self_cgroup`` (none when it cannot be read)."""
    return _parse_proc_cgroup(_read(proc_self_cgroup))


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
    membership: ProcCgroup,
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


def cpu_quota(cgroup_root: str, membership: ProcCgroup) -> float | None:
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


def memory_max(cgroup_root: str, membership: ProcCgroup) -> int | None:
    """The smallest memory limit (bytes) on this process's cgroup and its ancestors."""
    smallest = _smallest_limit(
        cgroup_root,
        membership,
        "memory",
        lambda d: _parse_memory_max(_read(os.path.join(d, "memory.max"))),
        _v1_memory,
    )
    return None if smallest is None else int(smallest)
