"""Executor policies on real workers: the must_complete matrix, fail_first, run timeouts,
rate limiting, max_pending, hooks, and cleanup at interpreter exit."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from outcome_tasks import gated_return

from osiiso_mp import Attempt, Executor, QueueFullError, TaskFuture, TaskResult


def sleep_return(seconds: float, value: str) -> str:
    """Sleep, then return ``value``."""
    time.sleep(seconds)
    return value


def fail_after(seconds: float) -> None:
    """Sleep, then fail."""
    time.sleep(seconds)
    raise ValueError("boom")


def status_of(fut: TaskFuture[Any]) -> str:
    """The final status in the task's record."""
    record = fut.task_result(timeout=20)
    assert record is not None
    return record.status


# ----------------------------------------------------------------- the must_complete matrix
# event                           ordinary task   must_complete task
# graceful shutdown / clean exit  completes       completes
# run timeout, on_timeout=complete cancelled      completes
# run timeout, on_timeout=cancel  cancelled       cancelled
# fail_first trips                cancelled       completes
# fut.cancel()                    cancelled       cancelled
# forced shutdown                 cancelled       cancelled


@pytest.mark.timeout(30)
def test_matrix_graceful_shutdown_completes_both() -> None:
    with Executor(procs=1) as ex:
        ordinary = ex.submit(sleep_return, 0.3, "ordinary")
        keeper = ex.options(must_complete=True).submit(sleep_return, 0.3, "keeper")
        queued = ex.options(delay=0.2).submit(sleep_return, 0.0, "scheduled")
    assert (status_of(ordinary), status_of(keeper), status_of(queued)) == ("succeeded",) * 3
    assert keeper.result() == "keeper"


