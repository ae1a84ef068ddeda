"""A ``map`` without ``buffersize`` runs ahead of its reader only so far (issue 17).

Every element is submitted at once, as in the standard library, but while more than the
read-ahead's bytes of values (a quarter of ``retain_bytes``, at least 32 MiB) wait for a
reader slower than the workers, the map's next tasks wait for it. Whatever else waits for
those tasks (``run()``, a shutdown, the reader gone) lets them run; a reader waiting for an
element retried after later ones is never left waiting. With real workers and real values.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from osiiso_mp import AsyncExecutor, Executor

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
SIZE = 4 * MIB  # each element's value
LIMIT = 32 * MIB  # the read-ahead with retain_bytes=0: its floor
N = 48  # 192 MiB of values in all: far past the limit
# what may be done beyond the limit when the reader stops: the value it took, and the chunks
# already sent (each worker holds at most two, which stop at 16 MiB of values each)
SLACK = SIZE + 2 * 2 * 16 * MIB


def blob(n: int, size: int = SIZE) -> bytes:
    """``size`` bytes that say which element they are."""
    return n.to_bytes(4, "big") * (size // 4)


def blob_noting(n: int, where: str) -> bytes:
    """:func:`blob`, leaving a file behind to show it ran."""
    Path(where, str(n)).touch()
    return blob(n)


def blob_failing_once(n: int, where: str) -> bytes:
    """:func:`blob`, but element 0 fails on its first try (the file says it was tried)."""
    flag = Path(where, "tried")
    if n == 0 and not flag.exists():
        flag.touch()
        raise ValueError("first try of element 0")
    return blob(n)


def settled(ex: Executor, quiet: float = 0.5, within: float = 30.0) -> int:
    """The count of completed tasks once it has not moved for ``quiet`` seconds, from the
    first completion on (a worker may take longer than ``quiet`` to start: a Ray actor)."""
    end = time.monotonic() + within
    last, since = -1, time.monotonic()
    while time.monotonic() < end:
        done = ex.stats().completed
        if done != last:
            last, since = done, time.monotonic()
        elif done and time.monotonic() - since >= quiet:
            return done
        time.sleep(0.05)
    raise AssertionError(f"the completed count kept moving for {within}s (at {last})")


def test_a_slow_reader_holds_the_map_back_within_the_read_ahead(launch: dict[str, Any]) -> None:
    with Executor(procs=2, retain_bytes=0, **launch) as ex:
        values = ex.map(blob, range(N))
        assert next(values) == blob(0)
        done = settled(ex)
        # unbounded, all 48 would be done (192 MiB); bounded, the rest wait, queued
        assert done < N
        assert done * SIZE <= LIMIT + SLACK
        assert ex.stats().pending == N - done
        rest = list(values)  # reading lets them run, in order, values intact
        assert rest == [blob(n) for n in range(1, N)]
        summary = ex.run()
    assert summary.ok and summary.succeeded == N


def test_the_limit_is_a_quarter_of_retain_bytes_above_the_floor() -> None:
    with Executor(procs=2, retain_bytes="256MiB") as ex:  # the default
        values = ex.map(blob, range(N))
        next(values)
        done = settled(ex)
        assert done >= 64 * MIB // SIZE  # past 32 MiB: a quarter of the budget counts
        assert done * SIZE <= 64 * MIB + SLACK
        assert len(list(values)) == N - 1


def test_no_budget_no_read_ahead() -> None:
    with Executor(procs=2, retain_bytes=None) as ex:
        values = ex.map(blob, range(N))
        next(values)
        assert settled(ex) == N  # as in the standard library: everything runs
        assert len(list(values)) == N - 1


def test_run_waits_for_a_map_nobody_reads(transport: str) -> None:
    with Executor(procs=2, retain_bytes=0, transport=transport) as ex:
        values = ex.map(blob, range(N))
        assert next(values) == blob(0)
        summary = ex.run()  # waits for every task: none waits for the reader any more
        assert summary.ok and summary.succeeded == N  # (retain_bytes=0 keeps no values)
        assert list(values) == [blob(n) for n in range(1, N)]  # and the reader still reads


def test_a_map_dropped_unread_runs_to_the_end(transport: str, tmp_path: Path) -> None:
    with Executor(procs=2, retain_bytes=0, transport=transport) as ex:
        ex.map(blob_noting, range(N), [str(tmp_path)] * N)  # never read, as with the stdlib
        assert settled(ex) == N
    assert len(list(tmp_path.iterdir())) == N


def test_shutdown_runs_what_an_unread_map_held_back(tmp_path: Path) -> None:
    with Executor(procs=2, retain_bytes=0) as ex:
        values = ex.map(blob_noting, range(N), [str(tmp_path)] * N)
        next(values)
        assert settled(ex) < N
    # leaving the block waits for every task, held back or not
    assert len(list(tmp_path.iterdir())) == N
    del values


def test_closing_the_reader_cancels_what_was_held_back() -> None:
    with Executor(procs=2, retain_bytes=0) as ex:
        values = ex.map(blob, range(N))
        next(values)
        done = settled(ex)
        values.close()
        summary = ex.run()
    assert len(summary.results) == N
    assert summary.succeeded >= done
    assert summary.cancelled >= 1
    assert summary.succeeded + summary.cancelled == N


def test_a_reader_waiting_for_a_retried_element_gets_it(transport: str, tmp_path: Path) -> None:
    # element 0 fails once and is retried after later elements have filled the read-ahead:
    # the reader waits for it, so it must not be held back with them
    with Executor(procs=2, retain_bytes=0, transport=transport) as ex:
        opts = ex.options(retries=1, retry_delay=0.5)
        values = list(opts.map(blob_failing_once, range(N), [str(tmp_path)] * N))
        assert values == [blob(n) for n in range(N)]
        summary = ex.run()
    assert summary.ok
    assert summary.results[0].attempts == 2


def test_async_map_holds_back_too() -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=2, retain_bytes=0) as aex:
            values = aex.map(blob, range(N))
            assert await anext(values) == blob(0)
            await asyncio.sleep(0)
            done = await asyncio.to_thread(settled, aex.executor)
            assert done < N
            assert done * SIZE <= LIMIT + SLACK
            rest = [value async for value in values]
            assert rest == [blob(n) for n in range(1, N)]

    asyncio.run(main())


def test_a_map_of_single_tasks_holds_back_too() -> None:
    # chunksize=1: every element its own task and future, counted the same way
    with Executor(procs=2, retain_bytes=0) as ex:
        values = ex.map(blob, range(N), chunksize=1)
        next(values)
        done = settled(ex)
        assert done < N
        assert done * SIZE <= LIMIT + SLACK
        assert list(values) == [blob(n) for n in range(1, N)]


def test_a_timed_lookup_of_a_held_back_element_lets_it_run() -> None:
    with Executor(procs=2, retain_bytes=0) as ex:
        values = ex.map(blob, range(N), chunksize=1)
        next(values)
        settled(ex)
        assert all(not w.current for w in ex.stats().workers)  # the rest is held back
        # the last element's id, as run() will list it (a peek at the batch: map hides ids)
        last = ex._core.batch.entries[-1].task_id  # type: ignore[union-attr]
        record = ex.task_result(last, timeout=60)
        assert record is not None and record.value == blob(N - 1)
        assert len(list(values)) == N - 1


def test_values_read_in_order_through_a_long_map() -> None:
    # many chunks, a slowish reader: everything arrives, in order, with the default budget
    with Executor(procs=2, retain_bytes=0) as ex:
        total = 0
        for n, value in enumerate(ex.map(blob, range(120), [MIB] * 120)):
            assert value[:4] == n.to_bytes(4, "big")
            total += 1
            if n % 10 == 0:
                time.sleep(0.01)
    assert total == 120


# -- a chunk read as its items end ---------------------------------------------------------
# A chunk stops in its worker once its values reach 16 MiB; its other items then run one by
# one, and the reader takes each value as it comes rather than when the whole chunk is done.

CHUNK = 40  # items of the one chunk: 16 of 1 MiB fill it, the other 24 run on their own


def blob_then_slow(n: int, slow_from: int, fail_at: int = -1) -> bytes:
    """1 MiB; items from ``slow_from`` on take 0.15 s; item ``fail_at`` raises."""
    if n == fail_at:
        raise KeyError(n)
    if n >= slow_from:
        time.sleep(0.15)
    return blob(n, MIB)


def test_a_chunk_is_read_as_its_items_end() -> None:
    with Executor(procs=2) as ex:
        values = ex.map(blob_then_slow, range(CHUNK), [20] * CHUNK, chunksize=CHUNK)
        assert next(values) == blob(0, MIB)
        # the 20 slow items take 1.5 s on two workers: the first value came before them
        assert ex.stats().completed < CHUNK
        assert list(values) == [blob(n, MIB) for n in range(1, CHUNK)]
        summary = ex.run()
    assert summary.ok and summary.succeeded == CHUNK


def test_an_item_failing_after_the_chunk_stopped_raises_at_its_place(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        values = ex.map(
            blob_then_slow, range(CHUNK), [CHUNK] * CHUNK, [30] * CHUNK, chunksize=CHUNK
        )
        got = []
        with pytest.raises(KeyError):
            for value in values:
                got.append(value)
        assert got == [blob(n, MIB) for n in range(30)]
        summary = ex.run()
    assert summary.results[30].status == "failed"
    assert summary.failed == 1


def test_a_timeout_while_waiting_inside_a_chunk_cancels_the_rest(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        values = ex.map(blob_then_slow, range(CHUNK), [16] * CHUNK, chunksize=CHUNK, timeout=0.3)
        got = []
        with pytest.raises(TimeoutError):
            for value in values:
                got.append(value)
        assert got == [blob(n, MIB) for n in range(len(got))]
        assert len(got) < CHUNK
        summary = ex.run()
    assert summary.cancelled >= 1
    assert summary.succeeded + summary.cancelled == CHUNK


def test_an_async_map_reads_a_chunk_as_its_items_end() -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=2) as aex:
            values = aex.map(blob_then_slow, range(CHUNK), [20] * CHUNK, chunksize=CHUNK)
            assert await anext(values) == blob(0, MIB)
            assert aex.stats().completed < CHUNK
            rest = [value async for value in values]
            assert rest == [blob(n, MIB) for n in range(1, CHUNK)]

    asyncio.run(main())
