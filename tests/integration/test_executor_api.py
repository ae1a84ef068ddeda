"""Integration tests of the public Executor API against real worker processes.

Covers PRODUCT.md sections 3 (public API), 4 (records, ``display()``) and 6 (every task ends
with exactly one ``TaskResult``): the ``concurrent.futures`` drop-in surface, lambdas and
closures (also from a ``__main__`` script with no guard), ``async def`` tasks, priorities,
the ``TaskFuture`` introspection, task options, ``run()``, the context manager and
``shutdown()``.

Nothing here is mocked. Tasks are module-level functions (imported by reference in the
workers, which see this process's ``sys.path``) or lambdas and closures (pickled by value).
Where a test needs a task to be *running* or *queued* at a given moment it uses gate files
in ``tmp_path`` rather than sleeps, so the tests do not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import itertools
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
from process_support import gone, read_written, wait_until

from osiiso_mp import (
    ClosedError,
    ExecutionError,
    Executor,
    OsiisoError,
    TaskFuture,
    TaskInfo,
    TaskOptions,
    TaskResult,
)

SCRIPTS = Path(__file__).parent / "scripts"
BAR = "-" * 40
DURATION_LINE = re.compile(r"  Duration    : \d+\.\d{3}s")

# --------------------------------------------------------------------------- task functions
# Module-level, so that workers import them by reference from this module.

_WORKER_STATE: dict[str, str] = {}
_INIT_ENV = "OSIISO_MP_TEST_INIT_VALUE"


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def sleep_return(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def raise_error(exc_type: type[Exception], message: str) -> None:
    raise exc_type(message)


def check_positive(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


def get_pid() -> int:
    return os.getpid()


def start_time() -> float:
    """When this task started, on the clock shared by the pool's processes."""
    return time.perf_counter()


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def gated(gate: str, pid_file: str | None = None, limit: float = 20.0) -> int:
    """Write our pid to ``pid_file`` (if given), wait until ``gate`` exists, return our pid."""
    if pid_file is not None:
        _write_atomic(pid_file, str(os.getpid()))
    deadline = time.monotonic() + limit
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.005)
    return os.getpid()


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


def init_worker(env_value: str, global_value: str) -> None:
    os.environ[_INIT_ENV] = env_value
    _WORKER_STATE["init"] = global_value


def read_init_state() -> tuple[str | None, str | None]:
    return os.environ.get(_INIT_ENV), _WORKER_STATE.get("init")


async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


async def async_span(seconds: float) -> tuple[float, float]:
    """(start, end) of an ``asyncio.sleep(seconds)`` in the worker."""
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    return start, time.perf_counter()


async def async_pid_then_sleep(pid_file: str, seconds: float) -> int:
    _write_atomic(pid_file, str(os.getpid()))
    await asyncio.sleep(seconds)
    return os.getpid()


# --------------------------------------------------------------------------- helpers


def _wait_running(fut: TaskFuture[Any]) -> None:
    wait_until(lambda: fut.status() == "running", f"task {fut.name!r} to be running")


def _read_pid(pid_file: Path) -> int:
    return int(read_written(pid_file))


def _record(fut: TaskFuture[Any], timeout: float = 10.0) -> TaskResult:
    record = fut.task_result(timeout=timeout)
    assert record is not None
    return record


def _check_report(out: str, expected: str) -> None:
    """Compare ``display()`` output to ``expected`` line by line; the duration line by regex."""
    got_lines = out.splitlines()
    want_lines = expected.strip("\n").splitlines()
    assert len(got_lines) == len(want_lines), out
    for got, want in zip(got_lines, want_lines, strict=True):
        if want.startswith("  Duration"):
            assert DURATION_LINE.fullmatch(got), got
        else:
            assert got == want


# ===================================================================== 1. concurrent.futures


def test_submit_and_result(launch: dict[str, Any]) -> None:
    with Executor(procs=2, **launch) as ex:
        fut = ex.submit(add, 1, 2)
        # the first result waits for a worker to start: a fresh Ray actor took 9-10 s on a
        # loaded 2-core machine
        assert fut.result(timeout=30) == 3
        assert fut.done()
        assert not fut.cancelled()
        assert fut.exception() is None


def test_submit_passes_kwargs_including_one_named_fn() -> None:
    with Executor(procs=1) as ex:
        fut = ex.submit(echo, 1, "two", fn="named fn", a=3)
        assert fut.result(timeout=10) == ((1, "two"), {"fn": "named fn", "a": 3})
        view = ex.options(priority=1)
        assert view.submit(echo, fn=1).result(timeout=10) == ((), {"fn": 1})


def test_isinstance_of_standard_classes() -> None:
    with Executor(procs=1) as ex:
        assert isinstance(ex, cf.Executor)
        fut = ex.submit(add, 1, 1)
        assert isinstance(fut, cf.Future)
        assert isinstance(fut, TaskFuture)
        assert fut.result(timeout=10) == 2