@pytest.mark.timeout(30)
def test_matrix_graceful_shutdown_with_cancel_futures_spares_must_complete(
    transport: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    ex = Executor(procs=1, transport=transport)
    running = ex.submit(gated_return, str(gate), "running")
    ordinary = ex.submit(sleep_return, 0.1, "queued")
    keeper = ex.options(must_complete=True).submit(sleep_return, 0.1, "keeper")
    while running.status() != "running":  # a Ray actor takes longer to start than 0.2 s
        time.sleep(0.02)
    # the running task ends only once shutdown has cancelled the ordinary one, however slow
    # this thread is (a fixed sleep could end first, and the ordinary task then run)
    ordinary.add_done_callback(lambda _: gate.touch())
    ex.shutdown(wait=True, cancel_futures=True)
    assert status_of(running) == "succeeded"
    assert status_of(ordinary) == "cancelled"
    assert status_of(keeper) == "succeeded"


@pytest.mark.timeout(30)
def test_matrix_run_timeout_complete(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        ordinary = ex.submit(sleep_return, 20, "ordinary")
        keeper = ex.options(must_complete=True).submit(sleep_return, 1.0, "keeper")
        summary = ex.run(timeout=0.4)
    assert summary.timed_out and summary.status_word == "TIMED OUT"
    assert (status_of(ordinary), status_of(keeper)) == ("cancelled", "succeeded")
    assert summary.by_task_id()[keeper.task_id].value == "keeper"


@pytest.mark.timeout(30)
def test_matrix_run_timeout_cancel(transport: str) -> None:
    with Executor(procs=2, on_timeout="cancel", transport=transport) as ex:
        ordinary = ex.submit(sleep_return, 20, "ordinary")
        keeper = ex.options(must_complete=True).submit(sleep_return, 20, "keeper")
        started = time.monotonic()
        summary = ex.run(timeout=0.4)
        assert time.monotonic() - started < 10
    assert summary.timed_out
    assert (status_of(ordinary), status_of(keeper)) == ("cancelled", "cancelled")


@pytest.mark.timeout(30)
def test_matrix_fail_first(transport: str) -> None:
    with Executor(procs=3, fail_policy="fail_first", transport=transport) as ex:
        failing = ex.submit(fail_after, 0.3)
        ordinary = ex.submit(sleep_return, 20, "ordinary")
        keeper = ex.options(must_complete=True).submit(sleep_return, 1.0, "keeper")
        queued = ex.submit(sleep_return, 0.0, "queued")  # waits: all three workers are busy
        summary = ex.run()
    assert [status_of(f) for f in (failing, ordinary, keeper, queued)] == [
        "failed",
        "cancelled",
        "succeeded",
        "cancelled",
    ]
    assert "fail_first" in summary.by_task_id()[ordinary.task_id].message
    assert (summary.failed, summary.cancelled, summary.succeeded) == (1, 2, 1)


@pytest.mark.timeout(30)
def test_matrix_fut_cancel_cancels_both(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        ordinary = ex.submit(sleep_return, 20, "ordinary")
        keeper = ex.options(must_complete=True).submit(sleep_return, 20, "keeper")
        while ordinary.status() != "running" or keeper.status() != "running":
            time.sleep(0.02)
        assert ordinary.cancel() and keeper.cancel()
    assert (status_of(ordinary), status_of(keeper)) == ("cancelled", "cancelled")


@pytest.mark.timeout(30)
def test_matrix_group_cancel_cancels_both(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        ordinary = ex.group([(sleep_return, 20, "ordinary")])
        keeper = ex.options(must_complete=True).group([(sleep_return, 20, "keeper")])
        queued = ex.options(must_complete=True).group([(sleep_return, 20, "queued")])
        while ordinary.futures[0].status() != "running" or keeper.futures[0].status() != "running":
            time.sleep(0.02)
        assert [g.cancel() for g in (ordinary, keeper, queued)] == [1, 1, 1]
    statuses = [status_of(g.futures[0]) for g in (ordinary, keeper, queued)]
    assert statuses == ["cancelled"] * 3


@pytest.mark.timeout(30)
def test_matrix_forced_shutdown_cancels_both_within_a_second(transport: str) -> None:
    ex = Executor(procs=2, transport=transport)
    ordinary = ex.submit(sleep_return, 20, "ordinary")
    keeper = ex.options(must_complete=True).submit(sleep_return, 20, "keeper")
    queued = ex.options(must_complete=True).submit(sleep_return, 20, "queued")
    while ordinary.status() != "running" or keeper.status() != "running":
        time.sleep(0.02)
    started = time.monotonic()
    ex.shutdown(wait=True, kill=True)
    assert time.monotonic() - started < 1.0
    assert [status_of(f) for f in (ordinary, keeper, queued)] == ["cancelled"] * 3


# ------------------------------------------------------------------------------ fail_first


@pytest.mark.timeout(30)
def test_run_fail_policy_override_trips_on_an_earlier_failure() -> None:
    with Executor(procs=2) as ex:  # executor policy: continue
        failed = ex.submit(fail_after, 0.0)
        failed.exception(timeout=10)  # it failed before run() was called
        ordinary = ex.submit(sleep_return, 20, "ordinary")
        keeper = ex.options(must_complete=True).submit(sleep_return, 0.3, "keeper")
        summary = ex.run(fail_policy="fail_first")
        assert (status_of(ordinary), status_of(keeper)) == ("cancelled", "succeeded")
        assert summary.failed == 1 and summary.cancelled == 1
        # the override lasted only for that run: failures no longer cancel anything
        ex.submit(fail_after, 0.0)
        survivor = ex.submit(sleep_return, 0.3, "survivor")
        assert ex.run().succeeded == 1 and survivor.result() == "survivor"
    with pytest.raises(ValueError, match="fail_policy must be one of"):
        Executor(procs=1, fail_policy="stop")


# -------------------------------------------------------------------------------- rate


@pytest.mark.timeout(30)
def test_rate_paces_attempt_starts(transport: str) -> None:
    with Executor(procs=2, rate=20, burst=1, transport=transport) as ex:
        futures = [ex.submit(sleep_return, 0.0, str(i)) for i in range(10)]
        summary = ex.run()
    assert summary.succeeded == 10
    records = [f.task_result() for f in futures]
    starts = sorted(r.attempt_log[0].started_at or 0.0 for r in records if r is not None)
    assert len(starts) == 10
    span = starts[-1] - starts[0]
    assert span >= 9 / 20 * 0.8, f"10 starts at 20/s took only {span:.3f}s"


# ---------------------------------------------------------------------------- max_pending


@pytest.mark.timeout(30)
def test_max_pending_blocks_times_out_and_refuses(tmp_path: Path) -> None:
    # the tasks holding the room end only once their gate opens: a submit that waited for
    # room instead of refusing would wait until the gate's limit, and then not refuse
    gate = tmp_path / "gate"
    with Executor(procs=1, max_pending=2, submit_timeout=0.3) as ex:
        try:
            first = ex.submit(gated_return, str(gate), "a")
            ex.submit(gated_return, str(gate), "b")
            started = time.monotonic()
            with pytest.raises(QueueFullError, match="max_pending=2"):
                ex.submit(sleep_return, 0.0, "c")
            assert time.monotonic() - started >= 0.25  # it waited for room first
            assert not first.done()
        finally:
            gate.touch()
    gate.unlink()
    with Executor(procs=1, max_pending=1, submit_timeout=0) as ex:
        try:
            first = ex.submit(gated_return, str(gate), "a")
            with pytest.raises(QueueFullError):  # at once: submit_timeout=0 never waits
                ex.submit(sleep_return, 0.0, "b")
            assert not first.done()
        finally:
            gate.touch()
    with Executor(procs=1, max_pending=1) as ex:  # submit_timeout=None: waits for room
        first = ex.submit(sleep_return, 0.4, "a")
        second = ex.submit(sleep_return, 0.0, "b")  # blocks until the first finished
        assert first.done()
        assert second.result(timeout=10) == "b"


# ---------------------------------------------------------------------------------- hooks


@pytest.mark.timeout(30)
def test_hooks_are_called_in_the_parent_with_the_right_arguments(
    transport: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    starts: list[TaskFuture[Any]] = []
    retries: list[tuple[TaskFuture[Any], BaseException]] = []
    completes: list[TaskResult] = []
    attempts: list[Attempt] = []
    threads: set[str] = set()

    def on_start(fut: TaskFuture[Any]) -> None:
        threads.add(threading.current_thread().name)
        starts.append(fut)

    def on_complete(result: TaskResult) -> None:
        completes.append(result)
        raise RuntimeError("a broken hook")  # logged and ignored

    with Executor(
        procs=1,
        on_start=on_start,
        on_retry=lambda fut, exc: retries.append((fut, exc)),
        on_complete=on_complete,
        on_attempt=attempts.append,
        transport=transport,
    ) as ex:
        flaky = ex.options(retries=1, name="flaky").submit(fail_after, 0.0)
        fine = ex.options(name="fine").submit(sleep_return, 0.0, "ok")
        summary = ex.run()
    assert summary.failed == 1 and summary.succeeded == 1
    assert [f.name for f in starts] == ["flaky", "flaky", "fine"]
    assert len(retries) == 1 and retries[0][0] is flaky
    assert isinstance(retries[0][1], ValueError)
    assert sorted(r.name for r in completes) == ["fine", "flaky"]
    assert [(a.number, a.outcome) for a in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (1, "succeeded"),
    ]
    assert threads == {"osiiso_mp-supervisor"}  # in the parent, never in a worker
    assert fine.result() == "ok"
    assert sum("on_complete hook raised" in r.getMessage() for r in caplog.records) == 2
    assert all(r.levelno == logging.ERROR for r in caplog.records if "hook" in r.getMessage())


# ------------------------------------------------------------------------ interpreter exit


def run_script(path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Write ``source`` to ``path`` and run it to its end in a fresh interpreter."""
    path.write_text(source)
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=path.parent,
    )


EXIT_SCRIPT = textwrap.dedent(
    """
    import os, pathlib, sys, time
    from osiiso_mp import Executor

    def write_later(path):
        time.sleep(1.0)
        pathlib.Path(path).write_text(str(os.getpid()))

    ex = Executor(procs=2, start_method=sys.argv[1])  # never shut down, no with block
    pids = [ex.submit(os.getpid).result(timeout=30) for _ in range(4)]
    print(" ".join(str(p) for p in set(pids)), flush=True)
    for name in ("a", "b", "c"):  # two still running when the script ends, one queued
        ex.submit(write_later, name)
    """
)


@pytest.mark.timeout(60)
def test_the_interpreter_waits_for_submitted_tasks_at_exit(
    tmp_path: Path, start_method: str
) -> None:
    """As with ProcessPoolExecutor: a script that submits work and ends without shutdown()
    still gets its work done, then leaves no worker behind."""
    proc = run_script(tmp_path / "never_shut_down.py", EXIT_SCRIPT, start_method)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == "") == ["a", "b", "c"]
    pids = [int(p) for p in proc.stdout.split()]
    assert pids
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not left, f"workers {left} outlived their interpreter"


SUBMIT_AFTER_EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from osiiso_mp import Executor

    ex = Executor(procs=1, start_method=sys.argv[1])
    assert ex.submit(abs, -1).result(timeout=30) == 1

    def late():  # a non-daemon thread that outlives the main thread
        threading.main_thread().join()
        time.sleep(0.5)
        try:
            ex.submit(abs, -2)
        except RuntimeError as exc:
            print(type(exc).__name__, exc, flush=True)

    threading.Thread(target=late).start()
    """
)


@pytest.mark.timeout(60)
def test_submit_after_interpreter_shutdown_raises_runtime_error(
    tmp_path: Path, start_method: str
) -> None:
    proc = run_script(tmp_path / "submit_after_exit.py", SUBMIT_AFTER_EXIT_SCRIPT, start_method)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "ClosedError cannot schedule new futures after interpreter shutdown\n"
    ), proc.stderr
