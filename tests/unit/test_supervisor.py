"""The real executor and supervisor, driven through a fake transport: no process at all.

The test thread answers for every worker (``fake_transport``): it reads what the supervisor
sends (``link.expect(RunTask)``) and answers as a worker would (``start``, ``succeed``,
``fail``, ``exit``). The tests check behaviour only: futures, records and their attempt
logs, run summaries, the messages sent, the workers killed and the replacements connected;
never how long anything took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import operator
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from process_support import wait_until

from osiiso_mp import (
    AsyncExecutor,
    ClosedError,
    Executor,
    MemoryLimitError,
    OsiisoError,
    TaskFuture,
    TaskResult,
    TaskTimeoutError,
    ValueReleasedError,
    WorkerCrashedError,
)
from osiiso_mp._runtime._clock import boot_id
from osiiso_mp._runtime.protocol._messages import (
    CancelTask,
    Configure,
    InitFailed,
    MemoryExceeded,
    RunTask,
    Stop,
)
from osiiso_mp._runtime.transports import ON_THIS_HOST

from .fake_transport import WAIT, FakeLink, FakeTransport, call_of

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


class Start(Protocol):
    def __call__(
        self,
        procs: int = 1,
        *,
        ready: bool = True,
        transport: FakeTransport | None = None,
        **config: Any,
    ) -> tuple[Executor, FakeTransport]: ...


@pytest.fixture
def start() -> Iterator[Start]:
    """Make an executor on a fake transport (its first workers made ready unless
    ``ready=False``); at the end, shut it down (fake workers obey Stop at once) and check
    that the supervisor tore down."""
    made: list[tuple[Executor, FakeTransport]] = []

    def make(
        procs: int = 1,
        *,
        ready: bool = True,
        transport: FakeTransport | None = None,
        **config: Any,
    ) -> tuple[Executor, FakeTransport]:
        transport = transport or FakeTransport()
        ex = Executor(procs=procs, transport=transport, **config)
        made.append((ex, transport))
        if ready:
            for slot in range(procs):
                transport.link(slot).ready()
        return ex, transport

    yield make
    for ex, transport in made:
        transport.exit_on_stop()
        ex.shutdown(wait=True, kill=True)
        transport.wait_closed()


def record_of(fut: TaskFuture[Any]) -> TaskResult:
    """The task's record, once it has one."""
    record = fut.task_result(timeout=WAIT)
    assert isinstance(record, TaskResult)
    return record


def args_of(run: RunTask) -> Any:
    """The arguments ``run`` carries (for a chunk: its items)."""
    return call_of(run)[1]


def outcomes(record: TaskResult) -> list[str]:
    return [a.outcome for a in record.attempt_log]


def run_status(fut: TaskFuture[Any], status: str) -> None:
    """Wait until the supervisor says ``fut``'s task is in ``status``."""
    wait_until(lambda: fut.status() == status, f"the task to be {status}", WAIT)


async def sleepy(seconds: float) -> str:
    """An async callable (never run here: the fake worker answers for it)."""
    await asyncio.sleep(seconds)
    return "slept"


def _shutdown_in_thread(ex: Executor, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=ex.shutdown, kwargs=kwargs, name="test-shutdown")
    thread.start()
    return thread


# -- a task's round trip -----------------------------------------------------------------------


def test_a_task_goes_to_a_worker_and_its_value_comes_back(start: Start) -> None:
    ex, transport = start(1, ready=False)
    link = transport.link(0)
    configure = link.ready()
    assert configure.worker_id == 0
    assert configure.sys_path is not None  # same host: it takes our sys.path
    fut = ex.submit(abs, -3)
    run = link.expect(RunTask)
    assert call_of(run) == (abs, (-3,), {})
    assert (run.attempt, run.chunk, run.is_async, run.announce) == (1, False, False, True)
    run_status(fut, "queued")  # sent, not started yet
    link.start(run)
    run_status(fut, "running")
    link.succeed(run, 3)
    assert fut.result(timeout=WAIT) == 3
    record = record_of(fut)
    assert record.status == "succeeded" and record.value == 3 and record.attempts == 1
    (attempt,) = record.attempt_log
    assert (attempt.number, attempt.worker, attempt.pid, attempt.outcome, attempt.exit_code) == (
        1,
        0,
        link.pid,
        "succeeded",
        None,
    )
    summary = ex.run()
    assert summary.values == (3,) and summary.respawns == 0
    assert len(transport.links) == 1 and not link.killed


def test_a_finished_task_hands_out_its_futures_record_while_held_then_one_made_anew(
    start: Start,
) -> None:
    # what the executor keeps of a finished task is its record packed as plain tuples,
    # which the cyclic collector soon leaves alone; the future's own record is handed out
    # only for as long as the caller holds the future (identity, as before)
    import gc

    ex, transport = start(1, retain_bytes=1 << 20)
    link = transport.link(0)
    plain = ex.submit(abs, -3)
    link.succeed(link.expect(RunTask), 3)
    stored = ex.submit(list, (1, 2))  # a list is kept serialized (StoredValue)
    link.succeed(link.expect(RunTask), [1, 2])
    for fut in (plain, stored):
        record = record_of(fut)
        assert ex.task_result(fut.task_id) is record  # the future's own, while held
    plain_id, plain_record = plain.task_id, record_of(plain)
    stored_id, stored_record = stored.task_id, record_of(stored)
    ledger = ex._core.sup.ledger
    tasks = ex._core.sup.call(lambda: [ledger.finished[plain_id], ledger.finished[stored_id]])
    assert all(task.record is not None for task in tasks)
    del plain, stored, fut, record
    # dropped (no cycle holds a future): the tasks let go of their futures' records
    assert all(task.record is None for task in tasks)
    again = ex.task_result(plain_id)
    assert again == plain_record and again is not plain_record
    assert ex.task_result(plain_id) is not again  # made on each read, equal each time
    value_again = ex.task_result(stored_id)
    assert value_again == stored_record and value_again.value == [1, 2]
    gc.collect()
    assert not gc.is_tracked(tasks[0].kept)  # the plain one: nothing left to walk
    summary = ex.run()
    assert summary.values == (3, [1, 2])
    assert [r.attempt_log for r in summary.results] == [
        plain_record.attempt_log,
        stored_record.attempt_log,
    ]


