"""The worker's Meter: snapshot() and measure() read the resident size as rss() does.

Both read /proc/self/statm through rss(): these tests pin that their resident sizes agree
with rss()'s, including where it gives 0 (no statm, or a statm that cannot be parsed).
"""

from __future__ import annotations

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
    block = bytearray(64 << 20)  # zero pages: touch one byte in each to make them resident
    for i in range(0, len(block), PAGE):
        block[i] = 1
    _, _, peak, delta = meter.measure(start)
    assert delta >= (60 << 20)
    assert peak >= start[3] + (60 << 20)
    del block


def test_without_statm_the_resident_size_is_zero() -> None:
    meter = Meter()
    if meter._statm is not None:
        os.close(meter._statm)
    meter._statm = None
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
    meter = Meter()
    if meter._statm is not None:
        os.close(meter._statm)
    meter._statm = os.open(path, os.O_RDONLY)
    try:
        yield meter
    finally:
        os.close(meter._statm)


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
