"""The door on real workers (``_runtime.supervisor._door``): one task at a time goes from
the caller's thread straight to an idle worker, and a crash, a timeout or a cancel racing
that path still ends each task with exactly one record, leaving nothing in ``/dev/shm``."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import time
from typing import Any

import pytest

from osiiso_mp import Executor, TaskFuture, TaskResult, TaskTimeoutError, WorkerCrashedError

pytestmark = pytest.mark.timeout(60)


def double(x: int) -> int:
    return 2 * x


def exit_if(code: int | None) -> int:
    """Quick, unless asked to end its worker with ``code``."""
    if code is not None:
        os._exit(code)
    return 0


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def record_of(fut: TaskFuture[Any]) -> TaskResult:
    record = fut.task_result(timeout=20)
    assert isinstance(record, TaskResult)
    return record


def adopted(ex: Executor) -> int:
    doors = ex._core.sup.doors
    return int(ex._core.sup.call(lambda: doors.adopted, timeout=10))


def _dev_shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def test_tasks_one_at_a_time_go_through_the_door_with_a_record_each() -> None:
    shm = _dev_shm()
    with Executor(procs=2) as ex:
        futures = []
        for i in range(200):
            fut = ex.submit(double, i)
            assert fut.result(timeout=10) == 2 * i
            futures.append(fut)
        through = adopted(ex)
        summary = ex.run()
    assert through >= 150  # nearly all: each found a worker idle
    assert summary.succeeded == 200 and summary.values == tuple(2 * i for i in range(200))
    for fut in futures:
        record = record_of(fut)
        assert record.attempts == 1 and record.attempt_log[0].outcome == "succeeded"
        assert record.attempt_log[0].started_at is not None
    assert _dev_shm() <= shm


def test_a_door_task_that_kills_its_worker_ends_crashed_once_and_the_pool_goes_on() -> None:
    shm = _dev_shm()
    with Executor(procs=1) as ex:
        for _ in range(50):  # known tiny from now on: sent unannounced, in batches
            assert ex.submit(exit_if, None).result(timeout=10) == 0
        before = adopted(ex)
        fut = ex.submit(exit_if, 7)  # through the door, unannounced
        with pytest.raises(WorkerCrashedError):
            fut.result(timeout=20)
        record = record_of(fut)
        # lost unannounced, it was run again announced (a suspect), and crashed again
        assert record.status == "failed" and record.attempts == 1
        assert record.attempt_log[0].outcome == "crashed"
        assert record.attempt_log[0].exit_code == 7
        assert ex.submit(double, 4).result(timeout=20) == 8  # a replacement serves
        assert adopted(ex) >= before + 1
        summary = ex.run()
    assert (summary.succeeded, summary.failed, summary.total_submitted) == (51, 1, 52)
    assert _dev_shm() <= shm


def test_a_cancel_racing_a_door_task_ends_it_once() -> None:
    shm = _dev_shm()
    with Executor(procs=1) as ex:
        assert ex.submit(double, 1).result(timeout=10) == 2
        for _ in range(20):
            fut = ex.submit(nap, 0.2)  # through the door: the worker may have started it
            fut.cancel()
            with pytest.raises(cf.CancelledError):
                fut.result(timeout=20)
            record = record_of(fut)
            assert record.status == "cancelled" and record.attempts <= 1
            assert ex.submit(double, 3).result(timeout=20) == 6  # the pool goes on
        summary = ex.run()
    assert summary.cancelled == 20 and summary.succeeded == 21
    assert _dev_shm() <= shm


def test_a_timeout_beside_door_tasks_ends_each_task_once() -> None:
    with Executor(procs=2) as ex:
        slow = ex.options(timeout=0.3).submit(nap, 30.0)  # through the supervisor
        quick = [ex.submit(double, i) for i in range(1)]  # the other worker's door
        with pytest.raises(TaskTimeoutError):
            slow.result(timeout=20)
        for i in range(30):  # while the timed-out worker is replaced
            assert ex.submit(double, i).result(timeout=20) == 2 * i
        assert [f.result(timeout=20) for f in quick] == [0]
        summary = ex.run()
    record = record_of(slow)
    assert record.status == "failed" and record.attempts == 1
    assert record.attempt_log[0].outcome == "timed_out"
    assert summary.total_submitted == 32 and summary.succeeded == 31


def test_a_task_sent_through_the_door_to_a_worker_just_killed_runs_on_its_replacement() -> None:
    with Executor(procs=1) as ex:
        for i in range(5):
            assert ex.submit(double, i).result(timeout=20) == 2 * i  # the door is open
            (row,) = ex.stats().workers
            assert row.pid is not None
            os.kill(row.pid, signal.SIGKILL)
            # through the door to the dead worker (or, had its exit been seen first, not)
            fut = ex.submit(double, 10 + i)
            assert fut.result(timeout=20) == 2 * (10 + i)
            record = record_of(fut)
            assert record.status == "succeeded" and record.attempts == 1
        summary = ex.run()
    assert summary.succeeded == 10 and summary.total_submitted == 10
