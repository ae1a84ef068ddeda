"""Fault injection: every fault is real (exceptions, os._exit, signals, segfaults, timeouts).

After every fault the invariants of PRODUCT.md section 6 are checked: every submitted task has
exactly one TaskResult, the counts add up, ``len(attempt_log) == attempts``, and a canary
task submitted afterwards succeeds (the pool recovered).

Functions the tasks run are defined at module level, so workers import them by reference
(the test directory is on the parent's ``sys.path``, which workers inherit).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fault_support import (
    WAIT,
    LockHoldingError,
    alive,
    canary,
    check_batch,
    exit_with,
    gone,
    identity,
    only,
    read_pid_file,
    remote_tb,
    sleep_then_pid,
    wait_for,
    warm_pids,
    write_pid_then_sleep,
)

from osiiso_mp import (
    ClosedError,
    Executor,
    OsiisoError,
    RemoteError,
    SerializationError,
    TaskResult,
    TaskTimeoutError,
    WorkerCrashedError,
)
from osiiso_mp._errors import RemoteTraceback

SCRIPTS = Path(__file__).parent / "scripts"


# --- task functions (run in workers) --------------------------------------------------------


class CustomError(Exception):
    """An exception class of this module: must come back as itself."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


class TwoArgError(Exception):
    """Pickles with one argument but needs two: cannot be rebuilt in the parent."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(a)
        self.b = b


def raise_value_error(x: int) -> None:
    raise ValueError(f"bad value {x}")


def raise_custom(code: int) -> None:
    raise CustomError("custom failure", code)


def raise_chained() -> None:
    empty: dict[str, int] = {}
    try:
        empty["missing-key"]
    except KeyError as inner:
        raise RuntimeError("outer failure") from inner


def raise_lock_holding() -> None:
    raise LockHoldingError("holding a lock")


def raise_two_arg() -> None:
    raise TwoArgError("first arg", "second arg")


def raise_system_exit() -> None:
    sys.exit(3)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("task pressed ctrl-c")


def return_generator() -> Iterator[int]:
    return (i for i in range(3))


def return_lock() -> Any:
    return threading.Lock()


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def segfault() -> None:
    ctypes.string_at(0)


def crash_once(marker: str) -> int:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return os.getpid()


# --- helpers -----------------------------------------------------------------------------------


# --- 1. exceptions -------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_value_error_round_trips_with_remote_traceback(start_method: str) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.submit(raise_value_error, 42)
        with pytest.raises(ValueError, match="bad value 42") as info:
            fut.result(timeout=WAIT)
        exc = info.value
        assert type(exc) is ValueError
        tb = remote_tb(exc)
        assert "raise_value_error" in tb
        assert 'raise ValueError(f"bad value {x}")' in tb
        assert "Traceback (most recent call last)" in tb
        try:
            fut.result()
        except ValueError:
            pass
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert (summary.failed, summary.succeeded) == (1, 0)
        assert rec.status == "failed"
        assert rec.attempts == 1
        assert rec.attempt_log[0].outcome == "failed"
        assert rec.message == "bad value 42"
        canary(ex)


@pytest.mark.timeout(30)
def test_custom_exception_class_round_trips() -> None:
    with Executor(procs=1) as ex:
        fut = ex.submit(raise_custom, 17)
        with pytest.raises(CustomError) as info:
            fut.result(timeout=WAIT)
        exc = info.value
        assert type(exc) is CustomError
        assert exc.code == 17
        assert exc.args == ("custom failure", 17)
        assert "raise_custom" in remote_tb(exc)
        summary = check_batch(ex, [fut])
        assert summary.failed == 1
        canary(ex)


@pytest.mark.timeout(30)
def test_exception_class_from_main_script_is_caught_by_class(start_method: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "main_exception.py"), start_method],
        capture_output=True,
        text=True,
        timeout=25,
        cwd=str(SCRIPTS),
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "CAUGHT main boom 5" in proc.stdout


@pytest.mark.timeout(30)
def test_raise_from_keeps_the_chain_in_the_remote_traceback() -> None:
    with Executor(procs=1) as ex:
        fut = ex.submit(raise_chained)
        with pytest.raises(RuntimeError, match="outer failure") as info:
            fut.result(timeout=WAIT)
        tb = remote_tb(info.value)
        assert "KeyError: 'missing-key'" in tb
        assert "The above exception was the direct cause of the following exception" in tb
        assert "RuntimeError: outer failure" in tb
        assert tb.index("KeyError") < tb.index("RuntimeError: outer failure")
        summary = check_batch(ex, [fut])
        assert summary.failed == 1
        canary(ex)


@pytest.mark.timeout(30)
def test_unpicklable_exception_becomes_remote_error() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_lock_holding)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, RemoteError), repr(exc)
        assert exc.type_name.endswith("LockHoldingError")
        assert exc.message == "holding a lock"
        assert "raise_lock_holding" in exc.traceback
        assert 'raise LockHoldingError("holding a lock")' in exc.traceback
        assert "raise_lock_holding" in remote_tb(exc)
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.status == "failed" and rec.attempts == 1
        assert canary(ex) == pid  # worker reused


@pytest.mark.timeout(30)
def test_unrebuildable_exception_becomes_remote_error() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_two_arg)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, RemoteError), repr(exc)
        assert exc.type_name.endswith("TwoArgError")
        assert exc.message == "first arg"
        assert "raise_two_arg" in exc.traceback
        assert isinstance(exc.__cause__, RemoteTraceback)
        summary = check_batch(ex, [fut])
        assert summary.failed == 1
        assert canary(ex) == pid


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("fn", "exc_type"),
    [(raise_system_exit, SystemExit), (raise_keyboard_interrupt, KeyboardInterrupt)],
    ids=["SystemExit", "KeyboardInterrupt"],
)
def test_base_exceptions_fail_only_the_task(
    start_method: str, fn: Callable[[], None], exc_type: type[BaseException]
) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        pid = canary(ex)
        fut = ex.submit(fn)
        exc = fut.exception(timeout=WAIT)
        assert type(exc) is exc_type, repr(exc)
        assert fn.__name__ in remote_tb(exc)
        after = ex.submit(sleep_then_pid, 0.0)
        assert after.result(timeout=WAIT) == pid  # the same worker ran the next task
        summary = check_batch(ex, [fut, after])
        assert (summary.failed, summary.succeeded) == (1, 1)
        rec = only(summary, fut)
        assert rec.attempts == 1
        assert rec.attempt_log[0].outcome == "failed"
        assert rec.attempt_log[0].pid == pid
        assert canary(ex) == pid


# --- 2. serialization ----------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_unpicklable_argument_fails_without_an_attempt() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(identity, threading.Lock())
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, SerializationError), repr(exc)
        assert exc.stage == "arguments"
        assert "lock" in str(exc)
        assert "lock" in exc.type_name
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.status == "failed"
        assert rec.attempts == 0
        assert rec.attempt_log == ()
        assert rec.started_at is None
        assert canary(ex) == pid  # pool untouched


@pytest.mark.timeout(30)
def test_unpicklable_callable_fails_at_stage_callable() -> None:
    lock = threading.Lock()

    def use_lock() -> int:
        with lock:
            return 1

    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(use_lock)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, SerializationError), repr(exc)
        assert exc.stage == "callable"
        assert "lock" in str(exc)
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.attempts == 0 and rec.attempt_log == ()
        assert canary(ex) == pid


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("fn", "type_word"),
    [(return_generator, "generator"), (return_lock, "lock")],
    ids=["generator", "lock"],
)
def test_unpicklable_result_fails_and_worker_is_reused(
    fn: Callable[[], Any], type_word: str
) -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(fn)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, SerializationError), repr(exc)
        assert exc.stage == "result"
        assert type_word in str(exc)
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.attempts == 1
        assert rec.attempt_log[0].outcome == "failed"
        assert rec.attempt_log[0].pid == pid
        assert canary(ex) == pid  # worker reused


# --- 3. timeouts ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_timeout_kills_only_its_worker(start_method: str) -> None:
    with Executor(procs=2, start_method=start_method) as ex:
        pids = warm_pids(ex, 2)
        t0 = time.monotonic()
        slow = ex.options(timeout=0.5).submit(time.sleep, 10)
        other = ex.submit(sleep_then_pid, 1.0)
        exc = slow.exception(timeout=WAIT)
        elapsed = time.monotonic() - t0
        assert isinstance(exc, TaskTimeoutError), repr(exc)
        assert isinstance(exc, TimeoutError)
        assert elapsed < 5.0, f"timed out after {elapsed:.2f}s, not about 0.5s"
        other_pid = other.result(timeout=WAIT)
        summary = check_batch(ex, [slow, other])
        assert (summary.failed, summary.succeeded) == (1, 1)
        assert summary.telemetry.timeouts == 1
        rec = only(summary, slow)
        assert rec.attempts == 1
        attempt = rec.attempt_log[0]
        assert attempt.outcome == "timed_out"
        victim = attempt.pid
        assert victim is not None
        assert set(pids) == {victim, other_pid}, (pids, victim, other_pid)
        assert wait_for(lambda: gone(victim), 2.0), f"timed-out worker {victim} still alive"
        assert alive(other_pid), "the other worker was killed too"
        assert only(summary, other).attempt_log[0].pid == other_pid
        canary(ex)
        assert alive(other_pid)


@pytest.mark.timeout(30)
def test_timeout_is_retried(start_method: str) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        t0 = time.monotonic()
        fut = ex.options(timeout=0.5, retries=1).submit(time.sleep, 10)
        exc = fut.exception(timeout=WAIT)
        elapsed = time.monotonic() - t0
        assert isinstance(exc, TaskTimeoutError), repr(exc)
        assert elapsed < 8.0
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.attempts == 2
        assert [a.outcome for a in rec.attempt_log] == ["timed_out", "timed_out"]
        first, second = (a.pid for a in rec.attempt_log)
        assert first != second  # the first worker was killed and replaced
        assert summary.telemetry.timeouts == 2
        canary(ex)


# --- 4. crashes ----------------------------------------------------------------------------


def _check_crash(rec: TaskResult, exit_code: int) -> None:
    exc = rec.exception
    assert isinstance(exc, WorkerCrashedError), repr(exc)
    assert exc.exit_code == exit_code, str(exc)
    assert rec.status == "failed"
    assert rec.attempts == 1 == len(rec.attempt_log)
    attempt = rec.attempt_log[0]
    assert attempt.outcome == "crashed"
    assert attempt.exit_code == exit_code


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("fn", "args", "exit_code"),
    [
        (exit_with, (7,), 7),
        (kill_self, (), -signal.SIGKILL),
        (segfault, (), -signal.SIGSEGV),
    ],
    ids=["os._exit(7)", "SIGKILL-self", "segfault"],
)
def test_worker_crash_fails_task_with_exit_code(
    start_method: str, fn: Callable[..., None], args: tuple[Any, ...], exit_code: int
) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        pid = canary(ex)
        fut = ex.submit(fn, *args)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        summary = check_batch(ex, [fut])
        assert summary.failed == 1
        assert summary.telemetry.crashes == 1
        rec = only(summary, fut)
        _check_crash(rec, exit_code)
        assert rec.attempt_log[0].pid == pid
        assert wait_for(lambda: gone(pid), 2.0)
        assert canary(ex) != pid  # replaced


@pytest.mark.timeout(30)
def test_external_sigkill_of_a_busy_worker(start_method: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=2, start_method=start_method) as ex:
        pids = warm_pids(ex, 2)
        victim_task = ex.submit(write_pid_then_sleep, str(pid_file), 10.0)
        other = ex.submit(sleep_then_pid, 1.5)
        victim = read_pid_file(pid_file)
        assert victim in pids
        os.kill(victim, signal.SIGKILL)
        exc = victim_task.exception(timeout=WAIT)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        assert exc.exit_code == -signal.SIGKILL
        other_pid = other.result(timeout=WAIT)
        assert set(pids) == {victim, other_pid}
        summary = check_batch(ex, [victim_task, other])
        assert (summary.failed, summary.succeeded) == (1, 1)
        rec = only(summary, victim_task)
        _check_crash(rec, -signal.SIGKILL)
        assert rec.attempt_log[0].pid == victim
        other_rec = only(summary, other)
        assert other_rec.attempts == 1
        assert other_rec.attempt_log[0].outcome == "succeeded"
        assert alive(other_pid)
        canary(ex)
        assert alive(other_pid)


@pytest.mark.timeout(30)
def test_crash_is_retried_on_a_new_worker(start_method: str, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.options(retries=2).submit(crash_once, str(marker))
        value = fut.result(timeout=WAIT)
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.status == "succeeded"
        assert rec.attempts == 2
        first, second = rec.attempt_log
        assert first.outcome == "crashed"
        assert first.exit_code == 1
        assert second.outcome == "succeeded"
        assert first.pid != second.pid
        assert second.pid == value
        assert summary.telemetry.crashes == 1
        assert summary.telemetry.retries == 1
        canary(ex)


# --- 5. many crashes in a row --------------------------------------------------------------


@pytest.mark.timeout(30)
def test_twenty_crashes_then_twenty_successes(start_method: str) -> None:
    with Executor(procs=2, start_method=start_method) as ex:
        crashing = [ex.submit(exit_with, 1) for _ in range(20)]
        summary = check_batch(ex, crashing)
        assert summary.failed == 20
        assert summary.succeeded == 0
        for rec in summary.results:
            _check_crash(rec, 1)
        assert summary.telemetry.crashes == 20
        crash_pids = [rec.attempt_log[0].pid for rec in summary.results]
        assert len(set(crash_pids)) == 20  # every crash took a worker with it
        fine = [ex.submit(identity, i) for i in range(20)]
        assert [f.result(timeout=WAIT) for f in fine] == list(range(20))
        summary = check_batch(ex, fine)
        assert summary.ok and summary.succeeded == 20
        canary(ex)


# --- 6. parent death -----------------------------------------------------------------------


def _read_json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError("the script printed nothing in time")
        line = proc.stdout.readline()
    finally:
        sel.close()
    assert line, f"the script exited early: rc={proc.poll()}"
    data: dict[str, Any] = json.loads(line)
    return data


@pytest.mark.timeout(30)
def test_workers_die_with_a_sigkilled_parent(start_method: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "parent_death.py"), start_method],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd=str(SCRIPTS),
    )
    workers: list[int] = []
    server_pid: int | None = None
    try:
        info = _read_json_line(proc, 20.0)
        assert "workers" in info, info
        workers = info["workers"]
        assert len(set(workers)) == 2
        children = psutil.Process(proc.pid).children()
        servers = [c.pid for c in children if c.cmdline()[0].startswith("osiiso_mp fork server")]
        # both start methods go through the per-process server: it is the workers' parent
        # (forked from it, or fresh interpreters it started for "spawn")
        assert len(servers) == 1, [c.cmdline() for c in children]
        server_pid = servers[0]
        assert {c.pid for c in psutil.Process(server_pid).children()} >= set(workers)
        for pid in workers:
            assert alive(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        left = [pid for pid in workers if not wait_for(functools.partial(gone, pid), 2.0)]
        assert not left, f"workers {left} outlived their SIGKILLed parent"
        assert server_pid is not None
        assert wait_for(functools.partial(gone, server_pid), 2.0), (
            "the worker server outlived its parent"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in [*workers, *([] if server_pid is None else [server_pid])]:
            if alive(pid):  # a failed test must not leave strays behind
                os.kill(pid, signal.SIGKILL)
        assert proc.stdout is not None
        proc.stdout.close()


# --- 7. workers ignore SIGINT --------------------------------------------------------------


@pytest.mark.timeout(30)
def test_workers_ignore_sigint(start_method: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.submit(write_pid_then_sleep, str(pid_file), 1.0)
        pid = read_pid_file(pid_file)
        os.kill(pid, signal.SIGINT)
        assert fut.result(timeout=WAIT) == pid
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.status == "succeeded" and rec.attempts == 1
        assert alive(pid)
        assert canary(ex) == pid


# --- workers that die while starting ---------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("initializer", "initargs", "last"),
    [
        (os._exit, (3,), "exit code 3"),
        (ctypes.string_at, (0,), "SIGSEGV"),  # a segfault while starting
    ],
    ids=["os._exit", "segfault"],
)
def test_workers_that_die_while_starting_break_the_executor_instead_of_hanging(
    initializer: Callable[..., object], initargs: tuple[Any, ...], last: str
) -> None:
    # no exception to report (the initializer ends the process): the pool used to replace
    # its workers for ever, and a task waited for ever
    with Executor(procs=2, initializer=initializer, initargs=initargs) as ex:
        exc = ex.submit(abs, -1).exception(timeout=WAIT)
        assert isinstance(exc, OsiisoError), repr(exc)
        assert "workers exited before they were ready" in str(exc)
        assert last in str(exc)
        with pytest.raises(ClosedError, match="the executor is broken"):
            ex.submit(abs, -2)
