"""An Executor created and used synchronously inside a running event loop (a notebook cell)."""

from __future__ import annotations

import asyncio

import pytest

from osiiso_mp import Executor


def add(a: int, b: int) -> int:
    """A plain task."""
    return a + b


async def double(x: int) -> int:
    """An async task."""
    await asyncio.sleep(0.01)
    return x * 2


@pytest.mark.timeout(30)
def test_sync_executor_inside_a_running_loop(transport: str) -> None:
    async def cell() -> tuple[int, list[int], int]:
        # blocking calls inside a coroutine, as a Jupyter cell makes them on the kernel's loop
        with Executor(procs=2, transport=transport) as ex:
            one = ex.submit(add, 1, 2).result(timeout=30)
            many = list(ex.map(add, range(5), range(5)))
            doubled: int = await ex.submit(double, 21)  # typed as the coroutine's result
            summary = ex.run()
        assert summary.succeeded == 7
        return one, many, doubled

    assert asyncio.run(cell()) == (3, [0, 2, 4, 6, 8], 42)
