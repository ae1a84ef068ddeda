"""The door (``_runtime.supervisor._door``): a plain task submitted while a worker is idle
is written to it by the caller's thread and adopted by the supervisor later. These tests
run the real executor and supervisor on a fake transport whose links take such writes
(``FakeTransport(direct=True)``): what went through the door, and that every task still
ends with exactly one record whatever races it (a cancel, a crash, a query, a shutdown)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from process_support import wait_until

from osiiso_mp import Executor, TaskFuture, TaskResult
from osiiso_mp._runtime.protocol._messages import CancelTask, RunTask, Stop
from osiiso_mp._runtime.supervisor._door import plain
from osiiso_mp._task_options import TaskOptions

from .fake_transport import WAIT, FakeLink, FakeTransport, call_of

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def made() -> Iterator[list[tuple[Executor, FakeTransport]]]:
    """Executors to shut down at the end (fake workers obey Stop at once)."""
    made: list[tuple[Executor, FakeTransport]] = []
    yield made
    for ex, transport in made:
        transport.exit_on_stop()
        ex.shutdown(wait=True, kill=True)
        transport.wait_closed()


def start(
    made: list[tuple[Executor, FakeTransport]], procs: int = 1, **config: Any
) -> tuple[Executor, FakeTransport]:
    transport = FakeTransport(direct=True)
    ex = Executor(procs=procs, transport=transport, **config)
    made.append((ex, transport))
    for slot in range(procs):
        transport.link(slot).ready()
    return ex, transport


def start_open(made: list[tuple[Executor, FakeTransport]]) -> tuple[Executor, FakeLink]:
    """One worker, ready, with the supervisor's door open to it: ``(executor, its link)``."""
    ex, transport = start(made)
    link = transport.link(0)
    assert door_open(ex)
    return ex, link


def door_open(ex: Executor) -> bool:
    """Whether the supervisor has opened its door (asked on its own thread)."""
    doors = ex._core.sup.doors
    return bool(ex._core.sup.call(lambda: doors.door.worker is not None, timeout=WAIT))


def adopted(ex: Executor) -> int:
    doors = ex._core.sup.doors
    return int(ex._core.sup.call(lambda: doors.adopted, timeout=WAIT))


def record_of(fut: TaskFuture[Any]) -> TaskResult:
    record = fut.task_result(timeout=WAIT)
    assert isinstance(record, TaskResult)
    return record