def test_a_futures_record_is_made_on_first_read_by_whoever_reads_first(
    start: Start,
) -> None:
    # a settled future's record is not made when the task ends (most futures are only
    # asked for their value) but on first read: the future, a lookup by id, run() or a
    # hook, whichever comes first, make one object, which all of them hand out
    seen: list[TaskResult] = []
    ex, transport = start(1, retain_bytes=1 << 20, on_complete=seen.append)
    link = transport.link(0)
    ledger = ex._core.sup.ledger
    values = [[1], [2], [3]]  # lists: kept serialized, the future's value stays its own
    futs = [ex.submit(list, v) for v in values]
    for v in values:
        link.succeed(link.expect(RunTask), v)
    assert [f.result(timeout=WAIT) for f in futs] == values
    first, second, third = futs
    # the hook asked for them, so they are made: the same objects everyone gets after
    assert [f.task_result() for f in futs] == seen and all(
        f.task_result() is r for f, r in zip(futs, seen, strict=True)
    )
    assert ex.task_result(first.task_id) is seen[0]
    assert seen[1].value is second.result()  # the future's value, not a copy
    del futs, first, second, third
    assert ex.run().values == tuple(values)

    hookless, transport = start(1, retain_bytes=1 << 20)
    link = transport.link(0)
    ledger = hookless._core.sup.ledger
    by_lookup = hookless.submit(list, [4])
    by_future = hookless.submit(list, [5])
    never = hookless.submit(abs, -6)
    for value in ([4], [5], 6):
        link.succeed(link.expect(RunTask), value)
    for settled in (by_lookup, by_future, never):
        settled.exception(timeout=WAIT)
    del settled
    ids = [by_lookup.task_id, by_future.task_id, never.task_id]
    tasks = hookless._core.sup.call(lambda: [ledger.finished[i] for i in ids])
    assert all(t.record is None and t.kept is not None for t in tasks)  # none made yet
    looked_up = hookless.task_result(by_lookup.task_id)
    assert looked_up is not None and looked_up.value is by_lookup.result()
    assert by_lookup.task_result() is looked_up and tasks[0].record is looked_up
    own = by_future.task_result()
    assert own is not None and own.value is by_future.result()
    assert hookless.task_result(by_future.task_id) is own and tasks[1].record is own
    assert never.result() == 6 and tasks[2].record is None  # only its value was read
    summary = hookless.run()
    assert summary.results[0] is looked_up and summary.results[1] is own
    assert summary.results[2] is never.task_result()  # (made by run(), then the future's)
    del looked_up, own, summary
    del by_lookup, by_future, never
    assert all(t.record is None for t in tasks)  # the futures let go of their records
    again = hookless.task_result(ids[0])
    assert again is not None and again.value == [4]


def test_threads_reading_a_record_first_at_once_get_one_object(start: Start) -> None:
    ex, transport = start(1, retain_bytes=1 << 20)
    link = transport.link(0)
    futs = [ex.submit(list, [i]) for i in range(20)]
    for i in range(20):
        link.succeed(link.expect(RunTask), [i])
    wait_until(lambda: all(f.done() for f in futs), "settled")
    got: list[list[TaskResult | None]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)

    def read(k: int) -> None:
        barrier.wait()
        for f in futs:  # two threads ask the future, two look the id up
            got[k].append(f.task_result() if k % 2 else ex.task_result(f.task_id))

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, f in enumerate(futs):
        mine = f.task_result()
        assert mine is not None and mine.value is f.result() and mine.value == [i]
        assert all(g[i] is mine for g in got)


def test_a_released_value_leaves_the_futures_record_whole(start: Start) -> None:
    # a value kept as it is goes from the kept record when the budget lets go of it; the
    # future's record, made after, still has it (it is the future's value)
    ex, transport = start(1, retain_bytes=0)  # nothing kept: released at once
    link = transport.link(0)
    fut = ex.submit(abs, -7)
    link.succeed(link.expect(RunTask), 7)
    assert fut.result(timeout=WAIT) == 7
    looked_up = ex.task_result(fut.task_id)
    assert looked_up is not None
    with pytest.raises(ValueReleasedError):
        looked_up.value  # noqa: B018
    own = fut.task_result()
    assert own is not None and own.value == 7 and own is not looked_up


def test_a_worker_on_another_host_gets_no_local_setup_and_its_clock_is_mapped(
    start: Start,
) -> None:
    remote = dataclasses.replace(
        ON_THIS_HOST,  # as a local worker, but for its exit code
        same_host=False,
        shared_memory=False,
        one_clock=False,
        local_pids=False,
        process_groups=False,
    )
    ex, transport = start(1, ready=False, transport=FakeTransport(remote))
    link = transport.link(0)
    link.clock_offset = -1000.0  # its perf_counter() reads 1000 s behind ours
    configure = link.ready()
    assert (configure.parent_pid, configure.sys_path, configure.cwd) == (None, None, None)
    assert not configure.whole_env and configure.inherited == ()
    assert not set(dict(configure.env)) & set(os.environ)  # none of our environment
    fut = ex.submit(abs, -3)
    run = link.expect(RunTask)
    before = time.perf_counter()
    link.start(run)
    link.succeed(run, 3)
    assert fut.result(timeout=WAIT) == 3
    (attempt,) = record_of(fut).attempt_log
    # its readings were moved onto our clock (by what WorkerReady said its clock read)
    assert attempt.started_at is not None and before <= attempt.started_at
    assert attempt.started_at < before + 500 and attempt.finished_at < before + 500


