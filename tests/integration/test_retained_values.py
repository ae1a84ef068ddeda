"""What the executor keeps of the values it hands out, with real workers (issue 17).

A value handed to the caller (from ``map``, or from ``fut.result()`` of a future the caller
then drops) is the caller's: once the caller drops it, nothing of the executor's holds it,
which a weak reference shows. ``run()`` and lookups by id still give every value, made
again from the serialized form the executor keeps; a future the caller keeps gives the same
object every time. What is kept has a memory budget, ``retain_bytes``: past it the oldest
values are released, their records stay, and reading one raises ``ValueReleasedError``
naming the option.
"""

from __future__ import annotations

import asyncio
import gc
import pickle
import weakref
from typing import Any

import numpy as np
import pytest

from osiiso_mp import AsyncExecutor, Executor, TaskResult, ValueReleasedError

pytestmark = pytest.mark.timeout(120)


class Payload:
    """A value that can be watched with a weak reference (workers import this module)."""

    def __init__(self, n: int, size: int = 0) -> None:
        self.n = n
        self.blob = bytes(size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and (other.n, other.blob) == (self.n, self.blob)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Payload({self.n}, {len(self.blob)})"


def payload(n: int, size: int = 0) -> Payload:
    return Payload(n, size)


def array(n: int, size: int) -> Any:
    """A float64 array of ``size`` bytes, every element ``n``."""
    return np.full(size // 8, float(n))


def blob(n: int, size: int) -> bytes:
    return n.to_bytes(2, "big") * (size // 2)


def _collected(refs: list[weakref.ref[Any]]) -> bool:
    """Are the objects of ``refs`` all gone, once the cyclic collector has run? (It runs
    only when one is still there: in a long test session a full collection takes 0.1 s.)"""
    if all(ref() is None for ref in refs):
        return True
    gc.collect()
    return all(ref() is None for ref in refs)


def _values_of(records: tuple[TaskResult, ...]) -> list[Any]:
    return [r.value for r in records]


# --------------------------------------------------------------------------- handed out


@pytest.mark.parametrize("chunksize", [None, 1], ids=["chunks", "one-by-one"])
def test_a_value_map_hands_out_is_freed_once_dropped_and_run_still_returns_it(
    start_method: str, chunksize: int | None
) -> None:
    with Executor(procs=2, start_method=start_method) as ex:
        refs: list[weakref.ref[Any]] = []
        for out in ex.map(payload, range(40), chunksize=chunksize):  # (enumerate would
            assert out == Payload(len(refs))  # keep the last value in its result tuple)
            refs.append(weakref.ref(out))
            del out
            assert _collected(refs[-1:]), f"value {len(refs)} is held while the map goes on"
        assert len(refs) == 40 and _collected(refs)
        summary = ex.run()
    assert summary.ok and summary.values == tuple(Payload(i) for i in range(40))
    assert _values_of(summary.results) == [Payload(i) for i in range(40)]
    assert all(r.value is r.value for r in summary.results)  # made once, then kept


def test_a_value_read_from_a_dropped_future_is_freed(launch: dict[str, Any]) -> None:
    with Executor(procs=2, **launch) as ex:
        futures = [ex.submit(payload, i, 1000) for i in range(10)]
        ids = [f.task_id for f in futures]
        refs = [weakref.ref(f.result(timeout=60)) for f in futures]
        assert not _collected(refs)  # the futures hold them
        del futures
        assert _collected(refs)
        summary = ex.run()
        assert summary.values == tuple(Payload(i, 1000) for i in range(10))
        assert [r.task_id for r in summary.results] == ids
        found = ex.task_result(ids[3])
        assert isinstance(found, TaskResult) and found.value == Payload(3, 1000)
        assert found.value is found.value
        again = ex.task_result(ids[3])
        assert again == found and again is not None and again.value == found.value


def test_large_arrays_are_freed_once_dropped_and_made_again_for_run(start_method: str) -> None:
    # 2 MiB arrays come back in shared memory, mapped without a copy: what the executor
    # keeps is that mapping, not the array the caller was given
    size = 2 << 20
    with Executor(procs=2, start_method=start_method) as ex:
        refs: list[weakref.ref[Any]] = []
        for out in ex.map(array, range(6), [size] * 6):
            assert out.nbytes == size and out[0] == len(refs)
            refs.append(weakref.ref(out))
        fut = ex.submit(array, 9, size)
        refs.append(weakref.ref(fut.result(timeout=60)))
        del out, fut
        assert _collected(refs)
        summary = ex.run()
    assert len(summary.values) == 7
    for i, value in zip([0, 1, 2, 3, 4, 5, 9], summary.values, strict=True):
        assert isinstance(value, np.ndarray) and value.nbytes == size
        assert np.array_equal(value, np.full(size // 8, float(i)))


def test_a_kept_future_gives_the_same_object_every_time(launch: dict[str, Any]) -> None:
    with Executor(procs=1, **launch) as ex:
        fut = ex.submit(payload, 5)
        value = fut.result(timeout=60)
        assert fut.result() is value and fut.result() is value
        record = fut.task_result()
        assert record is not None and record.value is value
        summary = ex.run()
        # while the caller holds the future, its record is the one found everywhere
        assert summary.results[0] is record and summary.values[0] is value
        assert ex.task_result(fut.task_id) is record
        assert fut.task_result() is record and record.value is value
        del value, record, summary
        found = ex.task_result(fut.task_id)
        assert found is fut.task_result() and found is not None
        fut_id = fut.task_id
        del fut, found
        found = ex.task_result(fut_id)  # the future is gone: a copy, made from what is kept
        assert found is not None and found.value == Payload(5) and found.value is found.value
        # a scalar, a failure: the record is the future's own wherever it is found
        small = ex.submit(abs, -7)
        assert small.result(timeout=60) == 7
        assert ex.task_result(small.task_id) is small.task_result()
        assert ex.run().results[0] is small.task_result()


def test_async_map_lets_go_of_what_it_yields(start_method: str) -> None:
    async def main() -> tuple[list[weakref.ref[Any]], list[bool]]:
        refs: list[weakref.ref[Any]] = []
        freed: list[bool] = []
        async with AsyncExecutor(procs=2, start_method=start_method) as ex:
            async for out in ex.map(payload, range(20)):
                refs.append(weakref.ref(out))
                del out
                freed.append(_collected(refs[-1:]))
            summary = await ex.run()
            assert summary.values == tuple(Payload(i) for i in range(20))
        return refs, freed

    refs, freed = asyncio.run(main())
    assert len(refs) == 20 and all(freed)


def _live_payloads() -> list[Payload]:
    gc.collect()
    return [o for o in gc.get_objects() if type(o) is Payload]


def test_a_map_left_early_lets_go_of_what_it_did_not_read() -> None:
    with Executor(procs=2) as ex:
        values = ex.map(payload, range(200), [1000] * 200, chunksize=10)
        first = next(values)
        assert first == Payload(0, 1000)
        ex.shutdown()  # every item has finished: their values wait for the map's reader
        assert len(_live_payloads()) == 200
        values.close()
        assert _live_payloads() == [first]
        del first
        assert _live_payloads() == []
        summary = ex.run()  # the batch kept its own, serialized, copy
    assert summary.values == tuple(Payload(i, 1000) for i in range(200))


def test_a_map_never_read_lets_go_of_its_values_when_dropped() -> None:
    with Executor(procs=2) as ex:
        values = ex.map(payload, range(100), chunksize=10)
        ex.shutdown()  # finished, none read; the batch holds the chunks until run()
        assert len(_live_payloads()) == 100
        del values
        assert _live_payloads() == []
        summary = ex.run()
    assert summary.values == tuple(Payload(i) for i in range(100))


# --------------------------------------------------------------------------- the budget


def _pickled_size(value: Any) -> int:
    return len(pickle.dumps(value, protocol=5))


def test_past_retain_bytes_the_oldest_values_are_released_and_their_records_stay(
    transport: str,
) -> None:
    size = 10_000
    each = _pickled_size(blob(0, size))  # how the budget counts one (in the pickle)
    with Executor(procs=1, retain_bytes=3 * each + each // 2, transport=transport) as ex:
        futures = []
        for i in range(8):  # one at a time: finish order is submission order
            futures.append(ex.submit(blob, i, size))
            futures[-1].result(timeout=60)
        # the caller's own values are never released: a future still has its value
        assert [f.result() for f in futures] == [blob(i, size) for i in range(8)]
        ids = [f.task_id for f in futures]
        del futures
        summary = ex.run()
        found = ex.task_result(ids[0])
    assert summary.succeeded == 8 and summary.ok and [r.task_id for r in summary.results] == ids
    readable = []
    for i, record in enumerate(summary.results):
        assert record.status == "succeeded" and record.attempts == 1
        assert len(record.attempt_log) == 1 and record.duration >= 0
        try:
            readable.append(record.value == blob(i, size))
        except ValueReleasedError as exc:
            assert "retain_bytes" in str(exc) and ids[i] in str(exc)
            readable.append(False)
    assert readable == [False] * 5 + [True] * 3  # the oldest went first
    with pytest.raises(ValueReleasedError, match="retain_bytes"):
        summary.values  # noqa: B018
    assert found is not None and found.status == "succeeded"
    with pytest.raises(ValueReleasedError, match=r"raise retain_bytes"):
        found.value  # noqa: B018
    # the rest of a summary reads as before
    assert "<value released under retain_bytes>" in repr(summary.results[0])
    assert summary.to_dict()["results"][0]["value_repr"] == "<value released under retain_bytes>"
    assert summary.report().splitlines()[1] == "  Run Summary: PASSED"
    assert pickle.loads(pickle.dumps(summary)) == summary


@pytest.mark.parametrize("retain_bytes", [0, 1])
def test_a_budget_of_nothing_keeps_every_record_and_no_value(
    retain_bytes: int, launch: dict[str, Any]
) -> None:
    with Executor(procs=2, retain_bytes=retain_bytes, **launch) as ex:
        assert list(ex.map(payload, range(30))) == [Payload(i) for i in range(30)]
        single = ex.submit(abs, -4)
        scalar_id = single.task_id
        assert single.result(timeout=60) == 4
        del single
        summary = ex.run()
        found = ex.task_result(scalar_id)
    assert summary.total_submitted == summary.succeeded == 31
    assert found is not None and found.status == "succeeded"
    for record in (*summary.results, found):
        with pytest.raises(ValueReleasedError, match=f"{record.task_id}.*retain_bytes"):
            record.value  # noqa: B018
    assert len({r.task_id for r in summary.results}) == 31


def test_map_chunks_are_released_whole_oldest_first(transport: str) -> None:
    with Executor(procs=1, retain_bytes=3_000, transport=transport) as ex:
        # chunks of 10 items, about 1,000 bytes pickled each, one chunk at a time
        for start in range(0, 50, 10):
            assert list(ex.map(payload, range(start, start + 10), [60] * 10, chunksize=10))
        summary = ex.run()
    kept = []
    for record in summary.results:
        try:
            kept.append(record.value is not None)
        except ValueReleasedError:
            kept.append(False)
    assert kept.count(False) % 10 == 0 and 0 < kept.count(False) < 50
    assert kept == sorted(kept)  # released from the front, a whole chunk at a time
    kept_values = [r.value for r in summary.results[kept.index(True) :]]
    assert kept_values == [Payload(i, 60) for i in range(kept.index(True), 50)]


def test_a_summary_is_the_callers_and_values_run_took_over_leave_the_budget() -> None:
    size = 10_000
    each = _pickled_size(blob(0, size))
    with Executor(procs=1, retain_bytes=2 * each + each // 2, result_ttl=0) as ex:
        for i in range(2):
            ex.submit(blob, i, size).result(timeout=60)
        first = ex.run()  # the batch is the summary's now; nothing else keeps them
        for i in range(2, 4):
            ex.submit(blob, i, size).result(timeout=60)
        second = ex.run()
        budget = ex._core.sup.call(
            lambda: (ex._core.sup.ledger.budget.total, ex._core.sup.ledger.budget.released)
        )
    assert first.values == (blob(0, size), blob(1, size))
    assert second.values == (blob(2, size), blob(3, size))
    assert budget == (0, 0)  # nothing kept, nothing was released


def test_a_pipeline_that_never_calls_run_keeps_its_values_within_the_budget() -> None:
    size = 50_000
    limit = 20 * _pickled_size(blob(0, size))
    with Executor(procs=2, retain_bytes=limit) as ex:
        count = 0
        for out in ex.map(blob, range(400), [size] * 400):
            count += len(out) == size
        sup = ex._core.sup
        total, released = sup.call(lambda: (sup.ledger.budget.total, sup.ledger.budget.released))
        assert count == 400
        assert 0 < total <= limit and released > 0
        records = ex.run().results
    assert len(records) == 400 and all(r.status == "succeeded" for r in records)