def test_a_plain_task_goes_through_the_door_and_ends_with_one_record(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, link = start_open(made)
    fut = ex.submit(abs, -3)
    run = link.expect(RunTask)
    assert link.direct_writes == 1  # written by this thread, not the supervisor's
    assert call_of(run) == (abs, (-3,), {})
    assert (run.attempt, run.is_async, run.timeout, run.chunk) == (1, False, None, False)
    assert run.announce  # abs's duration is unknown yet
    assert fut.status() == "queued"  # a query drains the inbox: the task is adopted first
    link.succeed(run, 3)
    assert fut.result(timeout=WAIT) == 3
    record = record_of(fut)
    assert (record.status, record.value, record.attempts) == ("succeeded", 3, 1)
    assert record.attempt_log[0].worker == 0 and record.attempt_log[0].pid == link.pid
    assert adopted(ex) == 1
    summary = ex.run()
    assert summary.values == (3,) and summary.succeeded == 1


def test_the_supervisor_adopts_a_door_task_while_the_worker_runs_it(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, link = start_open(made)
    doors = ex._core.sup.doors
    fut = ex.submit(abs, -4)
    run = link.expect(RunTask)
    # no reply, no query: the caller's wake-up alone has the supervisor take it in (read
    # from this thread, racily, so as to post nothing that would drain the inbox)
    wait_until(lambda: doors.adopted == 1, "the door's task to be adopted", WAIT)
    assert doors.door.taken is None
    link.succeed(run, 4)
    assert fut.result(timeout=WAIT) == 4


def test_the_door_is_open_again_when_the_caller_wakes_to_its_result(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, link = start_open(made)
    door = ex._core.sup.doors.door
    at_settle: list[bool] = []
    for i in range(20):
        fut = ex.submit(abs, -i)
        # as the future is settled (on the supervisor's thread), is the door open already?
        fut.add_done_callback(lambda _: at_settle.append(door.worker is not None))
        link.succeed(link.expect(RunTask), i)
        assert fut.result(timeout=WAIT) == i
    assert at_settle == [True] * 20
    assert link.direct_writes == 20


def test_the_door_lets_one_task_through_then_stays_shut_while_the_worker_is_busy(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, link = start_open(made)
    first = ex.submit(abs, -1)
    second = ex.submit(abs, -2)  # the door is taken: through the supervisor
    run = link.expect(RunTask)
    assert call_of(run)[1] == (-1,) and link.direct_writes == 1
    assert second.status() == "queued"  # (abs's length unknown: not sent ahead)
    assert not door_open(ex)  # its worker holds a task, and one is queued
    link.succeed(run, 1)
    run = link.expect(RunTask)
    assert call_of(run)[1] == (-2,) and link.direct_writes == 1
    assert not door_open(ex)  # its worker holds a task
    link.succeed(run, 2)
    assert (first.result(timeout=WAIT), second.result(timeout=WAIT)) == (1, 2)
    assert door_open(ex)  # it holds nothing again
    third = ex.submit(abs, -3)
    link.succeed(link.expect(RunTask), 3)
    assert third.result(timeout=WAIT) == 3
    assert link.direct_writes == 2 and adopted(ex) == 2


@pytest.mark.parametrize(
    "submit",
    [
        pytest.param(lambda ex: ex.options(timeout=5.0).submit(abs, -1), id="timeout"),
        pytest.param(lambda ex: ex.options(task_id="mine").submit(abs, -1), id="task_id"),
        pytest.param(lambda ex: ex.options(delay=0.01).submit(abs, -1), id="delay"),
        pytest.param(lambda ex: ex.submit(abs, b"x" * (64 << 10)), id="large"),
        pytest.param(lambda ex: list(ex.map(abs, [-1])), id="map"),
    ],
)
def test_tasks_whose_start_the_supervisor_decides_never_go_through_the_door(
    made: list[tuple[Executor, FakeTransport]], submit: Any
) -> None:
    ex, link = start_open(made)
    done = threading.Thread(target=submit, args=(ex,))
    done.start()
    run = link.expect(RunTask)
    if run.chunk:
        link.finish_chunk(run, [1])
    else:
        link.succeed(run, 1)
    done.join(WAIT)
    assert not done.is_alive()
    assert link.direct_writes == 0 and adopted(ex) == 0


@pytest.mark.parametrize(
    "config",
    [
        {"rate": 1000.0},
        {"max_tasks_per_worker": 5},
        {"max_pending": 10},
        {"on_complete": lambda fut: None},
    ],
    ids=["rate", "max_tasks_per_worker", "max_pending", "hook"],
)
def test_executors_whose_policies_need_every_start_have_no_door(
    made: list[tuple[Executor, FakeTransport]], config: dict[str, Any]
) -> None:
    ex, transport = start(made, **config)
    link = transport.link(0)
    fut = ex.submit(abs, -1)
    link.succeed(link.expect(RunTask), 1)
    assert fut.result(timeout=WAIT) == 1
    assert not door_open(ex)
    assert link.direct_writes == 0


def test_a_cancel_right_after_a_task_went_through_the_door_ends_it_once(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, link = start_open(made)
    fut = ex.submit(abs, -1)
    assert fut.cancel()  # posted after the take: the supervisor adopts the task first
    run = link.expect(RunTask)
    cancel = link.expect(CancelTask)  # the worker holds it: told to drop it
    assert cancel.seq == run.seq and link.direct_writes == 1
    link.dropped_unstarted(run)
    with pytest.raises(cf.CancelledError):
        fut.result(timeout=WAIT)
    record = record_of(fut)
    assert record.status == "cancelled" and record.attempts == 0
    assert ex.run().cancelled == 1


def test_a_worker_that_dies_before_the_supervisor_adopted_its_door_task_loses_nothing(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, transport = start(made)
    link = transport.link(0)
    assert door_open(ex)
    fut = ex.submit(abs, -5)
    link.expect(RunTask)
    link.exit(-9)  # the supervisor learns of the task from its exit, and requeues it
    again = transport.link(1)
    again.ready()
    run = again.expect(RunTask)
    assert call_of(run)[1] == (-5,) and run.announce  # suspect: announced from now on
    again.succeed(run, 5)
    assert fut.result(timeout=WAIT) == 5
    record = record_of(fut)
    assert (record.status, record.attempts) == ("succeeded", 1)  # the lost send: no attempt
    assert record.attempt_log[0].pid == again.pid
    assert adopted(ex) == 1


def test_a_door_task_running_when_its_worker_crashes_ends_crashed_once(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, transport = start(made)
    link = transport.link(0)
    fut: TaskFuture[Any] = ex.submit(os._exit, 3)
    run = link.expect(RunTask)
    link.start(run)  # its TaskStarted: the supervisor adopts the task as it reads it
    link.exit(3)
    transport.link(1).ready()
    with pytest.raises(Exception) as caught:
        fut.result(timeout=WAIT)
    assert "exit" in str(caught.value).lower() or "crash" in str(caught.value).lower()
    record = record_of(fut)
    assert record.status == "failed" and record.attempts == 1
    assert record.attempt_log[0].outcome == "crashed"


def test_shutdown_right_after_a_task_went_through_the_door_waits_for_it(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, link = start_open(made)
    fut = ex.submit(abs, -7)
    run = link.expect(RunTask)
    stopping = threading.Thread(target=ex.shutdown, kwargs={"wait": True})
    stopping.start()
    link.succeed(run, 7)
    link.expect(Stop)
    link.exit(0)
    stopping.join(WAIT)
    assert not stopping.is_alive()
    assert fut.result(timeout=0) == 7 and record_of(fut).status == "succeeded"


def test_tasks_from_many_threads_through_and_around_the_door_each_end_once(
    made: list[tuple[Executor, FakeTransport]],
) -> None:
    ex, transport = start(made, procs=2)
    links = [transport.link(0), transport.link(1)]
    stop = threading.Event()

    def answer() -> None:  # both fake workers, answering whatever they are sent
        seen = [0, 0]
        while not stop.is_set():
            for i, link in enumerate(links):
                runs = link.sent(RunTask)
                for run in runs[seen[i] :]:
                    link.succeed(run, abs(call_of(run)[1][0]))
                seen[i] = len(runs)
            stop.wait(0.001)

    answering = threading.Thread(target=answer)
    answering.start()
    futures: list[list[TaskFuture[Any]]] = [[] for _ in range(6)]

    def submit(i: int) -> None:
        for n in range(100):
            fut = ex.submit(abs, -(i * 1000 + n))
            futures[i].append(fut)
            if n % 3 == 0:
                fut.result(timeout=WAIT)  # one at a time now and then: the door opens

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 4)
    try:
        for i, futs in enumerate(futures):
            assert [f.result(timeout=WAIT) for f in futs] == [i * 1000 + n for n in range(100)]
    finally:
        stop.set()
        answering.join(WAIT)
    summary = ex.run()
    assert summary.succeeded == 600 and summary.total_submitted == 600
    sent = sum(len(link.sent(RunTask)) for link in links)
    assert sent == 600  # each sent once, through the door or not
    through = sum(link.direct_writes for link in links)
    assert through == adopted(ex) and through > 0


def test_plain_options_are_those_whose_start_needs_no_decision() -> None:
    base = TaskOptions()
    assert plain(base)
    assert plain(dataclasses.replace(base, priority=0, retries=3, name="n", must_complete=True))
    for change in ({"timeout": 1.0}, {"task_id": "x"}, {"delay": 0.5}, {"run_at": 1e9}):
        assert not plain(dataclasses.replace(base, **change)), change
