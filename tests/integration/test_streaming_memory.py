"""A streamed map holds bounded memory, whatever its length, with ``result_ttl=0``.

``map(..., buffersize=N)`` keeps at most N elements in flight. What finished is kept for
``result_ttl`` seconds (lookups by id, and the batch of a ``run()`` that may never come);
with ``result_ttl=0`` nothing is kept past the batch's pruning, which happens every 10,000
tasks (a chunk counts its elements), so the parent's memory stops growing. (With the
default ``result_ttl=300`` it grows with the number of elements finished in the last 300 s:
tens of bytes each in chunks, ~2.7 kB each sent one by one.)
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from osiiso_mp import Executor

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("n", "buffersize", "chunksize"),
    [
        # chunks: ~60 bytes kept per finished item, so enough items for linear growth to
        # show (~15 MB over the last two windows)
        (300_000, 4096, None),
        # one task per element: ~2.7 kB kept per finished task (~60 MB over two windows)
        (36_000, 256, 1),
    ],
)
def test_a_streamed_map_holds_bounded_memory_with_result_ttl_0(
    n: int, buffersize: int, chunksize: int | None
) -> None:
    window = n // 3  # longer than one pruning cycle (10,000 tasks)
    peaks: list[int] = []
    tracemalloc.start()
    try:
        with Executor(procs=2, result_ttl=0) as ex:
            values = ex.map(abs, range(-n, 0), buffersize=buffersize, chunksize=chunksize)
            for i, value in enumerate(values):
                assert value == n - i
                if (i + 1) % window == 0:
                    gc.collect()
                    peaks.append(tracemalloc.get_traced_memory()[1])
                    tracemalloc.reset_peak()
    finally:
        tracemalloc.stop()
    first, _, last = peaks
    # each window holds at most one pruning cycle of what finished: the last window peaks
    # no higher than the first, where linear growth would have added 15 MB or more
    assert last < first + 5_000_000, peaks
    assert max(peaks) < 60_000_000, peaks
