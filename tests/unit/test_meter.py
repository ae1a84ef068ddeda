"""The worker's Meter: snapshot() and measure() read the resident size as rss() does.

Both read /proc/self/statm through rss(): these tests pin that their resident sizes agree
with rss()'s, including where it gives 0 (no statm, or a statm that cannot be parsed), and
that a meter whose descriptor was closed behind its back (its number perhaps reused by
another file) opens its file again, leaving that other file alone.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from osiiso_mp._runtime.worker._telemetry import Meter

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")

PAGE = os.sysconf("SC_PAGE_SIZE")


@linux
def test_snapshot_and_measure_read_the_resident_size_as_rss_does() -> None:
    meter = Meter()
    before = meter.rss()
    start = meter.snapshot()
    after = meter.rss()
    assert before > 0 and start[3] > 0
    assert start[3] % PAGE == 0
    # nothing here allocates more than a few pages between the reads
    assert abs(start[3] - before) <= 64 * PAGE and abs(start[3] - after) <= 64 * PAGE
    _, cpu, peak, delta = meter.measure(start)
    end = meter.rss()
    assert cpu >= 0.0
    assert abs(start[3] + delta - end) <= 64 * PAGE
    assert peak >= max(start[3], start[3] + delta) or peak > start[2]


@linux
def test_measure_counts_what_an_attempt_made_resident() -> None:
    meter = Meter()
    start = meter.snapshot()
    # A mapping of its own, whose pages none of this process's earlier work made resident
    # (a bytearray may be served from freed heap memory that is resident still: in a long
    # test session it was, and its pages added nothing). Touch one byte in each page.
    block = mmap.mmap(-1, 64 << 20)
    try:
        for i in range(0, len(block), PAGE):
            block[i] = 1
        _, _, peak, delta = meter.measure(start)
    finally:
        block.close()
    # (should it fail: what the meter read, and whether its descriptor was still its own)
    seen = f"start {start}, delta {delta}, rss now {meter.rss()}, descriptor ours {meter._ours()}"
    assert delta >= (60 << 20), seen
    assert peak >= start[3] + (60 << 20), seen
    meter.close()


def test_without_statm_the_resident_size_is_zero(tmp_path: Path) -> None:
    meter = Meter(str(tmp_path / "no such file"))
    assert meter._statm is None
    start = meter.snapshot()
    assert start[3] == 0 and meter.rss() == 0
    finished_at, cpu, peak, delta = meter.measure(start)
    assert finished_at >= start[0] and cpu >= 0.0
    assert delta == 0
    assert peak == 0 or peak > start[2]  # only a risen high-water mark counts then


@contextmanager
def _meter_reading(path: Path, content: bytes) -> Iterator[Meter]:
    """A Meter that reads ``content``, written to ``path``, as its statm."""
    path.write_bytes(content)
    meter = Meter(str(path))
    try:
        yield meter
    finally:
        meter.close()


@pytest.mark.parametrize("content", [b"", b"12345", b"12 x 3\n"])
def test_an_unparsable_statm_reads_as_zero(tmp_path: Path, content: bytes) -> None:
    with _meter_reading(tmp_path / "statm", content) as meter:
        start = meter.snapshot()
        assert start[3] == 0 and meter.rss() == 0
        assert meter.measure(start)[3] == 0


def test_a_statm_of_known_content_is_parsed(tmp_path: Path) -> None:
    with _meter_reading(tmp_path / "statm", b"1000 250 30 4 0 60 0\n") as meter:
        start = meter.snapshot()
        assert start[3] == 250 * PAGE == meter.rss()
        _, _, _, delta = meter.measure(start)
        assert delta == 0


@linux
def test_a_meter_whose_descriptor_a_task_closed_opens_its_file_again() -> None:
    meter = Meter()
    assert meter._statm is not None
    os.close(meter._statm)  # a task's double close of its own, say
    assert meter.rss() > 0  # read again from a descriptor of its own
    assert meter._ours()
    start = meter.snapshot()
    assert start[3] > 0
    meter.close()


@linux
def test_a_meter_whose_descriptor_number_went_to_another_file_leaves_that_file_alone(
    tmp_path: Path,
) -> None:
    meter = Meter()
    assert meter._statm is not None
    number = meter._statm
    os.close(number)
    other = tmp_path / "other"
    other.write_bytes(b"not a statm at all\n")
    fd = os.open(other, os.O_RDONLY)  # takes the lowest free number: the meter's old one
    try:
        assert fd == number
        assert meter.rss() > 0 and meter._statm != number
        assert os.pread(fd, 64, 0) == b"not a statm at all\n"  # still open, untouched
        meter.close()
        assert os.pread(fd, 64, 0) == b"not a statm at all\n"  # close() left it alone too
    finally:
        os.close(fd)


def test_an_unparsable_statm_is_not_opened_again_and_again(tmp_path: Path) -> None:
    with _meter_reading(tmp_path / "statm", b"12345") as meter:
        fd = meter._statm
        for _ in range(5):
            assert meter.rss() == 0
        assert meter._statm == fd  # still its own descriptor: nothing opened, nothing leaked
