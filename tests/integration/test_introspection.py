"""Introspection by handle and by id, retention, live stats and worker log forwarding."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from process_support import read_written, wait_until

from osiiso_mp import Executor, PoolStats


def hold(gate: str, started: str) -> int:
    """Write our pid to ``started``, then wait until ``gate`` exists; return the pid."""
    Path(started).write_text(str(os.getpid()))
    while not os.path.exists(gate):
        time.sleep(0.01)
    return os.getpid()


def fail_once(marker: str) -> str:
    """Fail on the first attempt, succeed on the next."""
    if not os.path.exists(marker):
        Path(marker).touch()
        raise RuntimeError("first attempt fails")
    return "ok"


def log_things(value: int) -> int:
    """Log at several levels inside a worker."""
    log = logging.getLogger("osiiso_test.worker")
    log.info("info from task %d", value)
    log.warning("warning from task %d", value)
    try:
        raise KeyError("inner")
    except KeyError:
        log.exception("exception from task %d", value)
    return value


@pytest.mark.timeout(30)
def test_status_and_info_through_a_tasks_life(transport: str, tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with Executor(procs=1, transport=transport) as ex:
        blocker = ex.submit(hold, str(gate), str(started))
        queued = ex.options(name="second").submit(abs, -3)
        pid = int(read_written(started))
        # the start is reported as the task begins: the supervisor may read it a moment after
        # the task has written its file
        wait_until(lambda: blocker.status() == "running", "the start to be reported")
        assert blocker.status() == "running" == ex.status(blocker.task_id)
        assert queued.status() == "queued" == ex.status(queued.task_id)
        info = ex.info(blocker.task_id)
        assert info is not None and info.status == "running" and info.worker_pid == pid
        assert info.fn_name == "hold" and info.args == (str(gate), str(started))
        assert info.tries == 1 and info.enqueue_time <= time.time() * 1000  # the running one
        queued_info = queued.info()
        assert queued_info is not None and queued_info.status == "queued"
        assert queued_info.worker_pid is None and queued_info.name == "second"
        assert ex.queue_size() == 1
        gate.touch()
        assert blocker.result(timeout=30) == pid and queued.result(timeout=30) == 3
        assert ex.status(blocker.task_id) == "complete" == blocker.status()
        assert blocker.info() is None and ex.info(blocker.task_id) is None
        assert ex.queue_size() == 0
        assert ex.status("no-such-id") == "not_found"


@pytest.mark.timeout(30)
def test_scheduled_while_delayed_and_during_retry_backoff(tmp_path: Path) -> None:
    with Executor(procs=1) as ex:
        delayed = ex.options(delay=0.5).submit(abs, -1)
        assert ex.status(delayed.task_id) == "scheduled"
        assert ex.queue_size() == 1
        flaky = ex.options(retries=1, retry_delay=0.8).submit(fail_once, str(tmp_path / "m"))
        deadline = time.monotonic() + 5
        while flaky.status() != "scheduled":  # its first attempt failed: backing off
            assert time.monotonic() < deadline
            time.sleep(0.01)
        info = flaky.info()
        assert info is not None and info.tries == 1 and info.scheduled_at is not None
        assert info.scheduled_at > time.time() * 1000
        assert flaky.result(timeout=10) == "ok" and delayed.result(timeout=10) == 1


@pytest.mark.timeout(30)
def test_task_result_by_id_with_and_without_timeout(transport: str, tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.submit(hold, str(gate), str(started))
        read_written(started)
        assert ex.task_result(fut.task_id) is None
        with pytest.raises(TimeoutError):
            ex.task_result(fut.task_id, timeout=0.2)
        gate.touch()
        record = ex.task_result(fut.task_id, timeout=30)
        assert record is not None and record.status == "succeeded"
        assert ex.task_result(fut.task_id) is record is fut.task_result()
        assert ex.task_result("no-such-id") is None


@pytest.mark.timeout(30)
def test_records_age_out_after_result_ttl() -> None:
    # (a ttl of a second: the lookups just after the task ended must come before it)
    ex = Executor(procs=1, result_ttl=1.0)
    try:
        fut = ex.submit(abs, -5)
        assert fut.result(timeout=10) == 5
        assert ex.status(fut.task_id) == "complete"
        assert ex.task_result(fut.task_id) is not None
        time.sleep(1.2)
        assert ex.status(fut.task_id) == "not_found"
        assert ex.task_result(fut.task_id) is None
        assert fut.task_result() is not None  # the handle keeps its own record
    finally:
        ex.shutdown()
    # lookups still answer after shutdown, from what was retained
    assert ex.status(fut.task_id) == "not_found"


@pytest.mark.timeout(30)
def test_expired_records_and_chunks_are_let_go_not_only_hidden() -> None:
    # lookups hide an expired record at once; the supervisor drops it (and an expired map
    # chunk) from memory when the next task finishes after its expiry
    # (a ttl of a second: the map and the first look must come before it)
    ex = Executor(procs=1, result_ttl=1.0)
    try:
        first = ex.submit(abs, -1)
        assert first.result(timeout=10) == 1
        assert list(ex.map(abs, [-1, -2, -3], chunksize=3)) == [1, 2, 3]
        sup = ex._core.sup
        held = sup.call(lambda: (list(sup.ledger.finished), len(sup.ledger.kept_chunks)))
        assert held == ([first.task_id], 1)
        time.sleep(1.2)
        second = ex.submit(abs, -2)
        assert second.result(timeout=10) == 2
        held = sup.call(lambda: (list(sup.ledger.finished), len(sup.ledger.kept_chunks)))
        assert held == ([second.task_id], 0)
    finally:
        ex.shutdown()


@pytest.mark.timeout(30)
def test_lookups_after_shutdown_use_the_retained_records() -> None:
    with Executor(procs=1) as ex:
        fut = ex.submit(abs, -2)
    assert ex.status(fut.task_id) == "complete"
    record = ex.task_result(fut.task_id)
    assert record is not None and record.value == 2
    assert ex.queue_size() == 0


@pytest.mark.timeout(30)
def test_stats_during_a_run(transport: str, tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with Executor(procs=2, transport=transport) as ex:
        ex.submit(abs, 1).result(timeout=30)
        running = ex.submit(hold, str(gate), str(started))
        pid = int(read_written(started))
        wait_until(lambda: running.status() == "running", "the start to be reported")
        ex.options(delay=30).submit(abs, 2)
        stats = ex.stats()
        assert isinstance(stats, PoolStats)
        assert len(stats.workers) == 2
        busy = [w for w in stats.workers if w.pid == pid]
        assert len(busy) == 1 and busy[0].state == "busy"
        assert busy[0].current == (running.task_id,)
        assert busy[0].rss > 1 << 20 and busy[0].restarts == 0
        assert (stats.running, stats.scheduled, stats.completed) == (1, 1, 1)
        assert {w.state for w in stats.workers if w.pid != pid} <= {"idle", "starting"}
        time.sleep(0.2)
        again = ex.stats()  # CPU is measured between two calls
        assert all(w.cpu_percent >= 0.0 for w in again.workers)
        gate.touch()
        running.result(timeout=30)
        ex.shutdown(cancel_futures=True)
    assert sum(w.tasks_done for w in stats.workers) >= 1


async def log_from_a_thread_too(n: int) -> int:
    """Log ``n`` records from a thread of the task's own while the task (on the worker's
    event loop) logs ``n`` of its own between awaits; then log from a thread while the
    loop waits with nothing else to do."""
    import asyncio
    import threading

    log = logging.getLogger("osiiso_test.threads")

    def from_thread(tag: str, count: int) -> None:
        for i in range(count):
            log.warning("%s %d", tag, i)

    thread = threading.Thread(target=from_thread, args=("thread", n))
    thread.start()
    for i in range(n):
        log.warning("loop %d", i)
        if i % 10 == 0:
            await asyncio.sleep(0)
    while thread.is_alive():
        await asyncio.sleep(0.001)
    late = threading.Thread(target=from_thread, args=("idle", 1))
    late.start()
    await asyncio.sleep(60)  # the loop waits (the caller cancels): the record must not
    return n


def log_from_a_thread_then_return(n: int) -> int:
    """A sync task whose own thread logs ``n`` records before the task returns."""
    import threading

    log = logging.getLogger("osiiso_test.threads")

    def from_thread() -> None:
        for i in range(n):
            log.warning("sync %d", i)

    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join()
    return n


@pytest.mark.timeout(30)
def test_worker_log_records_reach_the_parent_with_the_task_id(
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # before the executor: workers forward from this level
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.submit(log_things, 7)
        assert fut.result(timeout=30) == 7
    records = [r for r in caplog.records if r.name == "osiiso_test.worker"]
    assert [r.getMessage() for r in records] == [
        "info from task 7",
        "warning from task 7",
        "exception from task 7",
    ]
    for record in records:
        assert record.task_id == fut.task_id  # type: ignore[attr-defined]
        assert record.task_name == "log_things"  # type: ignore[attr-defined]
        assert record.worker == 0  # type: ignore[attr-defined]
        assert record.process != os.getpid() and record.funcName == "log_things"
    assert records[2].exc_text is not None and "KeyError: 'inner'" in records[2].exc_text


@pytest.mark.timeout(60)
def test_records_logged_from_a_tasks_own_threads_all_reach_the_parent(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread of a task's own logs through the worker's handler as the task does: every
    record arrives, whole, and the worker goes on; one logged while the worker's loop
    waits arrives while it still waits, not at its next wake-up; those of a sync task's
    thread arrive ahead of the task's result."""
    caplog.set_level(logging.WARNING)
    n = 2000
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.submit(log_from_a_thread_too, n)
        deadline = time.monotonic() + 20
        while not any(r.getMessage() == "idle 0" for r in caplog.records):
            assert time.monotonic() < deadline, "the record waited for the loop"
            time.sleep(0.01)
        assert not fut.done()
        assert fut.cancel()  # (an async attempt: cancelled inside its worker)
        assert ex.submit(log_from_a_thread_then_return, 50).result(timeout=30) == 50
        # a sync task's threads' records go out ahead of its result: here already
        synced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync")]
        assert synced == [f"sync {i}" for i in range(50)]
        record = fut.task_result()
        assert record is not None and record.status == "cancelled"
        assert ex.stats().workers[0].restarts == 0  # the worker went on
    messages = [r.getMessage() for r in caplog.records if r.name == "osiiso_test.threads"]
    for tag, count in (("loop", n), ("thread", n), ("idle", 1), ("sync", 50)):
        mine = [m for m in messages if m.split()[0] == tag]
        assert mine == [f"{tag} {i}" for i in range(count)], tag


@pytest.mark.timeout(30)
def test_worker_logs_below_the_parents_level_are_not_forwarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with Executor(procs=1) as ex:
        ex.submit(log_things, 1).result(timeout=10)
    messages = [r.getMessage() for r in caplog.records if r.name == "osiiso_test.worker"]
    assert messages == ["warning from task 1", "exception from task 1"]


@pytest.mark.timeout(60)
def test_an_unsummarised_batch_keeps_bounded_memory() -> None:
    with Executor(procs=2, result_ttl=0) as ex:  # finished records may go at once
        for _ in range(11):
            for f in [ex.submit(abs, -i) for i in range(1000)]:
                f.result(timeout=30)
        assert len(ex._core.batch.entries) < 10_000  # the batch was pruned when it reached 10,000
        summary = ex.run()
    assert 0 < summary.total_submitted < 11_000
    assert summary.succeeded == summary.total_submitted
