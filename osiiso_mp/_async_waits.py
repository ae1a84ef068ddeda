"""Waiting on the running event loop for what other threads settle: a list of futures
(one loop wake-up for the whole list), or the next item of a map chunk."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._future import TaskFuture
    from ._map import MapEntry, MapWindow
    from ._map_chunk import MapChunk

__all__ = ["item_ended", "wait_all"]


async def wait_all(
    futures: list[TaskFuture[Any] | MapChunk], timeout: float | None
) -> set[TaskFuture[Any] | MapChunk]:
    """Wait on the running loop until every future is done or ``timeout`` passes; return
    those not done. One loop wake-up for the whole list, from whichever thread finishes
    the last one."""
    remaining = [f for f in futures if not f.done()]
    if not remaining:
        return set()
    loop = asyncio.get_running_loop()
    all_done = asyncio.Event()
    count = [len(remaining)]
    lock = threading.Lock()

    def one_done(_: object) -> None:
        with lock:
            count[0] -= 1
            last = count[0] == 0
        if last:
            try:
                loop.call_soon_threadsafe(all_done.set)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    for fut in remaining:
        fut.add_done_callback(one_done)
    try:
        await asyncio.wait_for(all_done.wait(), timeout)
    except TimeoutError:
        pass
    return {f for f in futures if not f.done()}


async def item_ended(window: MapWindow, head: MapEntry, i: int, end: float | None) -> None:
    """Await item ``i`` of ``head``, the map's first entry, or the whole entry, on the loop
    (``TimeoutError`` once ``end`` has passed); the loop's twin of ``MapWindow.wait_item``:
    after a while, it tells the map's read-ahead that the reader waits for it."""
    loop = asyncio.get_running_loop()
    patient = not window.bounded
    while not head._ended(i):
        woken: asyncio.Future[None] = loop.create_future()

        def wake(woken: asyncio.Future[None] = woken) -> None:
            try:
                loop.call_soon_threadsafe(_set_once, woken)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        head._on_progress(wake)
        if head._ended(i):  # it ended between the check and the registration
            return
        if not patient:
            patient = True
            done, _ = await asyncio.wait((woken,), timeout=window.patience(end))
            if not done:
                window.waiting()
            continue
        left = None if end is None else max(0.0, end - time.monotonic())
        await asyncio.wait_for(woken, left)


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