REMOTE = dataclasses.replace(ON_THIS_HOST, same_host=False, shared_memory=False, one_clock=False)


@pytest.mark.parametrize(
    ("boot", "behind", "mapped"),
    [
        ("ours", 0.0, False),  # a worker of this kernel: its clock is ours, as read
        ("ours", 1000.0, True),  # this kernel, another time namespace: mapped
        ("another", 0.0, True),  # another host's kernel: mapped, even when near ours
        ("", 0.0, True),  # a worker that cannot say: mapped
    ],
)
def test_a_worker_of_a_transport_without_one_clock_is_mapped_unless_it_shares_ours(
    start: Start, boot: str, behind: float, mapped: bool
) -> None:
    ex, transport = start(1, ready=False, transport=FakeTransport(REMOTE))
    link = transport.link(0)
    # its reading in WorkerReady is 20 ms behind ours as it arrives, as a slow delivery
    # of the hand-shake would make it look (plus ``behind``)
    link.clock_offset = -behind - 0.02
    link.ready(boot=boot_id() if boot == "ours" else boot)
    fut = ex.submit(abs, -3)
    run = link.expect(RunTask)
    started = link.start(run)
    link.succeed(run, 3)
    assert fut.result(timeout=WAIT) == 3
    (attempt,) = record_of(fut).attempt_log
    assert attempt.started_at is not None
    if mapped:  # moved by what WorkerReady's reading was behind ours as it arrived
        assert started + behind + 0.02 <= attempt.started_at < started + behind + 0.5
    else:  # exactly as the worker read it
        assert attempt.started_at == started


# -- retries ----------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_after_its_backoff_and_the_log_keeps_every_attempt(
    start: Start,
) -> None:
    ex, transport = start(1, retries=2, retry_delay=0.3, backoff=2.0)
    link = transport.link(0)
    fut = ex.submit(abs, -5)
    for number, delay in ((1, 0.3), (2, 0.6)):  # retry k waits retry_delay * backoff**(k-1)
        run = link.expect(RunTask)
        assert run.attempt == number and args_of(run) == (-5,)
        before = time.time()
        link.fail(run, ValueError(f"attempt {number}"))
        run_status(fut, "scheduled")  # waiting out the backoff, on no worker
        seen = time.time()
        info = ex.info(fut.task_id)
        assert info is not None and info.status == "scheduled" and info.tries == number
        assert info.scheduled_at is not None
        assert int((before + delay) * 1000) <= info.scheduled_at <= int((seen + delay) * 1000)
        stats = ex.stats()
        assert stats.scheduled == 1 and stats.running == 0 and ex.queue_size() == 1
    run = link.expect(RunTask)
    assert run.attempt == 3
    link.succeed(run, 5)
    assert fut.result(timeout=WAIT) == 5
    record = record_of(fut)
    assert record.attempts == 3
    assert outcomes(record) == ["failed", "failed", "succeeded"]
    assert [a.number for a in record.attempt_log] == [1, 2, 3]
    assert [a.error for a in record.attempt_log] == [
        "ValueError: attempt 1",
        "ValueError: attempt 2",
        "",
    ]
    assert len(transport.links) == 1  # a task's own failure costs no worker
    assert ex.run().telemetry.retries == 2


def test_when_the_retries_are_spent_the_last_error_is_the_tasks(start: Start) -> None:
    ex, transport = start(1, retries=1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    link.fail(link.expect(RunTask), ValueError("first"))
    run = link.expect(RunTask)
    assert run.attempt == 2
    link.fail(run, KeyError("second"))
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, KeyError) and exc.args == ("second",)
    record = record_of(fut)
    assert record.status == "failed" and outcomes(record) == ["failed", "failed"]
    assert len(link.sent(RunTask)) == 2


def test_cancelling_a_task_waiting_out_its_backoff_ends_it_there(start: Start) -> None:
    ex, transport = start(1, retries=3, retry_delay=30.0)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    link.fail(link.expect(RunTask), ValueError("first"))
    run_status(fut, "scheduled")
    assert fut.cancel()
    record = record_of(fut)
    assert record.status == "cancelled" and outcomes(record) == ["failed"]
    assert ex.queue_size() == 0 and ex.stats().scheduled == 0
    later = ex.submit(abs, -2)  # the next task is the next thing the worker is sent
    link.perform(link.expect(RunTask))
    assert later.result(timeout=WAIT) == 2
    assert [args_of(r) for r in link.sent(RunTask)] == [(-1,), (-2,)]


# -- timeouts ---------------------------------------------------------------------------------


def test_a_sync_task_past_its_timeout_is_killed_with_its_worker_which_is_replaced(
    start: Start,
) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.options(timeout=0.2).submit(abs, -1)
    run = link.expect(RunTask)
    assert run.timeout is None and run.announce  # the supervisor times sync tasks itself
    link.start(run)
    link.wait_killed()
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, TaskTimeoutError) and exc.timeout == 0.2 and exc.killed
    record = record_of(fut)
    assert record.status == "failed"
    (attempt,) = record.attempt_log
    assert (attempt.outcome, attempt.exit_code, attempt.pid) == ("timed_out", -9, link.pid)
    replacement = transport.link(1)
    assert replacement.slot == 0
    # what the killed worker still says is not heard: the record stands
    link.succeed(run, 1)
    wait_until(lambda: bool(link.dropped), "the late result to be dropped", WAIT)
    assert record_of(fut).status == "failed"
    replacement.ready()
    after = ex.submit(abs, -2)
    replacement.perform(replacement.expect(RunTask))
    assert after.result(timeout=WAIT) == 2
    assert ex.stats().workers[0].restarts == 1
    summary = ex.run()
    assert [r.status for r in summary.results] == ["failed", "succeeded"]
    assert summary.respawns == 1 and summary.telemetry.timeouts == 1


