"""``AsyncExecutor``: the async twin of :class:`~osiiso_mp.Executor`, over the same core.

Like ``httpx.Client``/``AsyncClient``: one supervisor and one set of workers, two facades.
The async one never blocks its event loop on the pool:

- ``submit`` returns a :class:`TaskFuture` at once; ``await fut`` gives the value. With
  ``max_pending`` reached the task is *parked* (no loop blocking) and enters the pool as soon
  as another task finishes, so ``await ex.submit(...)`` simply waits longer.
- Cancelling the coroutine that awaits a future (a client disconnect, a ``wait_for``
  timeout) cancels the task, and a running sync attempt is stopped with its worker.
- ``await ex.run()``, ``await ex.shutdown()``, ``async with``, ``async for ... in
  ex.map(...)`` and ``async for fut in ex.as_completed(...)`` wait on the loop, woken once
  per batch (or per completion for the iterators) from the supervisor thread.

Works under the standard library's event loop and under uvloop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, overload

from ._async_group import AsyncTaskGroup
from ._async_waits import item_ended, wait_all
from ._build_config import build_config
from ._checks import from_caller
from ._config import ExecutorConfig
from ._executor import Executor
from ._future import TaskFuture
from ._group import build_group
from ._keywords import ExecutorKeywords, TaskOptionKeywords
from ._map import check_map_sizes
from ._progress import ProgressArg, progress_tracker, sized_total
from ._resources import cpu_budget
from ._results import TaskResult
from ._runtime.transports._forkserver import start_early
from ._snapshots import PoolStats, TaskInfo
from ._summary import RunSummary
from ._task_options import TaskOptions, resolve_options

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint
    from ._core import ExecutorCore

__all__ = ["AsyncExecutor", "AsyncOptionsView"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
A = TypeVar("A")


class _AsyncSubmitter:
    """Submission methods shared by :class:`AsyncExecutor` and :class:`AsyncOptionsView`."""

    _aex: AsyncExecutor
    _core: ExecutorCore
    _opts: TaskOptions

    def options(
        self, opts: TaskOptions | None = None, **overrides: Unpack[TaskOptionKeywords]
    ) -> AsyncOptionsView:
        """A view whose ``submit``/``map``/``group`` give tasks these options, on top of
        this executor's (or view's): ``ex.options(retries=3).submit(f, x)``.

        ``opts`` (a :class:`TaskOptions`) replaces the defaults; keyword ``overrides``
        apply on top. Unknown names raise ``TypeError``; bad values ``ValueError``
        naming the option (raised from the caller's line).
        """
        try:
            resolved = resolve_options(self._opts, opts, **overrides)
        except (TypeError, ValueError) as exc:
            raise from_caller(exc) from None
        return AsyncOptionsView(self._aex, resolved)

    @overload
    def group(
        self,
        fn: Callable[[A], Coroutine[Any, Any, R]],
        iterable: Iterable[A],
        /,
        *,
        group_id: Hashable | None = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> AsyncTaskGroup[R]: ...

    @overload
    def group(
        self,
        fn: Callable[[A], R],
        iterable: Iterable[A],
        /,
        *,
        group_id: Hashable | None = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> AsyncTaskGroup[R]: ...

    @overload
    def group(
        self, calls: Iterable[tuple[Any, ...]], /, *, group_id: Hashable | None = None
    ) -> AsyncTaskGroup[Any]: ...

    def group(
        self,
        fn_or_calls: Any,
        iterable: Iterable[Any] | None = None,
        /,
        *,
        group_id: Hashable | None = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> AsyncTaskGroup[Any]:
        """Submit tasks as one group (see :meth:`Executor.group`, ``checkpoint`` too); an
        :class:`AsyncTaskGroup`."""
        group = build_group(
            self._core, self._opts, fn_or_calls, iterable, group_id, checkpoint, key, namespace
        )
        return AsyncTaskGroup(group, self._aex)

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskFuture[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]: ...

    def submit(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[Any]:
        """Schedule ``fn(*args, **kwargs)``; ``await`` the returned future for its value.

        Never blocks the loop: with ``max_pending`` reached the task waits for room inside
        the executor (``submit_timeout=0`` raises :class:`QueueFullError` instead).
        """
        return self._core.submit(self._opts, fn, args, kwargs)

    @overload
    def map(
        self,
        fn: Callable[..., Coroutine[Any, Any, R]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[R]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[R]: ...

    async def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[Any]:
        """``async for value in ex.map(fn, xs)``: values in input order.

        Each element is its own task with its own record; elements travel in chunks as for
        :meth:`Executor.map` (``chunksize`` as there; an ``async def`` callable sends each
        element on its own). Without ``buffersize`` everything is submitted when iteration
        starts, and the workers run ahead of a slower reader only as far as
        :meth:`Executor.map` says; with it, at most ``buffersize`` elements are
        outstanding. ``timeout`` bounds the whole iteration. The first failure raises when
        reached; leaving the loop early (or a cancellation) cancels what is left.
        ``progress``, ``checkpoint``, ``key`` and ``namespace`` are as for
        :meth:`Executor.map` (a bad key raises when iteration starts).
        """
        from ._mapping import map_window
        from ._resume import resume_for

        check_map_sizes(chunksize, buffersize)
        resume = resume_for(checkpoint, fn, self._opts, key, namespace, where="map()")
        tracker = progress_tracker(
            progress, total=sized_total(iterables), desc="osiiso_mp map", pool=self._core.stats
        )
        end = None if timeout is None else time.monotonic() + timeout
        args = zip(*iterables, strict=False)
        window = map_window(
            self._core, self._opts, fn, args, chunksize, buffersize, resume, len(iterables) == 1
        )
        window.track(tracker)
        try:
            while window.advance():
                # the head stays in the window until consumed, so cancelling covers it
                first = window.entries[0]
                start = 0
                while True:  # its items as they end (see map_results), the rest once done
                    await item_ended(window, first, start, end)
                    if first.done():
                        break
                    yield window.item(first, start)
                    start += 1
                del first
                values = window.take(start)
                while True:  # no name holds a value while the caller has it (so it can go)
                    try:
                        yield next(values)
                    except StopIteration:
                        break
        finally:
            window.close()


class AsyncOptionsView(_AsyncSubmitter):
    """An async executor bound to task options: ``ex.options(retries=3).submit(f, x)``."""

    def __init__(self, aex: AsyncExecutor, opts: TaskOptions) -> None:
        self._aex = aex
        self._core = aex._core
        self._opts = opts

    @property
    def task_options(self) -> TaskOptions:
        """The options every task submitted through this view gets."""
        return self._opts


class AsyncExecutor(_AsyncSubmitter):
    """The async twin of :class:`Executor`: same keywords, same supervisor, same records.

    ::

        async with AsyncExecutor(procs=4, max_rss="1GiB", max_pending=1000) as ex:
            value = await ex.submit(render, payload)
            summary = await ex.run()

    ``async with`` drains on a clean exit and force-cancels on an exception, like the sync
    executor's ``with``. The introspection methods (``status``, ``info``,
    ``task_result``, ``queue_size``, ``stats``) answer at once; ``task_result`` with a
    ``timeout`` is awaited.
    """

    def __init__(self, procs: int | None = None, **config: Unpack[ExecutorKeywords]) -> None:
        try:
            built = build_config(procs, dict(config), cpu_budget=cpu_budget)
        except (TypeError, ValueError) as exc:
            raise from_caller(exc) from None
        start_early(built.transport)
        from ._core import ExecutorCore  # the runtime: imported while the fork server boots

        self._core = ExecutorCore(built, blocking=False)  # max_pending parks, never blocks
        self._aex = self
        self._opts = self._core.opts
        self._ex = Executor._over(self._core)  # the sync facade over the same core

    def __repr__(self) -> str:
        return "<Async" + repr(self._ex)[1:]

    @property
    def procs(self) -> int:
        """Number of worker processes."""
        return self._core.config.procs

    @property
    def _max_workers(self) -> int:
        """``procs`` under ``ProcessPoolExecutor``'s attribute name."""
        return self._core.config.procs

    @property
    def config(self) -> ExecutorConfig:
        """The validated configuration."""
        return self._core.config

    @property
    def executor(self) -> Executor:
        """The sync facade over the same pool (for ``loop.run_in_executor`` and friends)."""
        return self._ex

    async def as_completed(
        self, futures: Iterable[TaskFuture[R]], timeout: float | None = None
    ) -> AsyncIterator[TaskFuture[R]]:
        """``async for fut in ex.as_completed(futures)``: each future as it finishes.

        ``TimeoutError`` if ``timeout`` (seconds, from the call) passes first.
        """
        pending = list(dict.fromkeys(futures))
        loop = asyncio.get_running_loop()
        finished: asyncio.Queue[TaskFuture[R]] = asyncio.Queue()

        def done(fut: Any) -> None:
            try:
                loop.call_soon_threadsafe(finished.put_nowait, fut)
            except RuntimeError:  # the loop is closed: nobody iterates any more
                pass

        for fut in pending:
            fut.add_done_callback(done)
        end = None if timeout is None else time.monotonic() + timeout
        for _ in range(len(pending)):
            left = None if end is None else max(0.0, end - time.monotonic())
            yield await asyncio.wait_for(finished.get(), left)

    async def run(
        self,
        timeout: float | None = None,
        *,
        strict: bool = False,
        fail_policy: str | None = None,
        progress: ProgressArg = None,
    ) -> RunSummary:
        """Await every task submitted since the previous ``run()``; its :class:`RunSummary`.

        Same semantics as :meth:`Executor.run`. Cancelling the awaiting coroutine cancels
        the batch's unfinished tasks (their records stay for the next ``run()``).
        """
        core = self._core
        run = core.start_run(fail_policy, progress, "osiiso_mp run")
        try:
            not_done = await wait_all(run.futures, timeout)
            if not_done:
                core.cancel_on_timeout(run, not_done)
                await wait_all(run.futures, None)
        except BaseException:
            core.abort_run(run)
            raise
        finally:
            core.end_run(run)
        return core.summarise(run, bool(not_done), strict)

    async def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, kill: bool = False
    ) -> None:
        """Stop taking tasks and release the workers (see :meth:`Executor.shutdown`),
        waiting on a helper thread so that the loop keeps running meanwhile."""
        core = self._core
        if not wait:
            core.shutdown(False, cancel_futures=cancel_futures, kill=kill)
            return
        await asyncio.to_thread(core.shutdown, True, cancel_futures=cancel_futures, kill=kill)

    async def __aenter__(self) -> AsyncExecutor:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.shutdown(kill=exc_type is not None)

    # -- introspection (non-blocking reads) --------------------------------------------------

    def status(self, task_id: str) -> str:
        """See :meth:`Executor.status`."""
        return self._core.status(task_id)

    def info(self, task_id: str) -> TaskInfo | None:
        """See :meth:`Executor.info`."""
        return self._core.info(task_id)

    async def task_result(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """See :meth:`Executor.task_result`; with a ``timeout`` it is awaited."""
        if timeout is None:
            return self._core.task_result(task_id)
        return await asyncio.to_thread(self._core.task_result, task_id, timeout)

    def queue_size(self) -> int:
        """See :meth:`Executor.queue_size`."""
        return self._core.queue_size()

    def stats(self) -> PoolStats:
        """See :meth:`Executor.stats`."""
        return self._core.stats()
