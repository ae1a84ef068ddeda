"""An internal error in a worker fails the task it was handling; it never hangs it.

Each fault is injected for real inside the worker process: an initializer replaces one piece
of the worker's own machinery (the task factory, the measurement, the serializer, the
scheduler's heap, the start-up) with a version that raises once, the first time it is
called after the test creates an "arm" file. The test warms the pool first, arms the fault,
submits the task, and checks that the task ends within a second with a record naming the
internal error (or, where even the report fails, a crash record), that the batch holds
exactly one record per task, and that the pool serves the next task.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_support import WAIT, canary, check_batch, identity, only, remote_tb

from osiiso_mp import Executor, InternalError, OsiisoError, TaskFuture, WorkerCrashedError
from osiiso_mp._errors import INTERNAL_ERROR_EXIT

WITHIN = 1.0  # an internal error ends its task this fast (the bound), not at a timeout

# What can be broken, as (module, attribute path): the worker's own machinery.
TARGETS: dict[str, tuple[str, str]] = {
    "task_factory": ("osiiso_mp._runtime.worker._tasks", "TaskRunner._task_factory"),
    "snapshot": ("osiiso_mp._runtime.worker._telemetry", "Meter.snapshot"),
    "measure": ("osiiso_mp._runtime.worker._telemetry", "Meter.measure"),
    "rss": ("osiiso_mp._runtime.worker._telemetry", "Meter.rss"),
    "reap": ("osiiso_mp._runtime.worker._tasks", "TaskRunner._reap_spawned"),
    "dumps_value": ("osiiso_mp._runtime.worker._tasks", "dumps_value"),
    "dumps_chunk": ("osiiso_mp._runtime.worker._tasks", "dumps_chunk_values"),
    "error_info": ("osiiso_mp._runtime.worker._tasks", "error_info"),
    "type_name": ("osiiso_mp._runtime.worker._failures", "type_name"),
    "heappush": ("heapq", "heappush"),
    "start": ("osiiso_mp._runtime.worker._actor", "WorkerActor.start"),
}


class InjectedFault(RuntimeError):
    """The error the broken machinery raises."""


def break_once(arms: dict[str, str]) -> None:
    """Initializer: make each target raise :class:`InjectedFault` once, on its first call
    after its arm file exists (the file is removed by the call that fires, so the fault
    fires once per executor, whichever process calls first). An empty path fires always."""
    for target, arm in arms.items():
        module_name, path = TARGETS[target]
        owner: Any = importlib.import_module(module_name)
        *parents, attr = path.split(".")
        for name in parents:
            owner = getattr(owner, name)
        setattr(owner, attr, _faulty(target, arm, getattr(owner, attr)))


def _faulty(target: str, arm: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def faulty(*args: Any, **kwargs: Any) -> Any:
        if arm:
            try:
                os.remove(arm)
            except FileNotFoundError:
                return original(*args, **kwargs)
        raise InjectedFault(f"{target} broke")

    return faulty


def arm(path: Path) -> None:
    path.write_text("armed")


# --- task functions (run in workers) --------------------------------------------------------


def pid() -> int:
    return os.getpid()


async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


def raise_value_error() -> None:
    raise ValueError("the task's own error")


# --- helpers ---------------------------------------------------------------------------------


def executor(tmp_path: Path, *targets: str, **kwargs: Any) -> tuple[Executor, dict[str, Path]]:
    arms = {t: tmp_path / f"arm-{t}" for t in targets}
    ex = Executor(
        procs=1, initializer=break_once, initargs=({t: str(p) for t, p in arms.items()},), **kwargs
    )
    return ex, arms


def fails_fast(fut: TaskFuture[Any]) -> BaseException:
    """The task's exception, which must come within WITHIN seconds of now."""
    t0 = time.monotonic()
    exc = fut.exception(timeout=WAIT)
    took = time.monotonic() - t0
    assert exc is not None, "the task succeeded despite the fault"
    assert took < WITHIN, f"the task took {took:.2f}s to fail"
    return exc


def check_internal(exc: BaseException, target: str, stage: str, name: str) -> None:
    assert isinstance(exc, InternalError), repr(exc)
    assert exc.stage == stage
    assert exc.type_name.endswith("InjectedFault")
    assert exc.detail == f"{target} broke"
    assert exc.name == name and exc.task_id is not None
    assert f"internal error in the worker while {stage} the task (task {name!r}" in str(exc)
    assert "InjectedFault: " + f"{target} broke" in remote_tb(exc)


