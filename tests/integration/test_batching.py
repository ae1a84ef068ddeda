"""Batching of known-tiny tasks, with real workers.

Once a callable is known to take well under a millisecond, its tasks (sync, no timeout) are
sent unannounced: the worker runs them back to back for up to 1 ms and sends their starts
and results in one write. Each must still get exactly one record with its own outcome, and
a crash in the middle of a batch must be put down to the task that caused it.

A callable known to be short (under 50 ms) but not tiny is announced, and a worker running
one is sent one more: a cancel or a better task that comes meanwhile still counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from osiiso_mp import Executor, WorkerCrashedError
from osiiso_mp._runtime._policy import TINY as _TINY

pytestmark = pytest.mark.timeout(60)


def tiny(i: int, fail_every: int = 0, crash_at: int = -1) -> int:
    if i == crash_at:
        os._exit(3)
    if fail_every and i % fail_every == 0:
        raise ValueError(f"item {i}")
    return i * 2


def _warm(ex: Executor) -> None:
    """Run enough tasks that ``tiny`` is known to be tiny: the next ones are batched."""
    for fut in [ex.submit(tiny, i) for i in range(100)]:
        fut.result(timeout=30)
    estimate = ex._core.sup.call(lambda: ex._core.sup.dispatch.estimates.estimate("tiny"))
    assert estimate is not None and estimate < _TINY  # the batched path is the one tested
    ex.run()  # start the batch under test afresh


def test_every_batched_task_gets_its_own_record(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        _warm(ex)
        futs = [ex.submit(tiny, i) for i in range(3000)]
        assert [f.result(timeout=30) for f in futs] == [i * 2 for i in range(3000)]
        summary = ex.run()
    assert summary.total_submitted == 3000 and summary.succeeded == 3000
    assert sorted(summary.values) == [i * 2 for i in range(3000)]
    for record in summary.results:
        (attempt,) = record.attempt_log
        assert attempt.outcome == "succeeded"
        assert attempt.started_at is not None and attempt.started_at <= attempt.finished_at


def test_a_failure_inside_a_batch_stays_with_its_task(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        _warm(ex)
        futs = [ex.submit(tiny, i, 7) for i in range(1, 701)]
        for i, fut in enumerate(futs, start=1):
            if i % 7 == 0:
                with pytest.raises(ValueError, match=f"item {i}$"):
                    fut.result(timeout=30)
            else:
                assert fut.result(timeout=30) == i * 2
        summary = ex.run()
    assert (summary.succeeded, summary.failed) == (600, 100)


def test_a_crash_inside_a_batch_is_put_down_to_its_task_without_a_respawn_storm() -> None:
    with Executor(procs=1) as ex:
        _warm(ex)
        futs = [ex.submit(tiny, i, 0, 20) for i in range(40)]
        for i, fut in enumerate(futs):
            if i == 20:
                with pytest.raises(WorkerCrashedError, match="exit code 3"):
                    fut.result(timeout=30)
            else:
                assert fut.result(timeout=30) == i * 2
        summary = ex.run()
        (worker,) = ex.stats().workers
    assert (summary.succeeded, summary.failed) == (39, 1)
    (failed,) = summary.errors
    assert [a.outcome for a in failed.attempt_log] == ["crashed"]
    assert failed.attempt_log[0].exit_code == 3
    # the first crash cannot be told apart from the rest of its batch, which is requeued
    # unattempted; the crash is then put down to the task: two replacements, not dozens
    assert worker.restarts <= 2


def test_cancelling_batched_tasks_gives_each_one_record(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        _warm(ex)
        futs = [ex.submit(tiny, i) for i in range(2000)]
        cancelled = [f for f in futs[1000:] if f.cancel()]
        summary = ex.run()
    assert summary.total_submitted == 2000
    assert summary.cancelled == len(cancelled)
    assert summary.succeeded == 2000 - len(cancelled)
    assert all(f.result(timeout=1) == i * 2 for i, f in enumerate(futs) if not f.cancelled())


def test_batched_tasks_send_no_start_but_keep_their_start_times() -> None:
    # unannounced tasks get no TaskStarted: their start comes with their result
    with Executor(procs=2) as ex:
        _warm(ex)
        futs = [ex.submit(tiny, i) for i in range(500)]
        for fut in futs:
            fut.result(timeout=30)
        summary = ex.run()
    for record in summary.results:
        (attempt,) = record.attempt_log
        assert attempt.started_at is not None and record.started_at == attempt.started_at
        assert record.created_at <= attempt.started_at <= attempt.finished_at


def test_an_on_start_hook_sees_every_start_of_a_tiny_callable() -> None:
    started: list[str] = []
    with Executor(procs=2, on_start=lambda fut: started.append(fut.task_id)) as ex:
        _warm(ex)
        started.clear()
        futs = [ex.submit(tiny, i) for i in range(300)]
        for fut in futs:
            fut.result(timeout=30)
        ex.run()
    assert sorted(started) == sorted(f.task_id for f in futs)


# -- tasks sent ahead behind announced ones ------------------------------------------------


def nap(seconds: float, marker: str = "", gate: str = "") -> float:
    """Sleep; leave ``marker`` (a path) behind when given, to show that it ran. With a
    ``gate`` (a path), wait until it exists first (at most 20 s)."""
    deadline = time.monotonic() + 20
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.005)
    time.sleep(seconds)
    if marker:
        with open(marker, "w") as f:
            f.write("ran")
    return seconds


def _known_medium(ex: Executor) -> None:
    """Make ``nap`` known to take about 10 ms: announced (not tiny), yet short enough that a
    worker is sent one more behind the one it runs. The first call also imports this module
    in the worker (a slow first attempt where bytecode is not cached): nap until the
    moving estimate has come down well under the 50 ms line."""
    deadline = time.monotonic() + 20
    while True:
        ex.submit(nap, 0.01).result(timeout=30)
        estimate = ex._core.sup.call(lambda: ex._core.sup.dispatch.estimates.estimate("nap"))
        if estimate is not None and _TINY < estimate < 0.025:
            return
        assert time.monotonic() < deadline, f"nap's estimate stays at {estimate}"


def test_a_task_sent_ahead_is_cancelled_before_it_starts(transport: str, tmp_path: Path) -> None:
    # B waits in the worker behind A; cancelling B while A runs must stop it from ever
    # starting (the worker reads the cancel before it goes on), and the worker goes on
    marker, gate = tmp_path / "b-ran", tmp_path / "gate"
    with Executor(procs=1, transport=transport) as ex:
        _known_medium(ex)
        # A runs until the gate opens, after the cancel: B cannot start first, however
        # slowly this thread (or A's start reaching it) goes
        a = ex.submit(nap, 0.0, "", str(gate))
        b = ex.submit(nap, 0.01, str(marker))
        deadline = time.monotonic() + 10
        while a.status() != "running" or not ex._core.sup.call(
            lambda: b._task is not None and b._task.worker is not None
        ):
            assert time.monotonic() < deadline, "B was not sent ahead behind A"
            time.sleep(0.005)
        assert b.cancel()
        gate.touch()
        assert a.result(timeout=30) == 0.0
        assert b.cancelled()
        record = b.task_result()
        assert record is not None and record.status == "cancelled"
        assert ex.submit(nap, 0.01).result(timeout=30) == 0.01  # the worker goes on
        assert not marker.exists()


def test_a_better_task_overtakes_one_sent_ahead(tmp_path: Path) -> None:
    # B (priority 5) waits in the worker behind A; D (priority 1) comes later and is sent
    # there too: when A ends, D starts before B
    gate = tmp_path / "gate"
    with Executor(procs=1) as ex:
        _known_medium(ex)
        a = ex.submit(nap, 0.0, "", str(gate))  # runs until D is there too
        b = ex.options(priority=5).submit(nap, 0.01)
        while a.status() != "running":
            time.sleep(0.005)
        d = ex.options(priority=1).submit(nap, 0.01)
        deadline = time.monotonic() + 10
        while not ex._core.sup.call(lambda: d._task is not None and d._task.worker is not None):
            assert time.monotonic() < deadline, "D was not sent ahead behind A"
            time.sleep(0.005)
        gate.touch()
        for fut in (a, b, d):
            fut.result(timeout=30)
        rb, rd = b.task_result(), d.task_result()
        assert rb is not None and rd is not None
        assert rb.started_at is not None and rd.started_at is not None
        assert rd.started_at < rb.started_at


def test_an_announced_result_is_out_before_a_task_sent_ahead_crashes_the_worker() -> None:
    # A (announced) runs with B (known-tiny, so unannounced) sent ahead behind it; B kills
    # the worker. A's result must have left before B ran: A succeeds, the crash is B's.
    with Executor(procs=1) as ex:
        _warm(ex)
        _known_medium(ex)
        a = ex.submit(nap, 0.3)
        while a.status() != "running":
            time.sleep(0.005)
        b = ex.submit(tiny, 7, 0, 7)
        assert a.result(timeout=30) == 0.3
        with pytest.raises(WorkerCrashedError):
            b.result(timeout=30)
        assert ex.submit(tiny, 1).result(timeout=30) == 2
