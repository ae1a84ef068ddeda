"""Whose clock a worker's readings are on (:mod:`osiiso_mp._runtime._clock`): pure."""

from __future__ import annotations

import re
import sys

import pytest

from osiiso_mp._runtime._clock import SHARED_WITHIN, boot_id, clock_offset

OURS = "904d64bb-e57b-4e35-b07e-63241fa0c147"


def test_a_reading_of_this_kernel_just_behind_ours_is_ours() -> None:
    assert clock_offset(OURS, OURS, now=100.0, their_clock=99.95) == 0.0
    assert clock_offset(OURS, OURS, now=100.0, their_clock=100.0) == 0.0


@pytest.mark.parametrize(
    ("theirs", "their_clock", "why"),
    [
        (OURS, 100.0 - SHARED_WITHIN, "this kernel, but too far behind: another namespace"),
        (OURS, 100.5, "this kernel, but ahead of ours: not the same clock"),
        (OURS, 5.0, "this kernel, days apart"),
        ("0d1e2f30-0000-4000-8000-000000000000", 99.95, "another kernel, however close"),
        ("", 99.95, "a worker that cannot say"),
    ],
)
def test_any_other_reading_is_mapped_by_the_difference(
    theirs: str, their_clock: float, why: str
) -> None:
    assert clock_offset(OURS, theirs, now=100.0, their_clock=their_clock) == 100.0 - their_clock


def test_without_a_boot_id_of_our_own_every_worker_is_mapped() -> None:
    assert clock_offset("", "", now=100.0, their_clock=99.95) == pytest.approx(0.05)


@pytest.mark.skipif(sys.platform != "linux", reason="the boot id is Linux's")
def test_the_boot_id_is_the_kernels() -> None:
    ours = boot_id()
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", ours)
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert f.read().strip() == ours