# --- one task's path: the task fails, the worker carries on ----------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("target", "fn", "stage"),
    [
        ("task_factory", async_square, "starting"),
        ("snapshot", identity, "starting"),
        ("snapshot", async_square, "starting"),
        ("reap", identity, "running"),
        ("measure", identity, "reporting"),
        ("measure", async_square, "reporting"),
        ("dumps_value", identity, "reporting"),
        ("dumps_value", async_square, "reporting"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_an_internal_error_fails_the_task_and_the_worker_carries_on(
    tmp_path: Path, target: str, fn: Callable[[int], Any], stage: str
) -> None:
    ex, arms = executor(tmp_path, target)
    with ex:
        worker = canary(ex)
        arm(arms[target])
        fut = ex.submit(fn, 3)
        exc = fails_fast(fut)
        check_internal(exc, target, stage, fn.__name__)
        rec = only(check_batch(ex, [fut]), fut)
        assert rec.status == "failed" and rec.attempts == 1
        assert rec.attempt_log[0].outcome == "failed"
        assert rec.attempt_log[0].pid == worker
        # the same worker serves both kinds of task next
        again = ex.submit(fn, 4)
        assert again.result(timeout=WAIT) == (16 if fn is async_square else 4)
        check_batch(ex, [again])
        assert canary(ex) == worker


@pytest.mark.timeout(60)
def test_an_internal_error_while_reporting_the_tasks_own_exception(tmp_path: Path) -> None:
    ex, arms = executor(tmp_path, "error_info")
    with ex:
        worker = canary(ex)
        arm(arms["error_info"])
        fut = ex.submit(raise_value_error)
        exc = fails_fast(fut)
        check_internal(exc, "error_info", "reporting", "raise_value_error")
        # the task's own exception is not lost: the traceback shows it beneath ours
        assert "ValueError: the task's own error" in remote_tb(exc)
        check_batch(ex, [fut])
        again = ex.submit(raise_value_error)
        assert isinstance(again.exception(timeout=WAIT), ValueError)
        check_batch(ex, [again])
        assert canary(ex) == worker


@pytest.mark.timeout(60)
def test_an_internal_error_in_the_memory_check_before_a_task(tmp_path: Path) -> None:
    ex, arms = executor(tmp_path, "rss", max_rss="4GiB")
    with ex:
        worker = canary(ex)
        arm(arms["rss"])
        fut = ex.submit(identity, 3)
        check_internal(fails_fast(fut), "rss", "starting", "identity")
        check_batch(ex, [fut])
        assert canary(ex) == worker


@pytest.mark.timeout(60)
def test_an_internal_error_reporting_a_map_chunk_fails_its_items(tmp_path: Path) -> None:
    ex, arms = executor(tmp_path, "dumps_chunk")
    with ex:
        canary(ex)
        arm(arms["dumps_chunk"])
        t0 = time.monotonic()
        with pytest.raises(InternalError) as info:
            list(ex.map(identity, range(8), chunksize=4))
        assert time.monotonic() - t0 < WITHIN
        assert info.value.stage == "reporting" and info.value.detail == "dumps_chunk broke"
        summary = ex.run(timeout=WAIT)
        assert summary.total_submitted == 8
        assert summary.succeeded + summary.failed + summary.cancelled == 8
        failed = [r for r in summary.results if r.status == "failed"]
        assert failed and all(isinstance(r.exception, InternalError) for r in failed)
        canary(ex)  # (the map's early end cancelled the other chunk, killing its worker)


@pytest.mark.timeout(60)
def test_an_internal_error_is_retried_like_any_failure(tmp_path: Path) -> None:
    ex, arms = executor(tmp_path, "measure")
    with ex:
        canary(ex)
        arm(arms["measure"])
        fut = ex.options(retries=1).submit(identity, 5)
        assert fut.result(timeout=WAIT) == 5
        rec = only(check_batch(ex, [fut]), fut)
        assert [a.outcome for a in rec.attempt_log] == ["failed", "succeeded"]
        assert "InternalError" in rec.attempt_log[0].error


# --- when even the report fails, or nothing ties the error to one task ------------------------


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_report_an_internal_error_exits_and_is_replaced(
    tmp_path: Path,
) -> None:
    ex, arms = executor(tmp_path, "measure", "type_name")
    with ex:
        worker = canary(ex)
        arm(arms["measure"])
        arm(arms["type_name"])  # used by the report of the measure's failure: that fails too
        fut = ex.submit(identity, 3)
        exc = fails_fast(fut)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        assert exc.exit_code == INTERNAL_ERROR_EXIT
        assert "internal error in osiiso_mp's worker" in str(exc)
        rec = only(check_batch(ex, [fut]), fut)
        assert rec.attempt_log[0].outcome == "crashed"
        assert canary(ex) != worker  # replaced


@pytest.mark.timeout(60)
def test_a_worker_whose_inbox_breaks_is_replaced_and_its_task_runs_elsewhere(
    tmp_path: Path,
) -> None:
    ex, arms = executor(tmp_path, "heappush")
    with ex:
        worker = canary(ex)
        arm(arms["heappush"])  # the next task the worker takes in breaks its scheduler
        fut = ex.submit(pid)
        t0 = time.monotonic()
        ran_on = fut.result(timeout=WAIT)
        assert time.monotonic() - t0 < WITHIN + 1  # a new worker started in between
        assert ran_on != worker  # never started there: sent again to the replacement
        rec = only(check_batch(ex, [fut]), fut)
        assert rec.status == "succeeded" and rec.attempts == 1
        assert ex.stats().workers[0].restarts == 1


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_start_fails_loudly_instead_of_hanging(tmp_path: Path) -> None:
    with Executor(procs=1, initializer=break_once, initargs=({"start": ""},)) as ex:
        fut = ex.submit(identity, 1)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, OsiisoError), repr(exc)
        assert "internal error starting the worker" in str(exc)
        assert "InjectedFault: start broke" in str(exc)