def test_lambdas_and_closures(launch: dict[str, Any]) -> None:
    factor = 7

    def scale(x: int) -> int:
        return x * factor

    def make_counter(start: int) -> Callable[[int], list[int]]:
        seen = [start]

        def step(n: int) -> list[int]:
            for _ in range(n):
                seen.append(seen[-1] + 1)
            return seen

        return step

    with Executor(procs=2, **launch) as ex:
        assert ex.submit(lambda: 42).result(timeout=30) == 42
        assert (
            ex.submit(cast(Callable[..., int], lambda x, y=1: x * 10 + y), 4, y=2).result(
                timeout=30
            )
            == 42
        )
        assert list(ex.map(lambda x, y: x - y, [10, 20, 30], [1, 2, 3])) == [9, 18, 27]
        assert list(ex.map(scale, range(4))) == [0, 7, 14, 21]
        assert ex.submit(make_counter(5), 3).result(timeout=30) == [5, 6, 7, 8]
        assert ex.submit(functools.partial(add, 10), 5).result(timeout=30) == 15


def test_map_keeps_input_order_with_several_iterables(launch: dict[str, Any]) -> None:
    # earlier elements sleep longer, so they finish last; the shortest iterable wins
    delays = [0.3, 0.2, 0.1, 0.0, 0.0, 0.0]
    with Executor(procs=3, **launch) as ex:
        values = list(ex.map(sleep_return, delays, ["a", "b", "c", "d", "e"]))
        assert values == ["a", "b", "c", "d", "e"]
        assert list(ex.map(add, range(5), range(100, 200))) == [100, 102, 104, 106, 108]
        assert list(ex.map(add, [], [])) == []
        summary = ex.run()
    # every element is its own task with its own record
    assert summary.total_submitted == 5 + 5
    assert summary.values == ("a", "b", "c", "d", "e", 100, 102, 104, 106, 108)