def test_an_async_task_timed_out_inside_its_worker_keeps_the_worker(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.options(timeout=0.5).submit(sleepy, 10)
    run = link.expect(RunTask)
    assert run.is_async and run.timeout == 0.5  # the worker enforces it
    link.start(run)
    link.fail(run, TaskTimeoutError(0.5, killed=False), outcome="timed_out")
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, TaskTimeoutError) and not exc.killed
    assert exc.task_id == fut.task_id  # named by the supervisor
    assert outcomes(record_of(fut)) == ["timed_out"]
    assert not link.killed and len(transport.links) == 1


# -- cancellation -----------------------------------------------------------------------------


def test_cancelling_a_queued_task_never_sends_it(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    first = ex.submit(abs, -1)
    queued = ex.submit(abs, -2)
    run = link.expect(RunTask)
    assert args_of(run) == (-1,)
    run_status(queued, "queued")
    assert queued.cancel()
    assert queued.cancelled()
    record = record_of(queued)
    assert record.status == "cancelled" and record.attempts == 0 and record.attempt_log == ()
    assert record.message == "cancelled by the caller"
    link.perform(run)
    assert first.result(timeout=WAIT) == 1
    later = ex.submit(abs, -3)
    link.perform(link.expect(RunTask))
    assert later.result(timeout=WAIT) == 3
    assert [args_of(r) for r in link.sent(RunTask)] == [(-1,), (-3,)]
    assert link.sent(CancelTask) == []  # the worker never had it: nothing to tell
    assert not link.killed and len(transport.links) == 1


def test_cancelling_a_running_task_kills_its_worker_which_is_replaced(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)
    link.start(run)
    run_status(fut, "running")
    assert fut.cancel()
    link.wait_killed()
    record = record_of(fut)
    assert record.status == "cancelled" and record.message == "cancelled by the caller"
    (attempt,) = record.attempt_log
    assert (attempt.outcome, attempt.exit_code, attempt.pid) == ("cancelled", -9, link.pid)
    replacement = transport.link(1)
    assert replacement.slot == 0
    replacement.ready()
    after = ex.submit(abs, -2)
    replacement.perform(replacement.expect(RunTask))
    assert after.result(timeout=WAIT) == 2
    assert not replacement.killed


def _warm(ex: Executor, link: FakeLink) -> None:
    """Run one ``abs`` task: the supervisor then knows it is tiny, and sends the next
    ones ahead, unannounced, several to a worker."""
    fut = ex.submit(abs, 0)
    link.perform(link.expect(RunTask))
    assert fut.result(timeout=WAIT) == 0


def test_cancelling_a_task_sent_ahead_tells_the_worker_to_drop_it(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    _warm(ex, link)
    first = ex.submit(abs, -1)
    ahead = ex.submit(abs, -2)
    run_first, run_ahead = link.expect_runs(2)  # both held by the worker at once
    assert not run_first.announce and not run_ahead.announce
    assert ahead.cancel()
    cancel = link.expect(CancelTask)
    assert cancel.seq == run_ahead.seq
    assert record_of(ahead).status == "cancelled"
    link.perform(run_first)
    link.dropped_unstarted(run_ahead)  # the worker's answer to CancelTask: ignored
    assert first.result(timeout=WAIT) == 1
    assert record_of(ahead).attempts == 0
    later = ex.submit(abs, -3)
    link.perform(link.expect(RunTask))
    assert later.result(timeout=WAIT) == 3
    assert not link.killed and len(transport.links) == 1


def test_in_one_dispatch_a_worker_sent_a_callable_of_unknown_length_gets_nothing_ahead(
    start: Start,
) -> None:
    """What a worker holds is looked at again once it is sent a callable it did not hold,
    within one pass over the queue too: behind one of unknown length, no task is sent
    ahead to it unless it overtakes what waits there."""
    ex, transport = start(1)
    link = transport.link(0)
    _warm(ex, link)  # abs: known tiny
    sup = ex._core.sup
    held = ex.options(priority=5).submit(abs, -1)
    (run_held,) = link.expect_runs(1)
    entered, gate = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        gate.wait(WAIT)

    holding = threading.Thread(target=sup.call, args=(hold,))
    holding.start()  # the supervisor waits: the next three are queued, then sent in one go
    assert entered.wait(WAIT)
    short = ex.options(priority=3).submit(abs, -2)
    unknown = ex.options(priority=4).submit(pow, 2, 3)  # overtakes run_held
    behind = ex.options(priority=5).submit(abs, -4)  # does not: it waits here
    gate.set()
    holding.join()
    run_short, run_unknown = link.expect_runs(2)
    assert (call_of(run_short)[1], call_of(run_unknown)[1]) == ((-2,), (2, 3))
    assert sup.call(lambda: behind._task is not None and behind._task.worker is None)
    for run in (run_short, run_unknown, run_held):
        link.perform(run)
    link.perform(link.expect(RunTask))
    assert [f.result(timeout=WAIT) for f in (held, short, unknown, behind)] == [1, 2, 8, 4]


def test_a_cancelled_task_that_started_anyway_is_stopped_with_its_worker(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)  # sent, not started
    run_status(fut, "queued")
    assert fut.cancel()
    link.expect(CancelTask)
    link.start(run)  # it had started before the CancelTask reached it
    link.wait_killed()
    assert record_of(fut).status == "cancelled"
    assert transport.link(1).slot == 0


# -- crashes ----------------------------------------------------------------------------------


def test_a_worker_that_dies_running_a_task_fails_it_with_its_exit_code(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)
    link.start(run)
    link.exit(3)
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, WorkerCrashedError) and exc.exit_code == 3
    (attempt,) = record_of(fut).attempt_log
    assert (attempt.outcome, attempt.exit_code, attempt.pid) == ("crashed", 3, link.pid)
    assert not link.killed
    assert transport.link(1).slot == 0
    assert ex.run().telemetry.crashes == 1


def test_a_crashed_attempt_is_retried_on_the_replacement_worker(start: Start) -> None:
    ex, transport = start(1, retries=1)
    link = transport.link(0)
    fut = ex.submit(abs, -7)
    run = link.expect(RunTask)
    link.start(run)
    link.exit(3)
    replacement = transport.link(1)
    assert replacement.slot == 0
    replacement.ready()
    retry = replacement.expect(RunTask)
    assert retry.attempt == 2 and args_of(retry) == (-7,)
    replacement.perform(retry)
    assert fut.result(timeout=WAIT) == 7
    record = record_of(fut)
    assert outcomes(record) == ["crashed", "succeeded"]
    assert [a.exit_code for a in record.attempt_log] == [3, None]
    assert [a.pid for a in record.attempt_log] == [link.pid, replacement.pid]
    assert [a.worker for a in record.attempt_log] == [0, 0]
    assert ex.run().respawns == 1


def test_tasks_only_sent_to_a_worker_that_died_go_back_without_an_attempt(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    _warm(ex, link)
    futs = [ex.submit(abs, -1), ex.submit(abs, -2)]
    held = link.expect_runs(2)
    assert not any(r.announce for r in held)  # tiny: sent ahead, run unannounced
    link.exit(3)  # before it started either
    replacement = transport.link(1)
    replacement.ready()
    again = replacement.expect_runs(2)
    # either could have been the one that killed it, unseen: from now on each is announced
    assert all(r.announce and r.attempt == 1 for r in again)
    assert sorted(args_of(r) for r in again) == [(-2,), (-1,)]
    for run in again:
        replacement.perform(run)
    assert [f.result(timeout=WAIT) for f in futs] == [1, 2]
    for fut in futs:
        (attempt,) = record_of(fut).attempt_log
        assert (attempt.outcome, attempt.pid) == ("succeeded", replacement.pid)


# -- the memory cap ---------------------------------------------------------------------------


def test_a_worker_above_max_rss_is_killed_and_its_running_task_fails(start: Start) -> None:
    ex, transport = start(1, max_rss=100 * MiB)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)
    link.start(run)
    run_status(fut, "running")
    link.rss_value = 200 * MiB  # the supervisor samples it every 100 ms
    link.wait_killed()
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, MemoryLimitError)
    assert (exc.limit, exc.rss) == (100 * MiB, 200 * MiB)
    (attempt,) = record_of(fut).attempt_log
    assert (attempt.outcome, attempt.exit_code, attempt.peak_rss) == (
        "memory_exceeded",
        -9,
        200 * MiB,
    )
    replacement = transport.link(1)
    assert replacement.slot == 0
    replacement.ready()
    after = ex.submit(abs, -2)
    replacement.perform(replacement.expect(RunTask))
    assert after.result(timeout=WAIT) == 2
    assert not replacement.killed
    assert ex.run().telemetry.memory_exceeded == 1


