"""Map chunks without processes: how big they are, item ids, and records built on demand."""

from __future__ import annotations

import pickle
import threading
from array import array
from typing import Any

import pytest
from process_support import wait_for, wait_until

from osiiso_mp import TaskOptions, ValueReleasedError
from osiiso_mp._map_chunk import _PROGRESS, MapChunk
from osiiso_mp._results import ReleasedValue, raw_value
from osiiso_mp._runtime._chunk import _EAGER_BYTES, MAX_CHUNK, PREFIX_LEN, Chunk
from osiiso_mp._runtime._policy import CHUNK_MAX, CHUNK_UNKNOWN, chunk_size
from osiiso_mp._runtime._retention import StoredValue

# -- chunk_size ---------------------------------------------------------------------------


def test_unknown_duration_is_capped_and_spread_over_workers() -> None:
    assert chunk_size(total=200_000, procs=2, estimate=None) == CHUNK_UNKNOWN
    # 16 chunks per worker at least: 1,000 items on 2 workers -> 31 per chunk
    assert chunk_size(total=1_000, procs=2, estimate=None) == 31
    assert chunk_size(total=10, procs=16, estimate=None) == 1


def test_known_duration_fills_about_ten_milliseconds() -> None:
    assert chunk_size(total=10**6, procs=2, estimate=0.001) == 10
    assert chunk_size(total=10**6, procs=2, estimate=1e-5) == 1000
    assert chunk_size(total=10**7, procs=2, estimate=1e-9) == CHUNK_MAX
    assert chunk_size(total=10**6, procs=2, estimate=0.5) == 1  # long calls go one by one
    # 4 chunks per worker at least
    assert chunk_size(total=800, procs=2, estimate=1e-6) == 100


def test_streaming_window_bounds_the_chunk() -> None:
    assert chunk_size(total=None, procs=2, estimate=1e-6, window=64) == 8
    assert chunk_size(total=None, procs=2, estimate=None, window=10**6) == CHUNK_UNKNOWN
    assert chunk_size(total=None, procs=4, estimate=None, window=3) == 1


@pytest.mark.parametrize("total", [0, 1, 7, 10**9])
@pytest.mark.parametrize("estimate", [None, 0.0, 1e-6, 1.0, 1e6])
def test_always_between_one_and_the_maximum(total: int, estimate: float | None) -> None:
    size = chunk_size(total=total, procs=3, estimate=estimate)
    assert 1 <= size <= CHUNK_MAX <= MAX_CHUNK


# -- Chunk ----------------------------------------------------------------------------------


def _chunk(n: int) -> Chunk:
    return Chunk(
        prefix="0123456789abcdef0123456789ab",
        fn=abs,
        args=[(i,) for i in range(n)],
        name="abs",
        fn_name="abs",
        opts=TaskOptions(group_id="g", metadata={"k": 1}, priority=2),
        created_at=10.0,
    )


def _stored(values: list[Any], errors: dict[int, Any] | None = None) -> StoredValue:
    """A chunk's outcome as a worker sends it, received."""
    return StoredValue(pickle.dumps((values, errors or {}), protocol=5), ())


def _ran(chunk: Chunk, stored: StoredValue) -> None:
    n = chunk.n
    chunk.ran(
        stored,
        array("d", [float(i) for i in range(n + 1)]),
        array("d", [0.0] * n),
        worker=0,
        pid=1,
        peak_rss=0,
        rss_delta=0,
        queued_since=0.0,
    )
    chunk.settle(float(n))


def test_item_ids_are_the_prefix_and_a_four_digit_index() -> None:
    chunk = _chunk(300)
    ids = [chunk.item_id(i) for i in range(300)]
    assert len(set(ids)) == 300 and all(len(i) == 32 for i in ids)
    assert all(i[:PREFIX_LEN] == chunk.prefix for i in ids)
    assert [chunk.index_of(i) for i in ids] == list(range(300))
    assert chunk.index_of(chunk.prefix + "012c") is None  # 300: past the end
    assert chunk.index_of(chunk.prefix + "zzzz") is None
    assert chunk.index_of(chunk.prefix + "00001") is None
    assert chunk.index_of(chunk.prefix + "00A0") is None  # not the canonical spelling


def test_records_are_built_from_the_compact_outcome() -> None:
    chunk = _chunk(3)
    assert [chunk.record(i) for i in range(3)] == [None, None, None]  # none has ended
    clock = array("d", [20.0, 20.5, 21.0, 23.0])
    cpu = array("d", [0.25, 0.5, 1.5])
    chunk.ran(
        _stored([5, 6, 7]),
        clock,
        cpu,
        worker=1,
        pid=99,
        peak_rss=1000,
        rss_delta=300,
        queued_since=19.0,
    )
    assert all(chunk.record(i) is not None for i in range(3))
    chunk.settle(23.0)
    record = chunk.record(2)
    assert record is not None
    assert (record.task_id, record.value, record.status) == (chunk.item_id(2), 7, "succeeded")
    assert (record.started_at, record.finished_at, record.duration) == (21.0, 23.0, 2.0)
    assert (record.group_id, record.metadata, record.priority) == ("g", {"k": 1}, 2)
    (attempt,) = record.attempt_log
    assert attempt.queued_for == 2.0 and attempt.cpu_time == 1.5
    assert (attempt.worker, attempt.pid, attempt.peak_rss, attempt.rss_delta) == (1, 99, 1000, 100)
    assert chunk.record(2) == record and chunk.record(2) is not record  # built on demand
    assert [r.value for r in chunk.records()] == [5, 6, 7]
    assert chunk.records() == [chunk.record(i) for i in range(3)]  # one loop, same records
    # the arguments and the callable are let go once settled
    assert chunk.args is None and chunk.fn is None


