"""AsyncExecutor under the standard library's event loop and under uvloop."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import uvloop
from outcome_tasks import gated_return
from process_support import gone

from osiiso_mp import AsyncExecutor, ExecutionError, QueueFullError, TaskFuture

T = TypeVar("T")


@pytest.fixture(params=["asyncio", "uvloop"])
def arun(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on the chosen event loop."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        if request.param == "uvloop":
            return uvloop.run(coro)
        return asyncio.run(coro)

    return run


# Each case runs on both loops with local workers, and on Ray with the standard library's
# loop only: the loop is the caller's, the workers are the same whichever runs it.
loops_and_transports = pytest.mark.parametrize(
    ("arun", "transport"),
    [("asyncio", "local"), ("uvloop", "local"), ("asyncio", "ray")],
    indirect=True,
)


def square(x: int) -> int:
    """A plain task."""
    return x * x


def sleep_return(seconds: float, value: Any = None) -> Any:
    """Sleep, then return ``value``."""
    time.sleep(seconds)
    return value


def fail(message: str) -> None:
    """Always fails."""
    raise ValueError(message)


def spin_with_pid(pid_file: str) -> None:
    """Write our pid, then burn CPU forever (until killed)."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        pass


async def async_square(x: int) -> int:
    """An async task."""
    await asyncio.sleep(0.01)
    return x * x


async def all_ready(ex: AsyncExecutor) -> None:
    """Wait on the loop until every worker of ``ex`` has started (a Ray actor may take a
    second or more, and not all at once), so that tasks submitted next run side by side."""
    for _ in range(2000):
        if all(w.state != "starting" for w in ex.stats().workers):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"workers never all started: {ex.stats().workers}")


async def wait_pid(path: Path) -> int:
    """Wait on the loop until a task wrote its pid to ``path``."""
    for _ in range(1000):
        if path.exists() and path.read_text():
            return int(path.read_text())
        await asyncio.sleep(0.01)
    raise AssertionError("the task never started")


@loops_and_transports
@pytest.mark.timeout(30)
def test_await_run_and_shutdown(
    transport: str, arun: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=2, transport=transport) as ex:
            assert await ex.submit(square, 7) == 49
            assert await ex.submit(async_square, 6) == 36
            futs = [ex.submit(square, i) for i in range(5)]
            with pytest.raises(ValueError, match="nope"):
                await ex.submit(fail, "nope")
            summary = await ex.run()
            assert summary.total_submitted == 8 and summary.failed == 1
            assert [f.result() for f in futs] == [0, 1, 4, 9, 16]
            with pytest.raises(ExecutionError, match="1 task"):
                ex.submit(fail, "again")
                await ex.run(strict=True)
        assert ex.executor._core.closed

    arun(main())


@loops_and_transports
@pytest.mark.timeout(30)
def test_map_and_as_completed(
    transport: str, arun: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=2, transport=transport) as ex:
            values = [v async for v in ex.map(square, range(6))]
            assert values == [0, 1, 4, 9, 16, 25]
            windowed = [v async for v in ex.options(retries=1).map(square, range(9), buffersize=2)]
            assert windowed == [i * i for i in range(9)]
            # both workers up (on Ray the second actor may still be starting after the maps,
            # one worker running all three in turn), so the 0.0 s task runs beside the 0.4 s
            await all_ready(ex)
            futs = [ex.submit(sleep_return, d, d) for d in (0.4, 0.0, 0.2)]
            order = [f.result() async for f in ex.as_completed(futs)]
            # in the order they ended (the 0.2 s task starts once the 0.0 one has ended,
            # so on a loaded machine it may end after the 0.4 s one)
            finished_at = {}
            for f in futs:
                record = f.task_result()
                assert record is not None
                finished_at[f.result()] = record.finished_at
            assert order == sorted(finished_at, key=finished_at.__getitem__) and order[0] == 0.0
            with pytest.raises(TimeoutError):
                async for _ in ex.map(sleep_return, [5.0], timeout=0.2):
                    pass

    arun(main())


def odd_fails(x: int) -> int:
    if x == 777:
        raise ValueError("777")
    return x