def test_map_raises_first_failure_when_reached(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        it = ex.map(check_positive, [1, 2, -3, 4])
        assert next(it) == 1
        assert next(it) == 2
        with pytest.raises(ValueError, match="negative: -3"):
            next(it)


@pytest.mark.timeout(20)
def test_map_timeout_raises_timeout_error(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        assert ex.submit(add, 0, 0).result(timeout=30) == 0  # the worker is up
        it = ex.map(sleep_return, [0.0, 30.0, 30.0], ["a", "b", "c"], timeout=1.0)
        assert next(it) == "a"
        with pytest.raises(TimeoutError):
            next(it)
        summary = ex.run()
    # what map gave up on is cancelled, not left running for 30 s
    assert [r.status for r in summary.results] == [
        "succeeded",
        "succeeded",
        "cancelled",
        "cancelled",
    ]


@pytest.mark.timeout(20)
def test_map_with_buffersize_streams_an_endless_iterable(transport: str) -> None:
    consumed = 0

    def source() -> Iterator[int]:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield i

    with Executor(procs=2, transport=transport) as ex:
        it = ex.map(add, source(), itertools.repeat(1000), buffersize=3)
        assert list(itertools.islice(it, 8)) == [1000 + i for i in range(8)]
        # bounded: only about `buffersize` elements beyond what was taken were pulled
        assert 8 <= consumed <= 8 + 3 + 1
        assert isinstance(it, Generator)
        it.close()
        assert consumed <= 8 + 3 + 1


@pytest.mark.timeout(20)
def test_map_closed_early_cancels_the_rest(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        it = ex.map(sleep_return, [0.0, 30.0, 30.0, 30.0], [0, 1, 2, 3])
        assert next(it) == 0
        assert isinstance(it, Generator)
        it.close()
        summary = ex.run()
    assert [r.status for r in summary.results] == [
        "succeeded",
        "cancelled",
        "cancelled",
        "cancelled",
    ]


def test_wait_and_as_completed() -> None:
    with Executor(procs=3) as ex:
        futs = [ex.submit(sleep_return, d, i) for i, d in enumerate([0.4, 0.0, 0.2])]
        done, not_done = cf.wait(futs, timeout=10, return_when=cf.FIRST_COMPLETED)
        assert done
        assert done | not_done == set(futs)
        done, not_done = cf.wait(futs, timeout=10)
        assert done == set(futs)
        assert not not_done
        assert sorted(f.result() for f in cf.as_completed(futs, timeout=10)) == [0, 1, 2]

        fresh = [ex.submit(sleep_return, d, i) for i, d in enumerate([0.2, 0.0, 0.1])]
        seen = [f.result() for f in cf.as_completed(fresh, timeout=10)]
        assert sorted(seen) == [0, 1, 2]

        bad = ex.submit(raise_value_error, "boom")
        slow = ex.submit(sleep_return, 0.3, "slow")
        done, _ = cf.wait([bad, slow], timeout=10, return_when=cf.FIRST_EXCEPTION)
        assert bad in done


@pytest.mark.timeout(20)
def test_wait_and_as_completed_count_cancelled_futures_as_done() -> None:
    with Executor(procs=1) as ex:
        victim = ex.submit(sleep_return, 30, None)
        assert victim.cancel() is True
        assert victim.done()
        assert victim.cancelled()
        done, not_done = cf.wait([victim], timeout=2)
        assert done == {victim}
        assert not not_done
        assert list(cf.as_completed([victim], timeout=2)) == [victim]


def test_add_done_callback_is_called_with_the_future(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    called: list[cf.Future[Any]] = []
    event = threading.Event()

    def callback(f: cf.Future[Any]) -> None:
        called.append(f)
        event.set()

    with Executor(procs=1) as ex:
        fut = ex.submit(gated, str(gate))
        fut.add_done_callback(callback)
        assert not called
        gate.touch()
        assert event.wait(10)
        assert len(called) == 1
        assert called[0] is fut
        late: list[cf.Future[Any]] = []
        fut.add_done_callback(late.append)  # already done: called at once
        assert late == [fut]


def test_exception_and_remote_traceback(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        bad = ex.submit(raise_value_error, "the message")
        exc = bad.exception(timeout=30)
        assert isinstance(exc, ValueError)
        assert str(exc) == "the message"
        assert exc.__cause__ is not None
        assert "raise_value_error" in str(exc.__cause__)  # the worker's traceback text
        with pytest.raises(ValueError, match="the message"):
            bad.result()
        good = ex.submit(add, 2, 2)
        assert good.exception(timeout=30) is None
        record = _record(bad)
        assert record.status == "failed"
        assert record.exception is exc
        assert record.message == "the message"


def test_asyncio_run_in_executor_wrap_future_and_await() -> None:
    async def main(ex: Executor) -> tuple[int, int, int, list[int]]:
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(ex, add, 2, 3)
        b = await asyncio.wrap_future(ex.submit(add, 3, 4))
        c = await ex.submit(add, 4, 5)
        many = await asyncio.gather(*(asyncio.wrap_future(ex.submit(add, i, i)) for i in range(4)))
        with pytest.raises(ValueError, match="awaited failure"):
            await ex.submit(raise_value_error, "awaited failure")
        return a, b, c, list(many)

    with Executor(procs=2) as ex:
        assert asyncio.run(main(ex)) == (5, 7, 9, [0, 2, 4, 6])


def test_process_pool_executor_keywords() -> None:
    ex = Executor(
        max_workers=2,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=("env-42", "global-42"),
    )
    try:
        assert ex.procs == 2
        assert ex.config.start_method == "spawn"
        states = list(ex.map(lambda _: read_init_state(), range(6)))
        assert states == [("env-42", "global-42")] * 6
    finally:
        ex.shutdown()
    # the initializer ran in the workers, not here
    assert _INIT_ENV not in os.environ
    assert "init" not in _WORKER_STATE


def test_submit_after_shutdown_raises_closed_error() -> None:
    ex = Executor(procs=1)
    try:
        assert ex.submit(add, 1, 1).result(timeout=10) == 2
    finally:
        ex.shutdown()
    with pytest.raises(ClosedError):
        ex.submit(add, 1, 2)
    with pytest.raises(RuntimeError):  # what ProcessPoolExecutor raises
        ex.submit(add, 1, 2)
    with pytest.raises(ClosedError):
        ex.options(priority=1).submit(add, 1, 2)
    with pytest.raises(ClosedError):
        list(ex.map(add, [1], [2]))
    assert issubclass(ClosedError, OsiisoError)


@pytest.mark.timeout(20)
def test_two_workers_run_two_long_tasks_at_once(start_method: str, tmp_path: Path) -> None:
    """Submitted together right after start, two tasks on procs=2 both run at once."""
    gate = tmp_path / "gate"
    with Executor(procs=2, start_method=start_method) as ex:
        try:
            a = ex.submit(gated, str(gate), str(tmp_path / "pid_a"))
            b = ex.submit(gated, str(gate), str(tmp_path / "pid_b"))
            # (no tight bound: a spawned worker starts a fresh interpreter and imports this
            # module first; neither task ends before the gate opens, so one alone never does)
            wait_until(
                lambda: (tmp_path / "pid_a").exists() and (tmp_path / "pid_b").exists(),
                "both tasks to start on the two workers",
                timeout=15.0,
            )
        finally:
            gate.touch()
        assert a.result(timeout=10) != b.result(timeout=10)


@pytest.mark.timeout(20)
def test_idle_worker_takes_work_queued_behind_a_long_task(tmp_path: Path) -> None:
    """A task waiting behind a long one must not stay there while another worker is idle."""
    gate = tmp_path / "gate"
    with Executor(procs=2) as ex:
        assert sorted(ex.map(sleep_return, [0.2, 0.2], [1, 2])) == [1, 2]  # both workers up
        try:
            long = ex.submit(gated, str(gate), str(tmp_path / "pid_long"))
            short = ex.submit(sleep_return, 0.2, "short")
            waiting = ex.submit(gated, str(gate), str(tmp_path / "pid_waiting"))
            assert short.result(timeout=10) == "short"
            wait_until(
                lambda: (tmp_path / "pid_waiting").exists(),
                "the third task to start on the idle worker",
                timeout=3.0,
            )
            _wait_running(waiting)
        finally:
            gate.touch()
        assert long.result(timeout=10) != waiting.result(timeout=10)


# ===================================================================== 2. __main__ scripts


@pytest.mark.timeout(90)
def test_main_script_lambdas_without_guard(start_method: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "lambdas_main.py"), start_method],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[:4] == [
        "lambda [0, 1, 4, 9, 16, 25]",
        "closure [100, 101, 102, 103]",
        "main_fn [1, 8, 27]",
        "submit 42",
    ]
    assert len(lines) == 5
    assert lines[4].startswith("pids: ")
    pids = [int(p) for p in lines[4].split()[1:]]
    assert pids
    assert os.getpid() not in pids
    # the script has exited: its workers are gone too
    wait_until(lambda: all(gone(p) for p in pids), "the script's workers to exit", 2.0)


# ===================================================================== 3. async def tasks


def test_async_task_returns_value(launch: dict[str, Any]) -> None:
    offset = 5

    async def closure(x: int) -> int:
        await asyncio.sleep(0)
        return x + offset

    with Executor(procs=1, **launch) as ex:
        fut = ex.submit(async_double, 21)
        value: Any = fut.result(timeout=30)
        assert value == 42
        value = ex.submit(closure, 1).result(timeout=30)
        assert value == 6
        assert _record(fut).attempts == 1


def test_async_tasks_overlap_on_one_worker(transport: str) -> None:
    with Executor(procs=1, concurrency=5, transport=transport) as ex:
        futs = [ex.submit(async_span, 0.3) for _ in range(5)]
        spans: list[Any] = [f.result(timeout=30) for f in futs]
        pids = {a.pid for f in futs for a in _record(f).attempt_log}
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    assert len(pids) == 1
    assert max(starts) < min(ends)  # all five were in flight at once
    assert max(ends) - min(starts) < 1.2  # well under 5 x 0.3 s run one after another


# ===================================================================== 4. priorities


def test_priorities_on_one_worker(transport: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    priorities = [5, 1, 3, 1, 4, 2]
    with Executor(procs=1, transport=transport) as ex:
        blocker = ex.submit(gated, str(gate))
        _wait_running(blocker)
        futs = [ex.options(priority=p).submit(start_time) for p in priorities]
        assert [f.status() for f in futs] == ["queued"] * len(futs)
        gate.touch()
        starts = [f.result(timeout=30) for f in futs]
        blocker.result(timeout=30)
        records = [_record(f) for f in futs]
    order = sorted(range(len(priorities)), key=lambda i: starts[i])
    expected = sorted(range(len(priorities)), key=lambda i: (priorities[i], i))
    assert expected == [1, 3, 5, 2, 4, 0]
    assert order == expected
    assert [r.priority for r in records] == priorities
    assert min(starts) > _record(blocker).finished_at - 1e-3


# ===================================================================== 5. TaskFuture surface


def test_task_id_and_name() -> None:
    def inner(x: int) -> int:
        return x

    with Executor(procs=1) as ex:
        fut = ex.submit(add, 1, 2)
        assert re.fullmatch(r"[0-9a-f]{32}", fut.task_id)
        assert uuid.UUID(hex=fut.task_id).version == 4
        assert fut.name == "add"
        mine = ex.options(task_id="my-task-1", name="custom name").submit(add, 1, 2)
        assert mine.task_id == "my-task-1"
        assert mine.name == "custom name"
        nested = ex.submit(inner, 1)
        assert nested.name == inner.__qualname__
        assert nested.name.endswith("<locals>.inner")
        lam = ex.submit(lambda: 1)
        assert lam.name.endswith("<lambda>")
        others = [ex.submit(add, 0, 0) for _ in range(5)]
        assert len({f.task_id for f in [fut, nested, lam, *others]}) == 8
        record = _record(mine)
        assert (record.task_id, record.name) == ("my-task-1", "custom name")
        assert _record(fut).name == "add"


@pytest.mark.timeout(20)
def test_status_info_and_task_result_through_the_lifecycle(transport: str, tmp_path: Path) -> None:
    gate1, gate2, pid_file = tmp_path / "gate1", tmp_path / "gate2", tmp_path / "pid"
    with Executor(procs=1, transport=transport) as ex:
        blocker = ex.submit(gated, str(gate1))
        _wait_running(blocker)
        before = time.time()
        fut = ex.submit(gated, str(gate2), pid_file=str(pid_file))
        after = time.time()

        assert fut.status() == "queued"
        info = fut.info()
        assert isinstance(info, TaskInfo)
        assert info.task_id == fut.task_id
        assert info.name == "gated"
        assert info.fn_name == "gated"
        assert info.args == (str(gate2),)
        assert info.kwargs == {"pid_file": str(pid_file)}
        assert info.tries == 0
        assert info.status == "queued"
        assert info.scheduled_at is None
        assert info.worker_pid is None
        assert int(before * 1000) - 1 <= info.enqueue_time <= int(after * 1000) + 1
        assert fut.task_result() is None
        with pytest.raises(TimeoutError):
            fut.task_result(timeout=0.1)

        gate1.touch()
        pid = _read_pid(pid_file)
        _wait_running(fut)
        info = fut.info()
        assert info is not None
        assert info.status == "running"
        assert info.tries == 1  # the running attempt counts (ArdiQ's rule)
        assert info.worker_pid == pid
        assert fut.task_result() is None
        with pytest.raises(TimeoutError):
            fut.task_result(timeout=0.1)

        gate2.touch()
        record = fut.task_result(timeout=30)
        assert isinstance(record, TaskResult)
        assert record.status == "succeeded"
        assert record.value == pid
        assert fut.status() == "complete"
        assert fut.info() is None
        assert fut.task_result() is record
        assert record.attempt_log[0].pid == pid


def fail_once_then_gated(marker: str, gate: str, pid_file: str) -> int:
    """Fail the first attempt; on the next, write our pid and wait for ``gate``."""
    if not os.path.exists(marker):
        _write_atomic(marker, "failed once")
        raise ValueError("first attempt fails")
    return gated(gate, pid_file=pid_file)


@pytest.mark.timeout(30)
def test_info_counts_the_running_attempt_as_a_try(tmp_path: Path) -> None:
    gate, pid_file = tmp_path / "gate", tmp_path / "pid"
    with Executor(procs=1) as ex:
        fut = ex.options(retries=1, retry_delay=2.0).submit(
            fail_once_then_gated, str(tmp_path / "marker"), str(gate), str(pid_file)
        )
        wait_until(lambda: fut.status() == "scheduled", "the retry to be scheduled")
        waiting = fut.info()
        assert waiting is not None and (waiting.status, waiting.tries) == ("scheduled", 1)
        _read_pid(pid_file)
        _wait_running(fut)
        second = fut.info()
        assert second is not None and (second.status, second.tries) == ("running", 2)
        gate.touch()
        record = _record(fut)
        assert record.status == "succeeded" and record.attempts == 2


@pytest.mark.timeout(20)
def test_task_id_in_flight_is_refused(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with Executor(procs=1) as ex:
        first = ex.options(task_id="job-1").submit(gated, str(gate))
        with pytest.raises(ValueError, match="job-1"):
            ex.options(task_id="job-1").submit(add, 1, 2)
        gate.touch()
        first.result(timeout=10)
        again = ex.options(task_id="job-1").submit(add, 1, 2)  # no longer in flight
        assert again.result(timeout=10) == 3
        summary = ex.run()
    assert [r.task_id for r in summary.results] == ["job-1", "job-1"]
    assert summary.succeeded == 2


@pytest.mark.timeout(20)
def test_cancel_queued_task(transport: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with Executor(procs=1, transport=transport) as ex:
        blocker = ex.submit(gated, str(gate))
        _wait_running(blocker)
        queued = [ex.submit(add, i, i) for i in range(3)]
        assert queued[0].cancel() is True
        assert queued[2].cancel() is True
        assert queued[0].cancelled()
        assert queued[0].done()
        with pytest.raises(cf.CancelledError):
            queued[0].result()
        record = _record(queued[0])
        assert record.status == "cancelled"
        assert record.attempts == 0
        assert record.message
        gate.touch()
        blocker_pid = blocker.result(timeout=30)
        assert queued[1].result(timeout=30) == 2
        # cancelling a task that had not started left the worker alone
        assert ex.submit(get_pid).result(timeout=30) == blocker_pid
        assert [_record(f).status for f in queued] == ["cancelled", "succeeded", "cancelled"]


@pytest.mark.timeout(20)
def test_cancel_running_sync_task_kills_its_worker(launch: dict[str, Any], tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=1, **launch) as ex:
        fut = ex.submit(pid_then_sleep, str(pid_file), 30)
        pid = _read_pid(pid_file)
        _wait_running(fut)
        assert fut.cancel() is True
        assert fut.cancelled()
        record = _record(fut)
        assert record.status == "cancelled"
        assert record.attempts == 1
        assert record.attempt_log[0].outcome == "cancelled"
        # (a Ray actor's kill may take a second under load; the task sleeps 30 s)
        wait_until(lambda: not psutil.pid_exists(pid), "the cancelled task's worker to die", 10)
        nxt = ex.submit(get_pid)
        assert nxt.result(timeout=30) != pid  # a replacement worker ran it
        assert fut.cancel() is True  # cancelling again: still cancelled
        assert nxt.cancel() is False  # finished


@pytest.mark.timeout(20)
def test_cancel_running_async_task_keeps_its_worker(transport: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.submit(async_pid_then_sleep, str(pid_file), 30)
        pid = _read_pid(pid_file)
        _wait_running(fut)
        assert fut.cancel() is True
        assert fut.cancelled()
        assert _record(fut).status == "cancelled"
        # cancelled inside its worker, which goes on serving
        assert ex.submit(get_pid).result(timeout=30) == pid


def test_cancel_finished_task_returns_false() -> None:
    with Executor(procs=1) as ex:
        fut = ex.submit(add, 1, 2)
        assert fut.result(timeout=10) == 3
        assert fut.cancel() is False
        assert not fut.cancelled()
        assert _record(fut).status == "succeeded"
        bad = ex.submit(raise_value_error, "x")
        bad.exception(timeout=10)
        assert bad.cancel() is False
        assert _record(bad).status == "failed"


# ===================================================================== 6. options


def test_retries_with_backoff(transport: str, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.options(retries=2, retry_delay=0.1, backoff=2).submit(
            fail_n_times, str(counter), 2
        )
        assert fut.result(timeout=30) == 3
        record = _record(fut)
    assert record.status == "succeeded"
    assert record.attempts == 3
    log = record.attempt_log
    assert len(log) == 3
    assert [a.number for a in log] == [1, 2, 3]
    assert [a.outcome for a in log] == ["failed", "failed", "succeeded"]
    assert "attempt 1 failed" in log[0].error
    assert "attempt 2 failed" in log[1].error
    assert log[2].error == ""
    starts = [a.started_at for a in log]
    assert None not in starts
    assert log[1].started_at is not None and log[2].started_at is not None
    # the delays are waited on our clock; the workers', Ray's on this host too, is ours
    assert log[1].started_at - log[0].finished_at >= 0.1
    assert log[2].started_at - log[1].finished_at >= 0.2
    assert record.started_at == log[0].started_at


def test_unknown_and_bad_options() -> None:
    with Executor(procs=1) as ex:
        with pytest.raises(TypeError, match="retires"):
            ex.options(retires=2)  # type: ignore[call-arg]  # the type checker says so too
        with pytest.raises(TypeError, match="priority"):
            ex.options(priority="high")  # type: ignore[arg-type]
        bad_options: list[tuple[dict[str, Any], str]] = [
            ({"retries": -1}, "retries"),
            ({"timeout": 0}, "timeout"),
            ({"retry_delay": -0.5}, "retry_delay"),
            ({"backoff": 0.5}, "backoff"),
            ({"delay": -1}, "delay"),
            ({"name": ""}, "name"),
            ({"task_id": "has space"}, "task_id"),
            ({"delay": 1.0, "run_at": time.time() + 5}, "run_at"),
        ]
        for bad, name in bad_options:
            with pytest.raises(ValueError, match=name):
                ex.options(**bad)
        view = ex.options(TaskOptions(priority=1), retries=1)
        assert view.task_options == TaskOptions(priority=1, retries=1)
        assert view.submit(add, 2, 2).result(timeout=10) == 4
    with pytest.raises(TypeError, match="retires"):
        Executor(procs=1, retires=2)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="start_method"):
        Executor(procs=1, start_method="bogus")
    with pytest.raises(ValueError, match="procs"):
        Executor(procs=0)
    with pytest.raises(ValueError, match="retries"):
        Executor(procs=1, retries=-1)


def test_executor_level_default_options(tmp_path: Path) -> None:
    with Executor(procs=1, retries=1) as ex:
        fut = ex.submit(fail_n_times, str(tmp_path / "a"), 1)
        assert fut.result(timeout=10) == 2
        assert _record(fut).attempts == 2
        # a view starts from the executor's defaults; overrides win
        once = ex.options(retries=0).submit(fail_n_times, str(tmp_path / "b"), 1)
        assert isinstance(once.exception(timeout=10), ValueError)
        assert _record(once).attempts == 1
        kept = ex.options(priority=1).submit(fail_n_times, str(tmp_path / "c"), 1)
        assert kept.result(timeout=10) == 2


def test_labels_are_carried_onto_the_record(transport: str) -> None:
    meta = {"source": "s3://bucket/key", "size": 3}
    with Executor(procs=1, transport=transport) as ex:
        fut = ex.options(name="parse", group_id="batch-7", metadata=meta).submit(add, 1, 2)
        plain = ex.submit(add, 2, 2)
        summary = ex.run()
    record = _record(fut)
    assert record.name == "parse"
    assert record.group_id == "batch-7"
    assert record.metadata == meta
    assert _record(plain).group_id is None
    assert _record(plain).metadata is None
    assert summary.by_group() == {"batch-7": (record,), None: (_record(plain),)}
    assert summary.by_name()["parse"] == (record,)


def test_detached_tasks_run_but_are_left_out_of_the_summary(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        detached = ex.options(detached=True).submit(add, 1, 1)
        normal = ex.submit(add, 2, 2)
        assert detached.result(timeout=30) == 2
        summary = ex.run()
    assert [r.task_id for r in summary.results] == [normal.task_id]
    assert summary.total_submitted == 1
    record = _record(detached)
    assert record.detached is True
    assert record.status == "succeeded"


# ===================================================================== 7. run()


def test_run_summarises_each_batch_in_submission_order() -> None:
    with Executor(procs=3) as ex:
        batch1 = [
            ex.submit(sleep_return, 0.3, "a"),
            ex.submit(sleep_return, 0.0, "b"),
            ex.submit(add, 1, 1),
        ]
        s1 = ex.run()
        batch2 = [ex.submit(sleep_return, 0.2, "c"), ex.submit(sleep_return, 0.0, "d")]
        s2 = ex.run()
        s3 = ex.run()
    assert [r.task_id for r in s1.results] == [f.task_id for f in batch1]
    assert s1.values == ("a", "b", 2)
    assert [r.task_id for r in s2.results] == [f.task_id for f in batch2]
    assert s2.values == ("c", "d")
    assert (s1.total_submitted, s2.total_submitted, s3.total_submitted) == (3, 2, 0)
    assert s1.ok and s2.ok and s3.ok


def test_run_includes_tasks_that_finished_before_it(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        early = ex.submit(add, 1, 2)
        assert early.result(timeout=30) == 3
        failed = ex.submit(raise_value_error, "early failure")
        failed.exception(timeout=30)
        late = ex.submit(sleep_return, 0.1, "late")
        summary = ex.run()
    assert [r.task_id for r in summary.results] == [early.task_id, failed.task_id, late.task_id]
    assert [r.status for r in summary.results] == ["succeeded", "failed", "succeeded"]


def test_run_strict_raises_execution_error(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        ex.submit(add, 1, 1)
        bad1 = ex.submit(raise_value_error, "bad one")
        bad2 = ex.submit(raise_value_error, "bad two")
        with pytest.raises(ExecutionError) as info:
            ex.run(strict=True)
    err = info.value
    assert str(err) == "2 task(s) failed"
    assert [r.task_id for r in err.results] == [bad1.task_id, bad2.task_id]
    assert [r.status for r in err.results] == ["failed", "failed"]
    assert [r.message for r in err.results] == ["bad one", "bad two"]
    assert all(isinstance(r.exception, ValueError) for r in err.results)


@pytest.mark.timeout(20)
def test_run_strict_does_not_raise_for_cancellations_alone() -> None:
    with Executor(procs=1) as ex:
        ok = ex.submit(add, 1, 1)
        victim = ex.submit(sleep_return, 30, None)
        assert victim.cancel() is True
        summary = ex.run(strict=True)
    assert ok.result() == 2
    assert (summary.succeeded, summary.cancelled, summary.failed) == (1, 1, 0)
    assert not summary.ok  # a cancellation is not ok, though strict raises for failures only
    assert summary.status_word == "COMPLETED WITH ERRORS"


@pytest.mark.timeout(20)
def test_run_timeout_cancels_but_waits_for_must_complete(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        long = ex.submit(sleep_return, 30, "long")
        vital = ex.options(must_complete=True).submit(sleep_return, 1.0, "vital")
        summary = ex.run(timeout=0.3)
    assert summary.timed_out is True
    assert not summary.ok
    assert summary.status_word == "TIMED OUT"
    assert [r.task_id for r in summary.results] == [long.task_id, vital.task_id]
    by_id = summary.by_task_id()
    assert by_id[long.task_id].status == "cancelled"
    assert by_id[vital.task_id].status == "succeeded"
    assert by_id[vital.task_id].value == "vital"
    assert long.cancelled()
    assert vital.result(timeout=0) == "vital"


@pytest.mark.timeout(20)
def test_every_task_has_exactly_one_record(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        futs: list[TaskFuture[Any]] = []
        for i in range(20):
            if i % 4 == 0:
                futs.append(ex.submit(raise_value_error, f"fail {i}"))
            else:
                futs.append(ex.submit(add, i, i))
        victims = [ex.submit(sleep_return, 30, None) for _ in range(3)]
        for v in victims:
            assert v.cancel() is True
        futs += victims
        summary = ex.run()
    ids = [r.task_id for r in summary.results]
    assert len(summary.results) == len(futs) == 23
    assert len(set(ids)) == len(ids)
    assert ids == [f.task_id for f in futs]
    assert (summary.succeeded, summary.failed, summary.cancelled) == (15, 5, 3)
    for fut, record in zip(futs, summary.results, strict=True):
        assert fut.task_result() == record
        assert len(record.attempt_log) == record.attempts


# ===================================================================== 8. display()

PASSED_REPORT = f"""
{BAR}
  Run Summary: PASSED
{BAR}
  Total tasks : 3
  Succeeded   : 3
  Failed      : 0
  Cancelled   : 0
  Duration    : 0.000s
{BAR}
"""

ERRORS_REPORT = f"""
{BAR}
  Run Summary: COMPLETED WITH ERRORS
{BAR}
  Total tasks : 5
  Succeeded   : 3
  Failed      : 2
  Cancelled   : 0
  Duration    : 1.234s
{BAR}
  Failures:
    - fetch-api (3 attempts)
      Connection refused
    - parse-data
      Invalid JSON at line 42
{BAR}
"""

TIMED_OUT_REPORT = f"""
{BAR}
  Run Summary: TIMED OUT
{BAR}
  Total tasks : 2
  Succeeded   : 1
  Failed      : 0
  Cancelled   : 1
  Duration    : 0.300s
{BAR}
"""


def test_display_passed_run(capsys: pytest.CaptureFixture[str]) -> None:
    with Executor(procs=2) as ex:
        for i in range(3):
            ex.submit(add, i, i)
        summary = ex.run()
    capsys.readouterr()
    summary.display()
    _check_report(capsys.readouterr().out, PASSED_REPORT)


def test_display_run_with_errors(transport: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Executor(procs=2, transport=transport) as ex:
        ex.submit(add, 1, 1)
        ex.options(name="fetch-api", retries=2).submit(
            raise_error, ConnectionError, "Connection refused"
        )
        ex.submit(add, 2, 2)
        ex.options(name="parse-data").submit(raise_value_error, "Invalid JSON at line 42")
        ex.submit(add, 3, 3)
        summary = ex.run()
    assert summary.errors[0].attempts == 3
    capsys.readouterr()
    summary.display()
    _check_report(capsys.readouterr().out, ERRORS_REPORT)


@pytest.mark.timeout(20)
def test_display_timed_out_run(capsys: pytest.CaptureFixture[str]) -> None:
    with Executor(procs=2) as ex:
        quick = ex.submit(add, 1, 1)
        ex.submit(sleep_return, 30, None)
        assert quick.result(timeout=10) == 2
        summary = ex.run(timeout=0.3)
    capsys.readouterr()
    summary.display()
    _check_report(capsys.readouterr().out, TIMED_OUT_REPORT)


# ===================================================================== 9. context manager


def test_clean_exit_waits_for_every_task(start_method: str) -> None:
    with Executor(procs=2, start_method=start_method) as ex:
        futs = [ex.submit(sleep_return, 0.2, i) for i in range(4)]
    assert all(f.done() for f in futs)
    assert [f.result(timeout=0) for f in futs] == [0, 1, 2, 3]
    with pytest.raises(ClosedError):
        ex.submit(add, 1, 1)


@pytest.mark.timeout(20)
def test_exception_in_block_force_cancels(launch: dict[str, Any], tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    raised_at = 0.0
    with (
        pytest.raises(RuntimeError, match="boom"),
        Executor(procs=1, **launch) as ex,
    ):
        long = ex.submit(pid_then_sleep, str(pid_file), 30)
        queued = [ex.submit(add, i, i) for i in range(3)]
        pid = _read_pid(pid_file)
        _wait_running(long)
        raised_at = time.monotonic()
        raise RuntimeError("boom")
    assert time.monotonic() - raised_at < 5.0
    assert long.cancelled()
    assert _record(long, 0).status == "cancelled"
    assert all(f.cancelled() for f in queued)
    assert [_record(f, 0).status for f in queued] == ["cancelled"] * 3
    wait_until(lambda: not psutil.pid_exists(pid), "the killed worker to be gone", 10)


# ===================================================================== 10. shutdown()


@pytest.mark.timeout(20)
def test_shutdown_cancel_futures_lets_the_running_task_finish(
    transport: str, tmp_path: Path
) -> None:
    gate, pid_file = tmp_path / "gate", tmp_path / "pid"
    ex = Executor(procs=1, transport=transport)
    try:
        running = ex.submit(gated, str(gate), str(pid_file), 10.0)
        pid = _read_pid(pid_file)
        _wait_running(running)
        queued = [ex.submit(add, i, i) for i in range(3)]
        # the running task ends only once shutdown has cancelled the queued ones (however
        # slow this thread is): were they left to run, it would time out at its gate
        queued[-1].add_done_callback(lambda _: gate.touch())
        ex.shutdown(wait=True, cancel_futures=True)
        assert running.done()
        assert running.result(timeout=0) == pid
        assert _record(running, 0).status == "succeeded"
        assert all(f.cancelled() for f in queued)
        records = [_record(f, 0) for f in queued]
        assert [r.status for r in records] == ["cancelled"] * 3
        assert all("shutdown" in r.message for r in records)
    finally:
        gate.touch()  # (after a failure above: the shutdown here need not wait for the gate)
        ex.shutdown()


@pytest.mark.timeout(20)
def test_shutdown_kill_stops_running_tasks_now(launch: dict[str, Any], tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    ex = Executor(procs=1, **launch)
    try:
        # kill=True spares nothing, must_complete tasks included
        vital = ex.options(must_complete=True).submit(pid_then_sleep, str(pid_file), 30)
        queued = ex.submit(add, 1, 1)
        pid = _read_pid(pid_file)
        _wait_running(vital)
        t0 = time.monotonic()
        ex.shutdown(kill=True)
        assert time.monotonic() - t0 < 5.0
        for fut in (vital, queued):
            assert fut.cancelled()
            record = _record(fut, 0)
            assert record.status == "cancelled"
            assert "shutdown" in record.message
        wait_until(lambda: not psutil.pid_exists(pid), "the killed worker to exit", 10)
        with pytest.raises(ClosedError):
            ex.submit(add, 1, 1)
    finally:
        ex.shutdown(kill=True)


@pytest.mark.timeout(20)
def test_shutdown_is_idempotent() -> None:
    ex = Executor(procs=1)
    try:
        fut = ex.submit(add, 1, 2)
        ex.shutdown()
        ex.shutdown()
        ex.shutdown(wait=False)
        ex.shutdown(cancel_futures=True)
        ex.shutdown(kill=True)
        with ex:
            pass
        assert fut.result(timeout=0) == 3
        threads = [threading.Thread(target=ex.shutdown) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
    finally:
        ex.shutdown()


@pytest.mark.timeout(20)
def test_shutdown_from_threads_at_once() -> None:
    ex = Executor(procs=2)
    try:
        futs = [ex.submit(sleep_return, 0.2, i) for i in range(4)]
        threads = [threading.Thread(target=ex.shutdown) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert [f.result(timeout=0) for f in futs] == [0, 1, 2, 3]
    finally:
        ex.shutdown()


@pytest.mark.timeout(20)
def test_shutdown_from_a_done_callback(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ran = threading.Event()
    errors: list[BaseException] = []
    callback_threads: list[int] = []
    ex = Executor(procs=1)

    def callback(_: cf.Future[Any]) -> None:
        try:
            ex.shutdown(wait=True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            callback_threads.append(threading.get_ident())
            ran.set()

    fut = ex.submit(gated, str(gate))
    fut.add_done_callback(callback)
    gate.touch()
    assert ran.wait(10), "the done-callback never finished: shutdown deadlocked in it"
    assert errors == []
    assert callback_threads != [threading.get_ident()]  # it ran on another thread
    second = threading.Thread(target=ex.shutdown)
    second.start()
    second.join(10)
    assert not second.is_alive(), "a second shutdown from the main thread deadlocked"
    with pytest.raises(ClosedError):
        ex.submit(add, 1, 1)
    assert isinstance(fut.result(timeout=0), int)