def test_ending_all_items_at_once() -> None:
    chunk = _chunk(4)
    err = RuntimeError("refused")
    assert chunk.end_all("failed", exc=err, message="refused", attempts=(), finished_at=12.0) == 4
    chunk.settle(12.0)
    records = chunk.records()
    assert [r.status for r in records] == ["failed"] * 4
    assert all(r.exception is err and r.attempts == 0 for r in records)
    assert sum(r.status == "failed" for r in chunk.outcome.values()) == 4


def test_records_make_their_values_from_the_chunks_pickle_not_the_objects() -> None:
    # the chunk keeps the pickle the worker sent; each record built from it makes its
    # own object (the one handed out by map is the caller's)
    chunk = _chunk(2)
    _ran(chunk, _stored([{"a": 1}, {"b": 2}]))
    first, second = chunk.record(0), chunk.record(0)
    assert first is not None and second is not None
    assert first.value == {"a": 1} and first.value is first.value  # made once, then kept
    assert second.value == first.value and second.value is not first.value
    assert [r.value for r in chunk.records()] == [{"a": 1}, {"b": 2}]


def test_a_large_chunks_values_are_made_when_first_read() -> None:
    chunk = _chunk(2)
    big = [b"x" * _EAGER_BYTES, b"y"]
    _ran(chunk, _stored(big))
    records = chunk.records()
    assert not isinstance(raw_value(records[0]), bytes)  # not unpickled yet
    assert [r.value for r in records] == big
    small = _chunk(2)
    _ran(small, _stored([1, 2]))
    assert [raw_value(r) for r in small.records()] == [1, 2]  # a small pickle: at once


def test_released_values_read_as_released_and_the_records_stay() -> None:
    chunk = _chunk(3)
    _ran(chunk, _stored([1, None, 3], {1: "an error info"}))
    chunk.release(ReleasedValue(1024))
    assert chunk.stored == ReleasedValue(None)
    records = chunk.records()
    assert [r.status for r in records] == ["succeeded"] * 3 and records[0].attempts == 1
    with pytest.raises(ValueReleasedError, match="retain_bytes"):
        records[2].value  # noqa: B018
    record = chunk.record(0)
    assert record is not None and record.task_id == chunk.item_id(0)
    with pytest.raises(ValueReleasedError, match=chunk.item_id(0)):
        record.value  # noqa: B018


# -- a map's reader waits for its own chunk -----------------------------------------------


class _CountingChunk(MapChunk):
    """A ``MapChunk`` that counts how often its reader checks whether an item has ended:
    once on the way in, then once per wake-up."""

    checks = 0

    def _ended(self, i: int) -> bool:
        self.checks += 1
        return super()._ended(i)


def _plain_chunk(n: int = 4) -> Chunk:
    return Chunk(
        prefix="c" * PREFIX_LEN,
        fn=abs,
        args=[(i,) for i in range(n)],
        name="abs",
        fn_name="abs",
        opts=TaskOptions(),
        created_at=0.0,
    )


def test_a_reader_waiting_for_its_chunk_sleeps_while_other_chunks_settle() -> None:
    waited = _CountingChunk(None, _plain_chunk())  # type: ignore[arg-type]
    others = [MapChunk(None, _plain_chunk()) for _ in range(20)]  # type: ignore[arg-type]
    got: list[bool] = []
    reader = threading.Thread(target=lambda: got.append(waited._wait_item(0, 30.0)))
    reader.start()
    try:
        wait_until(lambda: waited.checks == 1, "the reader to wait")
        for other in others:  # the rest of the map settles while its reader waits
            other._settle_chunk()
        # each woke the reader, before (a check each): it must sleep on
        assert not wait_for(lambda: waited.checks > 1, 0.3)
        assert all(other.done() for other in others) and not got
    finally:
        waited._settle_chunk()
        reader.join(10.0)
    assert got == [True]
    assert waited.checks == 2  # woken once, by its own chunk


def test_a_chunk_that_advances_wakes_its_reader_for_the_items_that_ended() -> None:
    waited = MapChunk(None, _plain_chunk())  # type: ignore[arg-type]
    got: list[bool] = []
    reader = threading.Thread(target=lambda: got.append(waited._wait_item(1, 30.0)))
    reader.start()
    with _PROGRESS:
        waited._ready = 2  # as _advance sets it, then wakes
    waited._wake()
    reader.join(10.0)
    assert got == [True] and not waited.done()
