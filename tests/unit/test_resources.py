"""cpu_budget / cgroup_limits over fake cgroup trees, and parse_size."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from osiiso_mp._resources import ENV_MAX_CPUS, cgroup_limits, cpu_budget
from osiiso_mp._sizes import parse_size


class FakeCgroups:
    """A fake ``/sys/fs/cgroup`` plus ``/proc/self/cgroup`` under a temporary directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "sys-fs-cgroup"
        self.root.mkdir()
        self.proc = tmp_path / "proc-self-cgroup"

    def membership(self, *lines: str) -> None:
        self.proc.write_text("".join(line + "\n" for line in lines))

    def write(self, relpath: str, text: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")

    def budget(self, affinity: int = 64, env: dict[str, str] | None = None) -> int:
        return cpu_budget(
            env={} if env is None else env,
            cgroup_root=str(self.root),
            proc_self_cgroup=str(self.proc),
            affinity=lambda: affinity,
        )

    def limits(self, affinity: int = 64, env: dict[str, str] | None = None) -> dict[str, Any]:
        return cgroup_limits(
            env={} if env is None else env,
            cgroup_root=str(self.root),
            proc_self_cgroup=str(self.proc),
            affinity=lambda: affinity,
        )


@pytest.fixture
def cg(tmp_path: Path) -> FakeCgroups:
    return FakeCgroups(tmp_path)


# --------------------------------------------------------------------------- affinity


def test_no_cgroups_at_all_uses_affinity(cg: FakeCgroups) -> None:
    # /proc/self/cgroup missing entirely
    assert cg.budget(affinity=7) == 7
    limits = cg.limits(affinity=7)
    assert limits["cgroup_version"] is None
    assert limits["cpu_quota"] is None
    assert limits["memory_max"] is None


def test_affinity_is_at_least_one(cg: FakeCgroups) -> None:
    assert cg.budget(affinity=0) == 1


def test_default_affinity_reads_the_real_mask(tmp_path: Path) -> None:
    budget = cpu_budget(
        env={}, cgroup_root=str(tmp_path / "none"), proc_self_cgroup=str(tmp_path / "none")
    )
    if hasattr(os, "sched_getaffinity"):
        assert budget == len(os.sched_getaffinity(0))
    else:
        assert budget == (os.cpu_count() or 1)


def test_real_machine_smoke() -> None:
    limits = cgroup_limits()
    assert isinstance(limits["cpu_budget"], int) and limits["cpu_budget"] >= 1
    assert limits["cpu_budget"] == cpu_budget()
    assert set(limits) == {
        "cpu_count",
        "affinity",
        "cgroup_version",
        "cpu_quota",
        "memory_max",
        "env_max_cpus",
        "cpu_budget",
    }


# --------------------------------------------------------------------------- cgroup v2


def test_v2_quota_rounds_up(cg: FakeCgroups) -> None:
    cg.membership("0::/app.slice/job")
    cg.write("app.slice/job/cpu.max", "150000 100000")
    assert cg.budget() == 2
    limits = cg.limits()
    assert limits["cgroup_version"] == 2
    assert limits["cpu_quota"] == 1.5


def test_v2_max_is_unlimited(cg: FakeCgroups) -> None:
    cg.membership("0::/app.slice/job")
    cg.write("app.slice/job/cpu.max", "max 100000")
    assert cg.budget(affinity=12) == 12
    assert cg.limits()["cpu_quota"] is None


def test_v2_smallest_quota_on_the_path_wins(cg: FakeCgroups) -> None:
    cg.membership("0::/outer/middle/inner")
    cg.write("cpu.max", "max 100000")
    cg.write("outer/cpu.max", "300000 100000")  # 3 CPUs
    cg.write("outer/middle/cpu.max", "50000 20000")  # 2.5 CPUs -> 3
    cg.write("outer/middle/inner/cpu.max", "max 100000")
    cg.write("outer/sibling/cpu.max", "100000 100000")  # not an ancestor: ignored
    assert cg.limits()["cpu_quota"] == 2.5
    assert cg.budget() == 3


def test_v2_parent_limit_applies_to_unlimited_child(cg: FakeCgroups) -> None:
    cg.membership("0::/a/b")
    cg.write("a/cpu.max", "200000 100000")
    cg.write("a/b/cpu.max", "max")
    assert cg.budget() == 2


def test_v2_affinity_smaller_than_quota(cg: FakeCgroups) -> None:
    cg.membership("0::/a")
    cg.write("a/cpu.max", "800000 100000")
    assert cg.budget(affinity=3) == 3


def test_v2_fractional_quota_below_one_gives_one(cg: FakeCgroups) -> None:
    cg.membership("0::/a")
    cg.write("a/cpu.max", "10000 100000")
    assert cg.budget() == 1


def test_v2_container_view_reads_the_mount_root(cg: FakeCgroups) -> None:
    # Without a cgroup namespace the path names a host cgroup that is not visible under
    # the container's mount; the limit sits on the mount's root.
    cg.membership("0::/docker/0123abcd")
    cg.write("cpu.max", "400000 100000")
    assert cg.budget() == 4


def test_v2_root_path(cg: FakeCgroups) -> None:
    cg.membership("0::/")
    cg.write("cpu.max", "100000 50000")
    assert cg.budget() == 2


@pytest.mark.parametrize(
    "content",
    ["", "garbage", "100000 abc", "-1 100000", "0 100000", "100000 0", "1 2 3"],
)
def test_v2_unparseable_cpu_max_is_ignored(cg: FakeCgroups, content: str) -> None:
    cg.membership("0::/a")
    cg.write("a/cpu.max", content)
    assert cg.budget(affinity=5) == 5


def test_v2_unreadable_file_is_ignored(cg: FakeCgroups) -> None:
    cg.membership("0::/a")
    (cg.root / "a" / "cpu.max").mkdir(parents=True)  # a directory: open() fails
    cg.write("cpu.max", "200000 100000")
    assert cg.budget() == 2


def test_v2_path_cannot_climb_out_of_the_root(cg: FakeCgroups, tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # outside the cgroup root
    cg.membership("0::/../..")
    assert cg.budget(affinity=4) == 4


def test_v2_memory_max(cg: FakeCgroups) -> None:
    cg.membership("0::/a/b")
    cg.write("a/memory.max", str(2 * 1024**3))
    cg.write("a/b/memory.max", "max")
    assert cg.limits()["memory_max"] == 2 * 1024**3


def test_v2_hybrid_unified_mount(cg: FakeCgroups) -> None:
    cg.membership("1:name=systemd:/", "0::/svc")
    cg.write("unified/svc/cpu.max", "300000 100000")
    limits = cg.limits()
    assert limits["cgroup_version"] == "hybrid"
    assert limits["cpu_budget"] == 3


# --------------------------------------------------------------------------- cgroup v1


def test_v1_cpu_cpuacct(cg: FakeCgroups) -> None:
    cg.membership("4:cpu,cpuacct:/kubepods/pod1", "3:memory:/kubepods/pod1")
    cg.write("cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us", "250000")
    cg.write("cpu,cpuacct/kubepods/pod1/cpu.cfs_period_us", "100000")
    assert cg.budget() == 3
    limits = cg.limits()
    assert limits["cgroup_version"] == 1
    assert limits["cpu_quota"] == 2.5


def test_v1_unlimited(cg: FakeCgroups) -> None:
    cg.membership("4:cpu,cpuacct:/a")
    cg.write("cpu,cpuacct/a/cpu.cfs_quota_us", "-1")
    cg.write("cpu,cpuacct/a/cpu.cfs_period_us", "100000")
    assert cg.budget(affinity=9) == 9


def test_v1_separate_cpu_mount(cg: FakeCgroups) -> None:
    # controllers listed as "cpuacct,cpu" but mounted as plain "cpu"
    cg.membership("2:cpuacct,cpu:/a")
    cg.write("cpu/a/cpu.cfs_quota_us", "200000")
    cg.write("cpu/a/cpu.cfs_period_us", "100000")
    assert cg.budget() == 2


def test_v1_falls_back_to_the_mount_root(cg: FakeCgroups) -> None:
    cg.membership("4:cpu,cpuacct:/docker/abcdef")
    cg.write("cpu,cpuacct/cpu.cfs_quota_us", "100000")
    cg.write("cpu,cpuacct/cpu.cfs_period_us", "100000")
    assert cg.budget() == 1


def test_v1_smallest_on_the_path(cg: FakeCgroups) -> None:
    cg.membership("4:cpu,cpuacct:/a/b")
    cg.write("cpu,cpuacct/a/cpu.cfs_quota_us", "300000")
    cg.write("cpu,cpuacct/a/cpu.cfs_period_us", "100000")
    cg.write("cpu,cpuacct/a/b/cpu.cfs_quota_us", "-1")
    cg.write("cpu,cpuacct/a/b/cpu.cfs_period_us", "100000")
    assert cg.budget() == 3


@pytest.mark.parametrize(("quota", "period"), [("junk", "100000"), ("200000", "0"), ("200000", "")])
def test_v1_bad_files_are_ignored(cg: FakeCgroups, quota: str, period: str) -> None:
    cg.membership("4:cpu,cpuacct:/a")
    cg.write("cpu,cpuacct/a/cpu.cfs_quota_us", quota)
    cg.write("cpu,cpuacct/a/cpu.cfs_period_us", period)
    assert cg.budget(affinity=6) == 6


def test_v1_memory_limit(cg: FakeCgroups) -> None:
    cg.membership("4:memory:/a")
    cg.write("memory/a/memory.limit_in_bytes", str(512 * 1024**2))
    assert cg.limits()["memory_max"] == 512 * 1024**2


def test_v1_memory_unlimited_sentinel(cg: FakeCgroups) -> None:
    cg.membership("4:memory:/a")
    cg.write("memory/a/memory.limit_in_bytes", "9223372036854771712")
    assert cg.limits()["memory_max"] is None


def test_hybrid_takes_the_smallest_of_both(cg: FakeCgroups) -> None:
    cg.membership("4:cpu,cpuacct:/a", "0::/a")
    cg.write("cpu,cpuacct/a/cpu.cfs_quota_us", "500000")
    cg.write("cpu,cpuacct/a/cpu.cfs_period_us", "100000")
    cg.write("unified/a/cpu.max", "200000 100000")
    assert cg.budget() == 2


def test_garbage_proc_self_cgroup(cg: FakeCgroups) -> None:
    cg.proc.write_text("not a cgroup file\n::\n1:cpu:relative\n")
    assert cg.budget(affinity=3) == 3
    assert cg.limits()["cgroup_version"] is None


# --------------------------------------------------------------------------- environment


def test_env_override_caps(cg: FakeCgroups) -> None:
    assert cg.budget(affinity=16, env={ENV_MAX_CPUS: "4"}) == 4
    assert cg.limits(affinity=16, env={ENV_MAX_CPUS: " 4 "})["env_max_cpus"] == 4


def test_env_override_cannot_raise_the_budget(cg: FakeCgroups) -> None:
    cg.membership("0::/a")
    cg.write("a/cpu.max", "200000 100000")
    assert cg.budget(affinity=16, env={ENV_MAX_CPUS: "8"}) == 2
    assert cg.budget(affinity=1, env={ENV_MAX_CPUS: "8"}) == 1


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5", "  "])
def test_env_override_invalid_is_ignored(
    cg: FakeCgroups, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="osiiso_mp"):
        assert cg.budget(affinity=5, env={ENV_MAX_CPUS: value}) == 5
    if value.strip():
        assert ENV_MAX_CPUS in caplog.text
    assert cg.limits(affinity=5, env={ENV_MAX_CPUS: value})["env_max_cpus"] is None


def test_env_defaults_to_os_environ(cg: FakeCgroups, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MAX_CPUS, "2")
    budget = cpu_budget(
        cgroup_root=str(cg.root), proc_self_cgroup=str(cg.proc), affinity=lambda: 10
    )
    assert budget == 2


# --------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1, 1),
        (4096, 4096),
        ("1024", 1024),
        ("1B", 1),
        ("100kB", 100_000),
        ("100KB", 100_000),
        ("2GB", 2_000_000_000),
        ("2gb", 2_000_000_000),
        ("3MB", 3_000_000),
        ("1TB", 10**12),
        ("1KiB", 1024),
        ("512MiB", 512 * 1024**2),
        ("512mib", 512 * 1024**2),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("1.5 GiB", 3 * 1024**3 // 2),
        ("  2 TiB  ", 2 * 1024**4),
        ("1Gi", 1024**3),
        ("0.5KiB", 512),
        (".5KiB", 512),
        ("0.1KB", 100),
        ("1.1KiB", 1126),  # 1126.4 bytes, rounded down
        ("1PiB", 1024**5),
    ],
)
def test_parse_size(text: int | str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "positive"),
        (-1, "positive"),
        ("0", "at least 1 byte"),
        ("0.1B", "at least 1 byte"),
        ("-1GiB", "cannot parse size"),
        ("", "cannot parse size"),
        ("GiB", "cannot parse size"),
        ("1.5.2GiB", "cannot parse size"),
        ("12 34", "cannot parse size"),
        ("1e9", "cannot parse size"),
        ("5 bananas", "unknown size unit"),
        ("1G", "ambiguous"),
        ("1k", "ambiguous"),
        ("\uff11GiB", "cannot parse size"),  # full-width digit one
        (True, "size must be"),
        (False, "size must be"),
        (1.5, "size must be"),
        (None, "size must be"),
    ],
)
def test_parse_size_rejects(value: Any, text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(value)
    assert text in str(info.value)


def test_parse_size_ambiguous_message_suggests_both() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("2G")
    assert "'GB'" in str(info.value) and "'GiB'" in str(info.value)