@loops_and_transports
@pytest.mark.timeout(60)
def test_map_sends_chunks_with_a_record_per_element(
    transport: str,
    arun: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=2, transport=transport) as ex:
            values = [v async for v in ex.map(square, range(5000), chunksize=100)]
            assert values == [i * i for i in range(5000)]
            summary = await ex.run()
            assert summary.total_submitted == 5000 and summary.succeeded == 5000
            assert len({r.task_id for r in summary.results}) == 5000
            # elements of one chunk ran back to back in one worker
            assert len({r.attempt_log[0].pid for r in summary.results[:100]}) == 1
            got = []
            with pytest.raises(ValueError, match="777"):
                async for value in ex.map(odd_fails, range(2000), chunksize=50):
                    got.append(value)
            assert got == list(range(777))
            streamed = [v async for v in ex.map(square, range(3000), buffersize=64)]
            assert streamed == [i * i for i in range(3000)]
            await ex.run()
            # an async def callable goes one element per message, and still works
            assert [v async for v in ex.map(async_square, range(5))] == [0, 1, 4, 9, 16]

    arun(main())


@loops_and_transports
@pytest.mark.timeout(30)
def test_cancelling_the_awaiting_task_kills_the_running_attempt(
    transport: str, arun: Callable[[Coroutine[Any, Any, Any]], Any], tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> None:
        async with AsyncExecutor(procs=1, transport=transport) as ex:
            fut = ex.submit(spin_with_pid, str(pid_file))
            handler = asyncio.ensure_future(fut)  # a request handler awaiting the work
            pid = await wait_pid(pid_file)
            handler.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await handler
            # (Ray's kill of an actor may take a second on a loaded machine; the task spins
            # for ever, so a worker left running still fails this)
            deadline = time.monotonic() + 10.0
            while not gone(pid):  # (a zombie, or no process any more)
                assert time.monotonic() < deadline, "the worker outlived the cancellation"
                await asyncio.sleep(0.02)
            record = fut.task_result()
            assert record is not None and record.status == "cancelled"
            assert await ex.submit(square, 3) == 9  # the executor keeps serving

    arun(main())


@loops_and_transports
@pytest.mark.timeout(30)
def test_wait_for_timeout_cancels_the_task(
    transport: str,
    arun: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=1, transport=transport) as ex:
            fut = ex.submit(sleep_return, 30, "late")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(fut, 0.3)
            assert fut.cancelled()
            assert ex.status(fut.task_id) == "complete"

    arun(main())


@pytest.mark.timeout(30)
def test_max_pending_parks_without_blocking_the_loop(
    arun: Callable[[Coroutine[Any, Any, Any]], Any], tmp_path: Path
) -> None:
    # the first tasks end only once their gate opens: a submit that blocked the loop for
    # room would wait until the gate's limit, and every future would be done by then
    gate, second_gate = tmp_path / "gate", tmp_path / "second"

    async def main() -> None:
        async with AsyncExecutor(procs=1, max_pending=2) as ex:
            futs: list[TaskFuture[Any]] = [ex.submit(gated_return, str(gate), i) for i in range(5)]
            try:
                assert not any(f.done() for f in futs)  # submit never blocked the loop
                assert [f.status() for f in futs[2:]] == ["queued"] * 3  # parked
                ticks = 0
                while ticks <= 10:  # the loop keeps running while tasks are parked
                    ticks += 1
                    await asyncio.sleep(0.01)
                assert not any(f.done() for f in futs)
            finally:
                gate.touch()
            assert [await f for f in futs] == [0, 1, 2, 3, 4]
            assert ex.stats().completed == 5
            # a parked task can be cancelled before it ever reaches the pool
            busy = [ex.submit(gated_return, str(second_gate), i) for i in range(2)]
            try:
                parked = ex.submit(sleep_return, 0.0, "never")
                assert parked.status() == "queued" and parked.cancel()
                record = parked.task_result()
                assert record is not None and record.status == "cancelled"
            finally:
                second_gate.touch()
            assert [await f for f in busy] == [0, 1]
            summary = await ex.run()
            assert summary.total_submitted == 8 and summary.cancelled == 1
        async with AsyncExecutor(procs=1, max_pending=1, submit_timeout=0) as ex:
            ex.submit(sleep_return, 0.2)
            with pytest.raises(QueueFullError):
                ex.submit(sleep_return, 0.0)

    arun(main())


@loops_and_transports
@pytest.mark.timeout(30)
def test_graceful_exit_drains_parked_tasks_and_an_exception_cancels(
    transport: str,
    arun: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    async def main() -> tuple[list[TaskFuture[Any]], list[TaskFuture[Any]]]:
        async with AsyncExecutor(procs=1, max_pending=1, transport=transport) as ex:
            drained = [ex.submit(sleep_return, 0.1, i) for i in range(3)]
        cancelled: list[TaskFuture[Any]] = []
        with pytest.raises(RuntimeError, match="handler failed"):
            async with AsyncExecutor(procs=1, max_pending=1, transport=transport) as ex2:
                cancelled.extend(ex2.submit(sleep_return, 30, i) for i in range(3))
                await asyncio.sleep(0.2)
                raise RuntimeError("handler failed")
        return drained, cancelled

    drained, cancelled = arun(main())
    assert [f.result() for f in drained] == [0, 1, 2]
    assert all(f.cancelled() for f in cancelled)


@loops_and_transports
@pytest.mark.timeout(30)
def test_run_in_executor_cancellation_stops_the_attempt(
    transport: str, arun: Callable[[Coroutine[Any, Any, Any]], Any], tmp_path: Path
) -> None:
    from osiiso_mp import Executor

    pid_file = tmp_path / "pid"

    async def main(ex: Executor) -> None:
        loop = asyncio.get_running_loop()
        call = asyncio.ensure_future(loop.run_in_executor(ex, spin_with_pid, str(pid_file)))
        pid = await wait_pid(pid_file)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        deadline = time.monotonic() + 10.0  # (a Ray actor's kill: see above)
        while not gone(pid):  # (a zombie, or no process any more)
            assert time.monotonic() < deadline, "the worker outlived the cancellation"
            await asyncio.sleep(0.02)
        assert await loop.run_in_executor(ex, square, 4) == 16

    with Executor(procs=1, transport=transport) as ex:
        arun(main(ex))
        summary = ex.run()
    assert [r.status for r in summary.results] == ["cancelled", "succeeded"]


@loops_and_transports
@pytest.mark.timeout(30)
def test_async_group(transport: str, arun: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
    async def main() -> None:
        async with AsyncExecutor(procs=2, transport=transport) as ex:
            group = ex.options(group_id="squares").group(square, range(5))
            assert await group.values() == [0, 1, 4, 9, 16]
            summary = await group.wait()
            assert summary.succeeded == 5 and set(summary.by_group()) == {"squares"}
            mixed = ex.group([(sleep_return, 0.3, "slow"), (fail, "bad"), (square, 3)])
            order = [f async for f in mixed.as_completed()]
            # in the order they ended: on Ray the second actor may still be starting, so
            # the 0.3 s task need not end last
            assert len(order) == 3 and set(order) == set(mixed.futures)
            finished = [cast(Any, f.task_result()).finished_at for f in order]
            # (read on the workers' clocks: ours, for Ray's actors on this host too)
            assert all(b >= a for a, b in itertools.pairwise(finished))
            with pytest.raises(ExecutionError, match="1 task"):
                await mixed.values()
            slow = ex.group(sleep_return, [30.0, 30.0])
            with pytest.raises(TimeoutError):
                await slow.values(timeout=0.2)
            assert slow.cancel() == 2
            partial = await slow.wait()
            assert [r.status for r in partial.results] == ["cancelled", "cancelled"]

    arun(main())


# --- async callables on every supported Python ----------------------------------------------


async def square_now(x: int) -> int:
    """The example of the 3.13 report: it hung there (the worker's task factory refused
    3.13's keyword arguments, so the coroutine never ran)."""
    return x * x


_LABEL: Any = None  # a ContextVar, made in the worker (a ContextVar does not pickle)


async def spawn_with_task_keywords() -> tuple[str, str, str]:
    """Start child tasks with every keyword ``create_task`` takes on this Python (``name``,
    ``context``, and ``eager_start`` where there is one): the worker's task factory must
    accept and pass on each of them."""
    import contextvars
    import sys

    global _LABEL
    _LABEL = contextvars.ContextVar("label", default="unset")

    async def child() -> str:
        label: str = _LABEL.get()
        return label

    ctx = contextvars.copy_context()
    ctx.run(_LABEL.set, "from the given context")
    named = asyncio.create_task(child(), name="named-child")
    given = asyncio.get_running_loop().create_task(child(), context=ctx)
    extra: dict[str, Any] = {"eager_start": True} if sys.version_info >= (3, 14) else {}
    eager = asyncio.get_running_loop().create_task(child(), **extra)
    assert named.get_name() == "named-child"
    return await named, await given, await eager


@pytest.mark.timeout(30)
def test_async_callables_run_on_this_python(transport: str) -> None:
    from osiiso_mp import Executor

    with Executor(procs=1, transport=transport) as ex:
        assert ex.submit(square_now, 3).result(timeout=30) == 9
        assert ex.submit(spawn_with_task_keywords).result(timeout=30) == (
            "unset",
            "from the given context",
            "unset",
        )
        summary = ex.run(timeout=30)
    assert summary.succeeded == 2 and summary.failed == 0
