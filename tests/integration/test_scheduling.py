"""Start delays, Retry requests, worker recycling and the initializer guard, on real workers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from osiiso_mp import ClosedError, Executor, OsiisoError, Retry


def started_at() -> float:
    """When the task started (perf_counter is one clock for the pool on Linux)."""
    return time.perf_counter()


def retry_once(marker: str, delay: float) -> str:
    """Ask for a retry on the first attempt, succeed on the second."""
    if not os.path.exists(marker):
        Path(marker).touch()
        raise Retry(delay=delay, reason="not yet")
    return "done"


def always_retry() -> None:
    """Ask for a retry every time."""
    raise Retry(reason="never ready")


def failing_initializer() -> None:
    """A worker initializer that always fails."""
    raise RuntimeError("cannot open the model file")


def set_marker(value: str) -> None:
    """A worker initializer with a visible effect."""
    os.environ["OSIISO_TEST_MARKER"] = value


def read_marker() -> str | None:
    """What the initializer left in this worker."""
    return os.environ.get("OSIISO_TEST_MARKER")


@pytest.mark.timeout(20)
def test_delay_holds_no_worker_and_starts_on_time(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        ex.submit(started_at).result()  # the worker is up
        submitted = time.perf_counter()
        late = ex.options(delay=0.6).submit(started_at)
        assert late.status() == "scheduled"
        info = late.info()
        assert info is not None and info.status == "scheduled"
        assert info.scheduled_at is not None
        assert info.scheduled_at >= info.enqueue_time + 500
        # the only worker is free meanwhile: an undelayed task runs before the delayed one
        early = ex.submit(started_at)
        assert early.result(timeout=30) < late.result(timeout=30)
        assert late.result() - submitted >= 0.6
        record = late.task_result()
        assert record is not None and record.attempts == 1 and record.status == "succeeded"


@pytest.mark.timeout(20)
def test_run_at_starts_at_the_epoch_time() -> None:
    with Executor(procs=1) as ex:
        target = time.time() + 0.5
        fut = ex.options(run_at=target).submit(time.time)
        assert fut.status() == "scheduled"
        assert fut.result(timeout=5) >= target
        past = ex.options(run_at=time.time() - 60).submit(time.time)
        assert past.result(timeout=5) > 0  # a run_at in the past starts at once


@pytest.mark.timeout(20)
def test_cancel_and_graceful_shutdown_with_scheduled_tasks() -> None:
    ex = Executor(procs=1)
    try:
        doomed = ex.options(delay=30).submit(started_at)
        kept = ex.options(delay=0.3).submit(started_at)
        assert doomed.cancel()
        assert doomed.cancelled() and doomed.status() == "complete"
    finally:
        ex.shutdown(wait=True)  # a graceful drain waits for the scheduled task
    assert kept.done() and kept.result() > 0
    summary = ex.run()
    assert [r.status for r in summary.results] == ["cancelled", "succeeded"]


@pytest.mark.timeout(20)
def test_task_may_ask_for_a_retry_with_its_own_delay(transport: str, tmp_path: Path) -> None:
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.options(retries=1, retry_delay=10).submit(retry_once, str(tmp_path / "m"), 0.3)
        assert fut.result(timeout=30) == "done"
        record = fut.task_result()
        assert record is not None and record.attempts == 2
        first, second = record.attempt_log
        assert first.outcome == "failed" and "not yet" in first.error
        assert second.started_at is not None
        assert second.started_at - first.finished_at >= 0.3  # the task's delay, not 10 s
        assert second.outcome == "succeeded"


@pytest.mark.timeout(20)
def test_retry_beyond_the_budget_fails_with_retry() -> None:
    with Executor(procs=1) as ex:
        fut = ex.options(retries=2).submit(always_retry)
        with pytest.raises(Retry, match="never ready"):
            fut.result(timeout=10)
        record = fut.task_result()
        assert record is not None and record.attempts == 3 and record.status == "failed"


@pytest.mark.timeout(30)
def test_max_tasks_per_child_recycles_workers_without_losing_tasks(launch: dict[str, Any]) -> None:
    with Executor(max_workers=1, max_tasks_per_child=2, **launch) as ex:
        pids = [f.result(timeout=20) for f in [ex.submit(os.getpid) for _ in range(7)]]
        summary = ex.run()
    assert summary.succeeded == 7
    assert [pids[i] == pids[i + 1] for i in range(0, 6, 2)] == [True, True, True]
    assert len(set(pids)) == 4, pids  # a new worker every 2 tasks
    assert summary.telemetry.respawns >= 3


@pytest.mark.timeout(20)
def test_initializer_runs_in_every_worker(transport: str) -> None:
    with Executor(procs=2, initializer=set_marker, initargs=("ready",), transport=transport) as ex:
        assert {f.result() for f in [ex.submit(read_marker) for _ in range(6)]} == {"ready"}


@pytest.mark.timeout(60)
def test_failing_initializer_breaks_the_executor_loudly(transport: str) -> None:
    started = time.monotonic()
    with Executor(procs=2, initializer=failing_initializer, transport=transport) as ex:
        fut = ex.submit(read_marker)
        # it breaks after three failed starts in a row: on Ray each is an actor's start,
        # and all of them took 11-26 s on a loaded 2-core machine
        with pytest.raises(OsiisoError, match="failing_initializer") as info:
            fut.result(timeout=20 if transport == "local" else 45)
        assert "cannot open the model file" in str(info.value)
        # once broken, submit itself refuses, naming the cause
        with pytest.raises(ClosedError, match="broken: worker initializer failing_initializer"):
            ex.submit(read_marker)
        closing = time.monotonic()
    assert time.monotonic() - closing < 5  # a broken executor has nothing left to wait for
    if transport == "local":
        assert time.monotonic() - started < 15


async def async_sleep_pid(seconds: float) -> int:
    """Sleep asynchronously, then return the worker's pid."""
    import asyncio

    await asyncio.sleep(seconds)
    return os.getpid()


@pytest.mark.timeout(20)
def test_async_timeout_cancels_inside_the_worker_and_names_the_task(transport: str) -> None:
    from osiiso_mp import TaskTimeoutError

    with Executor(procs=1, transport=transport) as ex:
        pid = ex.submit(async_sleep_pid, 0).result(timeout=30)
        slow = ex.options(timeout=0.3, name="slow-coro").submit(async_sleep_pid, 30)
        with pytest.raises(TaskTimeoutError) as info:
            slow.result(timeout=30)
        message = str(info.value)
        assert "slow-coro" in message and slow.task_id in message
        assert "cancelled inside its worker" in message and not info.value.killed
        record = slow.task_result()
        assert record is not None
        (attempt,) = record.attempt_log
        assert attempt.outcome == "timed_out" and attempt.exit_code is None
        assert ex.submit(async_sleep_pid, 0).result(timeout=30) == pid  # same worker
