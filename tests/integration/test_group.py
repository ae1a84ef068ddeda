"""Integration tests of ``group()``, ``TaskGroup`` and ``pmap`` against real workers.

Covers PRODUCT.md section 3 (Submission: ``group(fn, iterable)``, ``group([(fn, *args),
...])``, ``TaskGroup.values/wait/as_completed/cancel``, ``pmap``) and the ``RunSummary`` a
group's ``wait()`` returns (section 4). Tasks are module-level functions, imported by
reference in the workers. Where a task must be *running* at a given moment the tests wait
for a pid file it writes, not for a fixed sleep.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
from process_support import gone, read_written, wait_until

from osiiso_mp import (
    ExecutionError,
    Executor,
    TaskFuture,
    TaskGroup,
    pmap,
)

# --------------------------------------------------------------------------- task functions


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def neg(x: int) -> int:
    return -x


def inverse_sleep(x: int) -> int:
    """Later items finish first: sleep longer for smaller ``x`` (0..4)."""
    time.sleep(0.1 * (5 - x))
    return x * 10


def sleep_return(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def check_positive(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


async def async_double(x: int) -> int:
    return 2 * x


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def pid_then_sleep(pid_file: str, seconds: float) -> int:
    _write_atomic(pid_file, str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def fail_n_times(counter: str, failures: int) -> int:
    """Fail the first ``failures`` calls (counted in the file ``counter``), then succeed."""
    path = Path(counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n <= failures:
        raise ValueError(f"attempt {n} failed")
    return n


def flaky(counter: str) -> int:
    """Fail the first two calls (counted in the file ``counter``), then return the count."""
    return fail_n_times(counter, 2)


# --------------------------------------------------------------------------- helpers


def _warm_up(ex: Executor) -> None:
    """Wait until every worker has started, then keep each busy once (it imports this
    module), so that all are up before the timing-sensitive part. (Tasks alone would not
    do: sent while a worker is still starting, two may run one after the other on
    another.)"""
    wait_until(
        lambda: all(w.state == "idle" for w in ex.stats().workers), "every worker to start", 20
    )
    ex.group(sleep_return, [0.2] * ex.procs).values(timeout=20)


def _read_pid(pid_file: Path) -> int:
    # the task may first wait for its worker to start: a fresh Ray actor took 10-15 s to
    # start and run it on a loaded 2-core machine
    return int(read_written(pid_file, timeout=30))


# --------------------------------------------------------------------------- values()


# local only: five workers at once, where the session's Ray places two
@pytest.mark.timeout(30)
def test_values_in_input_order_not_completion_order() -> None:
    with Executor(procs=5) as ex:
        _warm_up(ex)
        group = ex.group(inverse_sleep, range(5))
        assert isinstance(group, TaskGroup)
        assert len(group) == 5
        assert group.values(timeout=20) == [0, 10, 20, 30, 40]
        assert group.done()
        finished = [cast(Any, f.task_result()).finished_at for f in group]
        assert finished[-1] < finished[0]  # the last item really did finish first


@pytest.mark.timeout(30)
def test_tuple_form_values_in_input_order_each_with_its_own_callable(transport: str) -> None:
    with Executor(procs=3, transport=transport) as ex:
        group = ex.group(
            [
                (sleep_return, 0.3, "slow"),
                (add, 2, 3),
                (square, 7),
                (async_double, 21),
                (neg, 4),
            ]
        )
        assert group.values(timeout=20) == ["slow", 5, 49, 42, -4]
        assert [f.name for f in group.futures] == [
            "sleep_return",
            "add",
            "square",
            "async_double",
            "neg",
        ]


@pytest.mark.timeout(30)
def test_tuple_form_accepts_any_iterable_of_tuples() -> None:
    with Executor(procs=2) as ex:
        group = ex.group((add, i, i) for i in range(4))
        assert group.values(timeout=20) == [0, 2, 4, 6]


@pytest.mark.timeout(30)
def test_values_raises_execution_error_on_a_failure(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        group = ex.group(check_positive, [1, -2, 3])
        with pytest.raises(ExecutionError) as info:
            group.values(timeout=20)
        err = info.value
        assert str(err) == "1 task(s) failed"
        assert len(err.results) == 1
        record = err.results[0]
        assert record.status == "failed"
        assert record.task_id == group.futures[1].task_id
        assert isinstance(record.exception, ValueError)
        assert record.message == "negative: -2"
        assert record.group_id == group.group_id
        # the others still succeeded
        assert group.futures[0].result() == 1 and group.futures[2].result() == 3


@pytest.mark.timeout(60)
def test_values_raises_on_failures_and_cancellations_in_input_order(
    transport: str, tmp_path: Path
) -> None:
    with Executor(procs=1, transport=transport) as ex:
        group = ex.group(
            [
                (check_positive, -1),
                (pid_then_sleep, str(tmp_path / "pid"), 30.0),
                (check_positive, -3),
                (square, 4),
            ]
        )
        _read_pid(tmp_path / "pid")  # the long task is running; the last two are queued
        assert group.futures[1].cancel()
        assert group.futures[2].cancel()
        with pytest.raises(ExecutionError) as info:
            group.values(timeout=20)
        assert str(info.value) == "1 task(s) failed, 2 task(s) cancelled"
        assert [r.status for r in info.value.results] == ["failed", "cancelled", "cancelled"]
        assert [r.task_id for r in info.value.results] == [f.task_id for f in group.futures[:3]]


@pytest.mark.timeout(30)
def test_values_raises_on_cancellation_alone(tmp_path: Path) -> None:
    with Executor(procs=1) as ex:
        group = ex.group([(pid_then_sleep, str(tmp_path / "pid"), 30.0), (square, 3)])
        _read_pid(tmp_path / "pid")
        assert group.futures[0].cancel()
        with pytest.raises(ExecutionError) as info:
            group.values(timeout=20)
        assert str(info.value) == "1 task(s) cancelled"
        assert [r.status for r in info.value.results] == ["cancelled"]
        assert group.futures[1].result(timeout=10) == 9


@pytest.mark.timeout(30)
def test_values_timeout_raises_timeout_error(tmp_path: Path) -> None:
    with Executor(procs=1) as ex:
        group = ex.group([(square, 2), (pid_then_sleep, str(tmp_path / "pid"), 30.0)])
        # the first task done and the second running, whatever the machine's speed: only
        # the second is unfinished when values() times out
        assert group.futures[0].result(timeout=20) == 4
        _read_pid(tmp_path / "pid")
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="did not finish within"):
            group.values(timeout=0.3)
        assert time.monotonic() - start < 5
        assert not group.done()
        assert group.cancel() == 1


# --------------------------------------------------------------------------- wait()


@pytest.mark.timeout(30)
def test_wait_summarises_the_group_in_input_order(transport: str) -> None:
    with Executor(procs=3, transport=transport) as ex:
        other = ex.submit(square, 9)  # not in the group
        group = ex.group(check_positive, [3, -1, 2, 1], group_id="batch-7")
        assert group.group_id == "batch-7"
        summary = group.wait()
        assert not summary.timed_out
        assert summary.total_submitted == 4
        assert (summary.succeeded, summary.failed, summary.cancelled) == (3, 1, 0)
        assert not summary.ok
        assert summary.values == (3, 2, 1)
        assert [r.task_id for r in summary.results] == [f.task_id for f in group]
        assert list(summary.by_group()) == ["batch-7"]
        assert summary.by_group()["batch-7"] == summary.results
        assert summary.procs == 3
        assert summary.respawns == 0
        records = summary.results
        expected = max(r.finished_at for r in records) - min(r.created_at for r in records)
        assert summary.duration == pytest.approx(expected)
        assert summary.duration > 0
        assert other.result(timeout=30) == 81
        # the executor's run() still sees every task, the group's included
        run = ex.run(timeout=20)
        assert run.total_submitted == 5
        assert set(run.by_group()) == {None, "batch-7"}


@pytest.mark.timeout(30)
def test_wait_timeout_leaves_unfinished_tasks_out_and_running(tmp_path: Path) -> None:
    with Executor(procs=2) as ex:
        group = ex.group(
            [
                (square, 2),
                (pid_then_sleep, str(tmp_path / "pid"), 30.0),
                (square, 3),
            ]
        )
        _read_pid(tmp_path / "pid")
        wait_until(lambda: group.futures[0].done() and group.futures[2].done(), "the short tasks")
        summary = group.wait(timeout=0.2)
        assert summary.timed_out
        assert summary.status_word == "TIMED OUT"
        assert [r.task_id for r in summary.results] == [
            group.futures[0].task_id,
            group.futures[2].task_id,
        ]
        assert summary.values == (4, 9)
        # a timed-out wait does not cancel
        long = group.futures[1]
        assert not long.done()
        assert long.status() == "running"
        assert group.cancel() == 1
        assert cast(Any, long.task_result(timeout=10)).status == "cancelled"
        final = group.wait(timeout=10)
        assert not final.timed_out
        assert (final.succeeded, final.cancelled) == (2, 1)


# --------------------------------------------------------------------------- as_completed()


# local only: five workers at once, where the session's Ray places two
@pytest.mark.timeout(30)
def test_as_completed_yields_each_future_once_in_completion_order() -> None:
    with Executor(procs=5) as ex:
        _warm_up(ex)
        group = ex.group(inverse_sleep, range(5))
        seen = list(group.as_completed(timeout=20))
        assert len(seen) == 5
        assert set(seen) == set(group.futures)
        assert all(isinstance(f, TaskFuture) for f in seen)
        assert [f.result() for f in seen] == [40, 30, 20, 10, 0]
        finish = [cast(Any, f.task_result()).finished_at for f in seen]
        assert finish == sorted(finish)
        # once all are done, the order is still the completion order
        again = list(group.as_completed())
        assert again == seen


@pytest.mark.timeout(30)
def test_as_completed_timeout(tmp_path: Path) -> None:
    with Executor(procs=2) as ex:
        _warm_up(ex)  # the 1 s from as_completed() on is not spent starting a worker
        group = ex.group([(square, 5), (pid_then_sleep, str(tmp_path / "pid"), 30.0)])
        it = group.as_completed(timeout=1.0)
        assert next(it) is group.futures[0]
        with pytest.raises(TimeoutError):
            next(it)
        assert group.cancel() == 1


# --------------------------------------------------------------------------- cancel()


@pytest.mark.timeout(60)
def test_cancel_kills_the_running_task_and_cancels_the_queued_ones(
    transport: str, tmp_path: Path
) -> None:
    with Executor(procs=1, transport=transport) as ex:
        group = ex.group(
            [
                (pid_then_sleep, str(tmp_path / "pid"), 30.0),
                (square, 1),
                (square, 2),
                (square, 3),
            ]
        )
        pid = _read_pid(tmp_path / "pid")
        assert group.futures[0].status() == "running"
        assert not group.done()
        start = time.monotonic()
        assert group.cancel() == 4
        assert group.done()
        assert time.monotonic() - start < 10
        records = [f.task_result() for f in group]
        assert [cast(Any, r).status for r in records] == ["cancelled"] * 4
        assert all(f.cancelled() for f in group)
        assert group.cancel() == 0  # nothing left to cancel
        wait_until(lambda: not psutil.pid_exists(pid) or gone(pid), "the worker to die")
        # the worker was replaced: the executor still runs tasks
        assert ex.submit(square, 6).result(timeout=30) == 36
        summary = group.wait(timeout=30)
        assert summary.cancelled == 4 and not summary.timed_out


@pytest.mark.timeout(30)
def test_cancel_counts_only_unfinished_tasks(tmp_path: Path) -> None:
    with Executor(procs=2) as ex:
        group = ex.group([(square, 2), (pid_then_sleep, str(tmp_path / "pid"), 30.0)])
        assert group.futures[0].result(timeout=10) == 4
        _read_pid(tmp_path / "pid")
        assert group.cancel() == 1
        assert [cast(Any, f.task_result()).status for f in group] == ["succeeded", "cancelled"]


# --------------------------------------------------------------------------- options views


@pytest.mark.timeout(30)
def test_group_on_an_options_view_carries_the_options(transport: str, tmp_path: Path) -> None:
    with Executor(procs=2, transport=transport) as ex:
        view = ex.options(retries=2, name="fetch", priority=1, metadata={"k": 1})
        group = view.group(flaky, [str(tmp_path / "a"), str(tmp_path / "b")], group_id=("job", 3))
        assert group.values(timeout=20) == [3, 3]
        for fut in group:
            record = cast(Any, fut.task_result())
            assert record.name == "fetch"
            assert record.attempts == 3
            assert record.priority == 1
            assert record.metadata == {"k": 1}
            assert record.group_id == ("job", 3)
        assert view.task_options.group_id is None  # the view itself is unchanged


@pytest.mark.timeout(30)
def test_fresh_group_ids_are_distinct() -> None:
    with Executor(procs=1) as ex:
        a = ex.group(square, [1])
        b = ex.group([(square, 2)])
        assert isinstance(a.group_id, str) and a.group_id.startswith("group-")
        assert len(a.group_id) == len("group-") + 12
        assert a.group_id != b.group_id
        assert a.values() == [1] and b.values() == [4]
        assert cast(Any, a.futures[0].task_result()).group_id == a.group_id
        assert "TaskGroup" in repr(a) and "1 succeeded" in repr(a)


# --------------------------------------------------------------------------- pmap


@pytest.mark.timeout(30)
def test_pmap_values_in_input_order() -> None:
    assert pmap(inverse_sleep, range(5), procs=5) == [0, 10, 20, 30, 40]


@pytest.mark.timeout(30)
def test_pmap_accepts_options(tmp_path: Path) -> None:
    counters = [str(tmp_path / f"c{i}") for i in range(3)]
    assert pmap(flaky, counters, procs=2, retries=2) == [3, 3, 3]
    with pytest.raises(ExecutionError, match=r"^3 task\(s\) failed$"):
        pmap(flaky, [str(tmp_path / f"d{i}") for i in range(3)], procs=2)


def reciprocal(x: int) -> float:
    return 1 / x


@pytest.mark.timeout(60)
def test_pmap_sends_chunks_and_reports_every_failure() -> None:
    xs = list(range(-5000, 5000))
    assert pmap(square, xs, procs=2) == [x * x for x in xs]
    with pytest.raises(ExecutionError, match=r"^1 task\(s\) failed$") as info:
        pmap(reciprocal, xs, procs=2)
    (record,) = info.value.results
    assert isinstance(record.exception, ZeroDivisionError)
    assert record.attempt_log[0].outcome == "failed"


@pytest.mark.timeout(30)
def test_pmap_rejects_unknown_and_bad_options() -> None:
    with pytest.raises(TypeError):
        pmap(square, [1], procs=1, retires=2)
    with pytest.raises(ValueError):
        pmap(square, [1], procs=1, retries=-1)


# --------------------------------------------------------------------------- edge cases


@pytest.mark.timeout(30)
def test_empty_group() -> None:
    with Executor(procs=1) as ex:
        for group in (ex.group(square, []), ex.group([])):
            assert len(group) == 0
            assert group.futures == ()
            assert group.done()
            assert group.values() == []
            assert list(group.as_completed()) == []
            assert group.cancel() == 0
            summary = group.wait(timeout=1)
            assert summary.total_submitted == 0
            assert summary.duration == 0.0
            assert not summary.timed_out and summary.ok
    assert pmap(square, [], procs=1) == []


@pytest.mark.timeout(30)
def test_bad_inputs_raise_type_error_and_submit_nothing() -> None:
    with Executor(procs=1) as ex:
        bad = cast(Any, ex.group)
        with pytest.raises(TypeError, match="needs an iterable"):
            bad(square)
        with pytest.raises(TypeError, match="must be iterable"):
            bad(square, 5)
        with pytest.raises(TypeError, match="needs a callable first"):
            bad([(square, 1)], [1, 2])
        with pytest.raises(TypeError, match="needs a callable first"):
            bad(5, [1, 2])
        with pytest.raises(TypeError, match="an iterable of"):
            bad(5)
        with pytest.raises(TypeError, match="call 1 must be a tuple"):
            bad([(square, 1), [square, 2]])
        with pytest.raises(TypeError, match="call 2 must be a tuple"):
            bad([(square, 1), (add, 1, 2), (3, 4)])
        with pytest.raises(TypeError, match="call 0 must be a tuple"):
            bad([()])
        with pytest.raises(TypeError, match="group_id must be hashable"):
            ex.group(square, [1], group_id=cast(Any, []))
        with pytest.raises(ValueError, match="task_id"):
            ex.options(task_id="same").group(square, [1, 2])
        assert ex.run(timeout=10).total_submitted == 0


@pytest.mark.timeout(30)
def test_group_takes_the_views_group_id_unless_given_one() -> None:
    with Executor(procs=1) as ex:
        view = ex.options(group_id="nightly")
        assert view.group(abs, [-1, -2]).group_id == "nightly"
        assert view.group(abs, [-3], group_id="adhoc").group_id == "adhoc"
        summary = ex.run()
    assert set(summary.by_group()) == {"adhoc", "nightly"}
    assert [r.value for r in summary.by_group()["nightly"]] == [1, 2]
