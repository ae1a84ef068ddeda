"""A closure over large data, with real workers: pickled once per ``map`` or group, and a
``LargeCallableWarning`` naming it once.

What the closure captures counts how many times it is pickled (pickling happens in this
process), so the tests see how often the callable was pickled, not how long it took.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from osiiso_mp import Executor, LargeCallableWarning
from osiiso_mp._map_chunk import MapChunk
from osiiso_mp._mapping import submit_all

pytestmark = pytest.mark.timeout(120)

PICKLED: list[int] = [0]  # how many times a Counted was pickled, in this process


class Counted:
    """Data that counts how many times it is pickled."""

    def __init__(self, size: int) -> None:
        self.data = b"x" * size

    def __reduce__(self) -> Any:
        PICKLED[0] += 1
        return (_rebuild, (self.data,))


def _rebuild(data: bytes) -> Counted:
    out = Counted(0)
    out.data = data
    return out


def closure(size: int, fail_on: int = -1) -> Any:
    """A lambda capturing ``size`` bytes (it travels by value); it raises for ``fail_on``."""
    held = Counted(size)

    def call(i: int) -> int:
        if i == fail_on:
            raise ValueError(f"item {i}")
        return len(held.data) + i

    PICKLED[0] = 0
    return call


SIZE = 300_000  # past the size from which a callable is pickled once, short of the warning


def test_a_map_pickles_its_callable_once_for_all_its_chunks(launch: dict[str, Any]) -> None:
    fn = closure(SIZE)
    with Executor(procs=2, **launch) as ex:
        assert list(ex.map(fn, range(64))) == [SIZE + i for i in range(64)]
        assert PICKLED[0] == 2  # the probe that sizes the chunks, then the callable alone
        PICKLED[0] = 0
        assert list(ex.map(fn, range(64), chunksize=4)) == [SIZE + i for i in range(64)]
        assert PICKLED[0] == 2  # the first chunk's payload, then the callable alone
        PICKLED[0] = 0
        assert list(ex.map(fn, range(8), chunksize=1)) == [SIZE + i for i in range(8)]
        assert PICKLED[0] == 2  # one task per element: the same
        assert ex.run(timeout=60).succeeded == 64 + 64 + 8


def test_a_large_callable_does_not_make_chunks_of_one_element() -> None:
    # the callable is counted once for the map, not in every element: before, a callable
    # pickled to more than a chunk's budget (16 MiB) made every chunk a single element
    fn = closure(17 << 20)
    with Executor(procs=1) as ex, pytest.warns(LargeCallableWarning):
        entries = submit_all(ex._core, ex._core.opts, fn, ((i,) for i in range(64)), None)
        assert all(type(e) is MapChunk for e in entries)
        assert len(entries) == 16  # as for any callable of unknown duration: 64 // 16 each
        assert ex.run(timeout=60).succeeded == 64
    assert PICKLED[0] == 2


def test_a_group_pickles_a_callable_met_again_once() -> None:
    fn = closure(SIZE)
    with Executor(procs=2) as ex:
        group = ex.group(fn, range(10))
        assert group.values(timeout=60) == [SIZE + i for i in range(10)]
        assert PICKLED[0] == 2
        PICKLED[0] = 0
        group = ex.group([(fn, 1), (len, "ab"), (fn, 2), (fn, 3)])
        assert group.values(timeout=60) == [SIZE + 1, 2, SIZE + 2, SIZE + 3]
        assert PICKLED[0] == 2
        ex.run(timeout=60)


def test_separate_submits_pickle_the_callable_each_time() -> None:
    # what it captures may change between two submits: each pickles it anew
    fn = closure(SIZE)
    with Executor(procs=1) as ex:
        assert [ex.submit(fn, i).result(timeout=60) for i in range(3)] == [SIZE, SIZE + 1, SIZE + 2]
        assert PICKLED[0] == 3
        ex.run(timeout=60)


def test_an_item_run_again_alone_reuses_the_pickled_callable() -> None:
    fn = closure(SIZE, fail_on=12)  # in the second chunk, made with the pickled callable
    with Executor(procs=1) as ex:
        it = ex.options(retries=1).map(fn, range(16), chunksize=8)
        with pytest.raises(ValueError, match="item 12"):
            list(it)
        summary = ex.run(timeout=60)
        failed = [r for r in summary.results if r.status == "failed"]
        assert [r.attempts for r in failed] == [2]  # retried on its own, then failed
        assert PICKLED[0] == 2  # the retry sent the pickle made for the map


def test_a_large_callable_is_warned_about_once_with_its_size_and_remedy() -> None:
    big = list(range(300_000))  # about 1.4 MiB pickled
    fn = lambda i: big[i]  # noqa: E731
    with Executor(procs=2) as ex:
        with pytest.warns(LargeCallableWarning) as caught:
            assert list(ex.map(fn, range(50))) == list(range(50))
            assert ex.submit(fn, 7).result(timeout=60) == 7
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "test_a_large_callable_is_warned_about_once" in message and "MiB" in message
        assert "initializer" in message
        assert caught[0].filename == __file__  # points at the map() call
        ex.run(timeout=60)


def test_a_warning_turned_error_submits_nothing() -> None:
    big = bytes(2 << 20)
    fn = lambda i: len(big) + i  # noqa: E731
    with Executor(procs=1) as ex:
        with warnings.catch_warnings():
            warnings.simplefilter("error", LargeCallableWarning)
            with pytest.raises(LargeCallableWarning):
                ex.map(fn, range(10))
        assert ex.run(timeout=60).results == ()  # nothing was submitted
        assert ex.submit(abs, -2).result(timeout=60) == 2
