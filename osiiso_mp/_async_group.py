"""``AsyncTaskGroup``: the async face of a :class:`~osiiso_mp.TaskGroup`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from ._async_waits import wait_all

if TYPE_CHECKING:
    from ._async import AsyncExecutor
    from ._future import TaskFuture
    from ._group import TaskGroup
    from ._summary import RunSummary

__all__ = ["AsyncTaskGroup"]

T = TypeVar("T")


class AsyncTaskGroup(Generic[T]):
    """The async face of a :class:`TaskGroup`, as :meth:`AsyncExecutor.group` returns it.

    ``await group.values()``, ``await group.wait()`` and ``async for fut in
    group.as_completed()`` wait on the loop; ``cancel()``, ``done()``, ``futures`` and
    ``group_id`` are as on :class:`TaskGroup` (``group.sync`` is that group itself).
    """

    def __init__(self, group: TaskGroup[T], aex: AsyncExecutor) -> None:
        self.sync = group
        self._aex = aex

    @property
    def group_id(self) -> Hashable:
        """The id every task of the group carries."""
        return self.sync.group_id

    @property
    def futures(self) -> tuple[TaskFuture[T], ...]:
        """The tasks' futures, in input order."""
        return self.sync.futures

    def __len__(self) -> int:
        return len(self.sync)

    def __iter__(self) -> Iterator[TaskFuture[T]]:
        return iter(self.sync)

    def __repr__(self) -> str:
        return "<Async" + repr(self.sync)[1:]

    def done(self) -> bool:
        """True when every task of the group has finished."""
        return self.sync.done()

    def cancel(self) -> int:
        """Cancel every unfinished task (running ones too); how many were cancelled."""
        return self.sync.cancel()

    async def _settled(self, timeout: float | None) -> None:
        if await wait_all(list(self.sync.futures), timeout):
            raise TimeoutError(f"group {self.group_id!r} did not finish within {timeout:g}s")

    async def values(self, timeout: float | None = None) -> list[T]:
        """The values in input order; :class:`ExecutionError` if any task failed or was
        cancelled; ``TimeoutError`` if ``timeout`` passes first."""
        await self._settled(timeout)
        return self.sync.values(timeout=0)

    async def wait(self, timeout: float | None = None) -> RunSummary:
        """A :class:`RunSummary` of the group (input order) once it finished, or of what
        finished when ``timeout`` passed (then ``timed_out=True``; nothing is cancelled)."""
        await wait_all(list(self.sync.futures), timeout)
        return self.sync.wait(timeout=0)

    def as_completed(self, timeout: float | None = None) -> AsyncIterator[TaskFuture[T]]:
        """``async for fut in group.as_completed()``: each task as it finishes."""
        return self._aex.as_completed(self.sync.futures, timeout)
