"""A streamed map holds bounded memory, whatever its length, with ``result_ttl=0``.

``map(..., buffersize=N)`` keeps at most N tasks in flight. What finished is kept for
``result_ttl`` seconds (lookups by id, and the batch of a ``run()`` that may never come);
with ``result_ttl=0`` nothing is kept past the batch's pruning, which happens every 10,000
tasks, so the parent's memory stops growing. (With the default ``result_ttl=300`` it grows
with the number of items finished in the last 300 s: ~2.7 kB each.)
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from osiiso_mp import Executor

pytestmark = pytest.mark.timeout(120)


def test_a_streamed_map_holds_bounded_memory_with_result_ttl_0() -> None:
    n = 36_000
    window = 12_000  # longer than one pruning cycle (10,000 tasks)
    peaks: list[int] = []
    tracemalloc.start()
    try:
        with Executor(procs=2, result_ttl=0) as ex:
            for i, value in enumerate(ex.map(abs, range(-n, 0), buffersize=256)):
                assert value == n - i
                if (i + 1) % window == 0:
                    gc.collect()
                    peaks.append(tracemalloc.get_traced_memory()[1])
                    tracemalloc.reset_peak()
    finally:
        tracemalloc.stop()
    first, _, last = peaks
    # each window holds at most one pruning cycle of finished futures: the last window
    # peaks no higher than the first, where linear growth would add ~60 MB by then
    assert last < first + 5_000_000, peaks
    assert max(peaks) < 60_000_000, peaks