def test_a_worker_that_reports_itself_above_max_rss_is_replaced_and_its_task_requeued(
    start: Start,
) -> None:
    ex, transport = start(1, max_rss=100 * MiB)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)
    link.reply(MemoryExceeded(150 * MiB))  # found above the cap before starting it
    link.wait_killed()
    replacement = transport.link(1)
    replacement.ready()
    again = replacement.expect(RunTask)
    assert again.attempt == 1 and again.seq == run.seq
    replacement.perform(again)
    assert fut.result(timeout=WAIT) == 1
    (attempt,) = record_of(fut).attempt_log  # it never started on the first worker
    assert attempt.pid == replacement.pid


# -- map chunks -------------------------------------------------------------------------------


def test_a_chunk_lost_with_its_worker_is_run_again_item_by_item(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    values = ex.map(abs, [-1, -2, -3, -4], chunksize=4)
    run = link.expect(RunTask)
    assert run.chunk and run.announce
    assert args_of(run) == ((-1,), (-2,), (-3,), (-4,))
    link.start(run)
    link.exit(3)
    replacement = transport.link(1)
    assert replacement.slot == 0
    replacement.ready()
    seen = []
    for _ in range(4):
        item = replacement.expect(RunTask)
        assert not item.chunk and item.announce and item.attempt == 1
        seen.append(args_of(item))
        replacement.perform(item)
    assert sorted(seen) == [(-4,), (-3,), (-2,), (-1,)]
    assert list(values) == [1, 2, 3, 4]
    summary = ex.run()
    assert summary.values == (1, 2, 3, 4)
    assert [r.status for r in summary.results] == ["succeeded"] * 4
    ids = [r.task_id for r in summary.results]
    assert len(set(ids)) == 4 and len({i[:-4] for i in ids}) == 1  # one prefix, four items
    for record in summary.results:
        (attempt,) = record.attempt_log
        assert (attempt.outcome, attempt.pid) == ("succeeded", replacement.pid)
    assert summary.respawns == 1


def test_the_item_that_crashes_its_worker_again_fails_alone(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    values = ex.map(abs, [-1, -2, -3], chunksize=3)
    run = link.expect(RunTask)
    link.start(run)
    link.exit(3)
    worker = transport.link(1)
    worker.ready()
    index = 1
    for _ in range(3):
        item = worker.expect(RunTask)
        if args_of(item) == (-2,):  # the culprit: it kills this worker too
            worker.start(item)
            worker.exit(3)
            index += 1
            worker = transport.link(index)
            worker.ready()
        else:
            worker.perform(item)
    assert next(values) == 1
    with pytest.raises(WorkerCrashedError) as info:
        next(values)
    assert info.value.exit_code == 3
    summary = ex.run()
    assert [r.status for r in summary.results] == ["succeeded", "failed", "succeeded"]
    culprit = summary.results[1]
    assert outcomes(culprit) == ["crashed"] and culprit.attempt_log[0].exit_code == 3
    assert summary.values == (1, 3)  # the values of the tasks that succeeded


def test_a_failed_item_leaves_its_chunk_and_is_retried_alone(start: Start) -> None:
    ex, transport = start(1, retries=1)
    link = transport.link(0)
    values = ex.map(abs, [-1, -2, -3], chunksize=3)
    run = link.expect(RunTask)
    assert run.chunk
    link.finish_chunk(run, [1, None, 3], {1: ValueError("item 1")})
    retry = link.expect(RunTask)
    assert not retry.chunk and retry.attempt == 2 and args_of(retry) == (-2,)
    link.perform(retry)
    assert list(values) == [1, 2, 3]
    summary = ex.run()
    assert [r.attempts for r in summary.results] == [1, 2, 1]
    assert outcomes(summary.results[1]) == ["failed", "succeeded"]
    assert summary.results[1].attempt_log[0].error == "ValueError: item 1"


# -- fail_first -------------------------------------------------------------------------------


def test_fail_first_cancels_the_running_and_queued_tasks_but_must_complete_ones(
    start: Start,
) -> None:
    ex, transport = start(2, fail_policy="fail_first")
    first, second = transport.link(0), transport.link(1)
    failing = ex.submit(abs, -1)
    running = ex.submit(abs, -2)
    queued = ex.submit(abs, -3)
    kept = ex.options(must_complete=True).submit(abs, -4)
    run_a, run_b = first.expect(RunTask), second.expect(RunTask)
    assert (args_of(run_a), args_of(run_b)) == ((-1,), (-2,))
    first.start(run_a)
    second.start(run_b)
    run_status(running, "running")
    first.fail(run_a, ValueError("boom"))
    assert isinstance(failing.exception(timeout=WAIT), ValueError)
    second.wait_killed()  # running the other task
    reason = "cancelled: fail_first after task 'abs' failed"
    for fut in (running, queued):
        record = record_of(fut)
        assert record.status == "cancelled" and record.message == reason
    assert outcomes(record_of(running)) == ["cancelled"]
    assert record_of(queued).attempts == 0
    run_d = first.expect(RunTask)  # must_complete: it still runs
    assert args_of(run_d) == (-4,)
    first.perform(run_d)
    assert kept.result(timeout=WAIT) == 4
    summary = ex.run()
    assert [r.status for r in summary.results] == ["failed", "cancelled", "cancelled", "succeeded"]
    assert [args_of(r) for r in first.sent(RunTask)] == [(-1,), (-4,)]
    assert [args_of(r) for r in second.sent(RunTask)] == [(-2,)]
    assert not first.killed
    assert transport.link(2).slot == 1  # the killed worker is replaced


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_sends_stop_and_returns_once_the_worker_exited(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    stopping = _shutdown_in_thread(ex, wait=True)
    link.expect(Stop)
    assert stopping.is_alive(), "shutdown(wait=True) returned before the worker exited"
    link.exit(0)
    stopping.join(WAIT)
    assert not stopping.is_alive()
    assert not link.killed and link.exit_code == 0
    assert transport.closed and len(transport.links) == 1  # no replacement at shutdown
    with pytest.raises(ClosedError):
        ex.submit(abs, -1)


def test_shutdown_lets_the_running_task_finish_before_stop(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)
    link.start(run)
    ex.shutdown(wait=False)
    assert ex.stats().running == 1  # the shutdown is under way (commands run in order)
    assert link.sent(Stop) == []
    stopping = _shutdown_in_thread(ex, wait=True)
    link.succeed(run, 1)
    link.expect(Stop)
    link.exit(0)
    stopping.join(WAIT)
    assert not stopping.is_alive()
    assert fut.result(timeout=0) == 1
    assert type(link.messages[-1]) is Stop and not link.killed


def test_shutdown_cancel_futures_cancels_the_queued_tasks_but_must_complete_ones(
    start: Start,
) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    running = ex.submit(abs, -1)
    queued = ex.submit(abs, -2)
    kept = ex.options(must_complete=True).submit(abs, -3)
    run = link.expect(RunTask)
    link.start(run)
    ex.shutdown(wait=False, cancel_futures=True)
    record = record_of(queued)
    assert record.status == "cancelled" and record.message == "cancelled by shutdown"
    link.succeed(run, 1)
    assert running.result(timeout=WAIT) == 1
    run_kept = link.expect(RunTask)
    assert args_of(run_kept) == (-3,)
    link.perform(run_kept)
    assert kept.result(timeout=WAIT) == 3
    link.expect(Stop)
    link.exit(0)
    transport.wait_closed()
    assert [args_of(r) for r in link.sent(RunTask)] == [(-1,), (-3,)]
    assert not link.killed


def test_shutdown_kill_kills_the_running_tasks_and_cancels_the_rest(start: Start) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    running = ex.submit(abs, -1)
    queued = ex.options(must_complete=True).submit(abs, -2)
    run = link.expect(RunTask)
    link.start(run)
    run_status(running, "running")
    ex.shutdown(wait=True, kill=True)  # returns once the killed worker's exit is seen
    assert link.killed and link.exit_code == -9
    reason = "cancelled by a forced shutdown"
    record = record_of(running)
    assert record.status == "cancelled" and record.message == reason
    (attempt,) = record.attempt_log
    assert (attempt.outcome, attempt.exit_code) == ("cancelled", -9)
    record = record_of(queued)
    assert record.status == "cancelled" and record.attempts == 0
    assert link.sent(Stop) == [] and len(link.sent(RunTask)) == 1
    assert transport.closed and len(transport.links) == 1


def test_a_worker_retires_after_max_tasks_per_worker_and_is_replaced(start: Start) -> None:
    ex, transport = start(1, max_tasks_per_worker=1)
    link = transport.link(0)
    first, second = ex.submit(abs, -1), ex.submit(abs, -2)
    run = link.expect(RunTask)
    link.expect(Stop)  # sent with its last task: it finishes what it holds, then exits
    link.perform(run)
    assert first.result(timeout=WAIT) == 1
    link.exit(0)
    replacement = transport.link(1)
    assert replacement.slot == 0
    replacement.ready()
    run = replacement.expect(RunTask)
    assert args_of(run) == (-2,)
    replacement.expect(Stop)
    replacement.perform(run)
    assert second.result(timeout=WAIT) == 2
    assert len(link.sent(RunTask)) == 1 and not link.killed
    assert ex.stats().workers[0].restarts == 1


# -- workers that cannot start ----------------------------------------------------------------


def test_a_transport_that_cannot_start_a_worker_breaks_the_executor() -> None:
    transport = FakeTransport()
    transport.connect_error = OSError("no room for a worker")
    ex = Executor(procs=1, transport=transport)
    try:
        ex.stats()  # answered after the supervisor tried to start its workers
        why = "the executor is broken: could not start a worker process: no room for a worker"
        with pytest.raises(ClosedError, match=why):
            ex.submit(abs, -1)
        assert transport.links == []
    finally:
        ex.shutdown(wait=True)
    transport.wait_closed()


def test_an_initializer_failing_three_times_in_a_row_breaks_the_executor(start: Start) -> None:
    ex, transport = start(1, ready=False)
    fut = ex.submit(abs, -1)
    for index in range(3):  # each replacement fails the same way
        link = transport.link(index)
        assert link.slot == 0
        link.expect(Configure)
        link.reply(InitFailed("RuntimeError: no database", "Traceback: ..."))
        link.exit(1)
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, OsiisoError)
    assert "worker setup failed 3 times in a row: RuntimeError: no database" in str(exc)
    with pytest.raises(ClosedError, match="the executor is broken"):
        ex.submit(abs, -2)
    assert len(transport.links) == 3  # no fourth try
    assert all(not link.sent(RunTask) for link in transport.links)


def test_workers_exiting_before_they_are_ready_break_the_executor(start: Start) -> None:
    # no InitFailed: the process just ends while starting (os._exit in an initializer, a
    # segfault on import); replacing it for ever would leave every task waiting
    ex, transport = start(2, ready=False)
    fut = ex.submit(abs, -1)
    for index in range(3):  # the two first workers, then one replacement
        link = transport.link(index)
        link.expect(Configure)
        link.exit(-11)
    exc = fut.exception(timeout=WAIT)
    assert isinstance(exc, OsiisoError)
    assert "workers exited before they were ready 3 times in a row" in str(exc)
    assert "(the last: killed by SIGSEGV)" in str(exc)
    with pytest.raises(ClosedError, match="the executor is broken"):
        ex.submit(abs, -2)
    started = len(transport.links)  # (a replacement may have been on its way already)
    time.sleep(0.3)
    assert len(transport.links) == started <= 4


def test_a_worker_that_gets_ready_resets_the_count_of_early_exits(start: Start) -> None:
    ex, transport = start(1, ready=False)
    for index in (0, 1):  # two early exits...
        transport.link(index).exit(1)
    transport.link(2).ready()  # ... then a worker that starts: the count begins again
    transport.link(2).exit(-9)  # (its crash after it was ready is no start's failure)
    for index in (3, 4):  # two more early exits: still below three in a row
        transport.link(index).exit(1)
    link = transport.link(5)
    link.ready()
    fut = ex.submit(abs, -3)
    link.expect(RunTask)  # the task goes to the worker that started: nothing broke
    assert not fut.done()
    assert ex._core.sup.broken is None


def test_messages_from_a_worker_are_heard_until_it_exits(start: Start) -> None:
    # a result the worker sent just before it died still counts (delivered before the exit)
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    run = link.expect(RunTask)
    link.succeed(run, 1)
    link.exit(3)
    assert fut.result(timeout=WAIT) == 1
    assert outcomes(record_of(fut)) == ["succeeded"]
    assert transport.link(1).slot == 0


def test_shutdown_cancel_futures_cancels_a_task_requeued_after_its_worker_died(
    start: Start,
) -> None:
    ex, transport = start(1)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    link.expect(RunTask)
    link.exit(3)  # before it started: the task goes back to the queue, no attempt made
    replacement = transport.link(1)  # not ready yet: the task waits, queued
    run_status(fut, "queued")
    ex.shutdown(wait=False, cancel_futures=True)
    ex.stats()  # answered after the shutdown command was handled
    assert fut.cancelled(), "a queued task survived shutdown(cancel_futures=True)"
    assert replacement.sent(RunTask) == []


def test_each_task_goes_to_the_first_idle_worker_and_a_busy_one_gets_none_ahead(
    start: Start,
) -> None:
    """An idle worker takes any task (whatever it is, it may hold one), the first idle one
    in slot order; a worker running a callable of unknown length is sent nothing ahead."""
    ex, transport = start(3)
    links = [transport.link(i) for i in range(3)]
    futures = [ex.submit(pow, 2, k) for k in range(3)]  # pow: never seen, length unknown
    runs = [link.expect_runs(1)[0] for link in links]  # one each, in slot order
    assert [call_of(run)[1] for run in runs] == [(2, 0), (2, 1), (2, 2)]
    waiting = ex.submit(pow, 2, 3)  # every worker holds one of unknown length: it waits
    sup = ex._core.sup
    assert sup.call(lambda: waiting._task is not None and waiting._task.worker is None)
    links[1].perform(runs[1])  # slot 1 is idle again: it takes the waiting task
    (again,) = links[1].expect_runs(1)
    assert call_of(again)[1] == (2, 3)
    for link, run in ((links[0], runs[0]), (links[2], runs[2]), (links[1], again)):
        link.perform(run)
    assert [f.result(timeout=WAIT) for f in (*futures, waiting)] == [1, 2, 4, 8]
    assert [len(link.sent(RunTask)) for link in links] == [1, 2, 1]
    assert [link.frames for link in links] == [1, 2, 1]  # plain payloads: framed directly
    # each link a dispatch sent to was promised a flush, and got it before the turn ended
    assert sup.call(lambda: [link.flush_promised for link in links]) == [False] * 3
    assert all(link.flushes for link in links)


def test_shutdown_does_not_hold_the_core_lock_while_it_flushes_parked_tasks() -> None:
    """``max_pending`` on the async facade parks tasks; a task that finishes frees its
    slot by taking the admission's lock, then posting the oldest parked task. Shutdown
    flushes the parked tasks under that same lock: it must not hold the core's lock
    meanwhile (it did, and a slot freed at the same moment, which took the core's lock
    under the admission's, deadlocked both threads)."""
    transport = FakeTransport()
    ex = AsyncExecutor(procs=1, transport=transport, max_pending=1)
    link = transport.link(0)
    link.ready()
    core = ex._core
    admission = core.admission
    assert admission is not None
    running = ex.submit(abs, -1)
    parked = ex.submit(abs, -2)  # no slot free: parked, not yet sent to the supervisor
    (run,) = link.expect_runs(1)
    assert parked.status() == "queued" and parked._parked_in is admission
    with admission._lock:  # where a freed slot holds it
        stopping = threading.Thread(target=core.shutdown, kwargs={"wait": False})
        stopping.start()
        time.sleep(0.2)  # shutdown is now waiting for the admission's lock
        took = core.lock.acquire(timeout=2)  # what free_slot's next step once took
        if took:
            core.lock.release()
    stopping.join(WAIT)
    assert took, "shutdown held the core's lock while it waited for the admission's"
    assert not stopping.is_alive()
    link.perform(run)
    (run_parked,) = link.expect_runs(1)  # a graceful shutdown runs what was parked
    link.perform(run_parked)
    assert (running.result(timeout=WAIT), parked.result(timeout=WAIT)) == (1, 2)
    transport.exit_on_stop()
    core.shutdown(wait=True)
    transport.wait_closed()


# -- the supervisor's wake-up descriptor -------------------------------------------------------


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_posts_from_many_threads_at_once_each_wake_the_supervisor_in_time(
    start: Start, busy: bool
) -> None:
    # Every post appends to the inbox and wakes the loop unless a wake-up is pending: by
    # its wake-up descriptor while the supervisor holds no unfinished task, else by
    # call_soon_threadsafe (busy: a task is held running). A lost wake-up would leave a
    # caller waiting here (until the timeout).
    ex, transport = start(1)
    sup = ex._core.sup
    link = transport.link(0)
    if busy:
        fut = ex.submit(abs, -1)
        run = link.expect(RunTask)
        link.start(run)
    answers: list[list[int]] = [[] for _ in range(8)]

    def caller(k: int) -> None:
        for i in range(200):
            answers[k].append(sup.call(functools.partial(operator.mul, i, 2), timeout=WAIT))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads), "a post was never handled"
    assert answers == [[i * 2 for i in range(200)]] * 8
    if busy:
        assert sup.call(lambda: len(sup.ledger.tasks)) == 1  # it held the task throughout
        link.succeed(run, 1)
        assert fut.result(timeout=WAIT) == 1


@pytest.mark.parametrize("kind", ["eventfd", "pipe"])
def test_the_wake_descriptors_are_non_blocking_and_closed_on_exec(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from osiiso_mp._runtime.supervisor._actor import _WAKE, _wake_fds

    if kind == "pipe":
        monkeypatch.delattr(os, "eventfd", raising=False)  # as on macOS
    elif not hasattr(os, "eventfd"):
        pytest.skip("no eventfd on this platform")  # pragma: no cover - Linux has one
    r, w = _wake_fds()
    try:
        assert (r == w) is (kind == "eventfd")
        for fd in {r, w}:
            assert not os.get_blocking(fd) and not os.get_inheritable(fd)
        with pytest.raises(BlockingIOError):
            os.read(r, 4096)  # nothing written: no wake-up, and no blocking
        os.write(w, _WAKE)
        os.write(w, _WAKE)
        assert os.read(r, 4096)  # both wake-ups, in one read
        with pytest.raises(BlockingIOError):
            os.read(r, 4096)
    finally:
        for fd in {r, w}:
            os.close(fd)


def test_the_wake_descriptors_are_closed_when_the_supervisor_stops(start: Start) -> None:
    ex, transport = start(1)
    sup = ex._core.sup
    fds = {sup._wake_r, sup._wake_w}
    identities = {fd: (os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in fds}
    transport.exit_on_stop()
    ex.shutdown(wait=True)
    assert not sup.alive
    for fd, identity in identities.items():
        try:
            now = os.fstat(fd)
        except OSError:
            continue  # closed
        assert (now.st_dev, now.st_ino) != identity, f"descriptor {fd} is still open"
    with pytest.raises(ClosedError):
        ex.submit(int)
