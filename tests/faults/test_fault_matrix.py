"""The fault matrix: faults at every stage of a task's life, and around the pool's.

Stages: submission (pickling in the caller's thread), the worker before the callable runs
(unpickling happens there right after ``TaskStarted`` was sent), running, the result's trip
back, the executor's lifecycle (cancel, shutdown), and the parent process itself (the logging
lock, hundreds of executors in a row).

Every fault is real: ``__reduce__`` methods that raise, exit, hard-exit or segfault in the
process that (un)pickles them, ``os._exit``, signals sent with ``os.kill`` to the pid a task
wrote to a file, a pure-Python loop past its timeout. Afterwards the invariants of
PRODUCT.md section 6 are checked as in ``test_faults.py``: every submitted task has exactly
one ``TaskResult`` (collected with ``run()``), the counts add up, ``len(attempt_log) ==
attempts``, and a canary task submitted afterwards succeeds.

What ``test_faults.py`` already covers is not repeated here (an unpicklable argument or
closure, ``raise ... from``, exceptions holding a lock or needing two arguments, SystemExit
and KeyboardInterrupt, ``os._exit(7)``, segfault and self-SIGKILL while running, an external
SIGKILL of a busy worker, a sleeping task past its timeout, an unpicklable return value).

Task functions and the misbehaving classes live at module level: workers import this module
by reference (the test directory is on the parent's ``sys.path``, which workers inherit).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import gc
import hashlib
import importlib
import logging
import os
import random
import shutil
import signal
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

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
    TaskFuture,
    TaskResult,
    TaskTimeoutError,
    WorkerCrashedError,
)
from osiiso_mp._errors import RemoteTraceback
from osiiso_mp._runtime.transports._forkserver import ForkServer

BIG = 100 * 2**20  # 100 MiB


# --- functions run at (un)pickling time ------------------------------------------------------


def raise_value_error(message: str) -> NoReturn:
    raise ValueError(message)


def call_sys_exit(code: int) -> NoReturn:
    sys.exit(code)


def hard_exit(code: int) -> NoReturn:
    os._exit(code)


def segfault_now() -> NoReturn:
    ctypes.string_at(0)
    raise AssertionError("unreachable")


# --- objects whose pickling misbehaves (in the process that pickles them) --------------------


class PickleRaises:
    """Pickling raises ValueError."""

    def __reduce__(self) -> tuple[Any, ...]:
        raise ValueError("pickled badly")


class PickleExits:
    """Pickling calls sys.exit(4)."""

    def __reduce__(self) -> tuple[Any, ...]:
        sys.exit(4)


class PickleHardExits:
    """Pickling ends the process with os._exit(5)."""

    def __reduce__(self) -> tuple[Any, ...]:
        os._exit(5)


class SlowToPickle:
    """Pickling takes ``seconds`` of CPU (like a large object graph); unpickles to a str."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        deadline = time.perf_counter() + self.seconds
        n = 0
        while time.perf_counter() < deadline:
            n += 1
        return (str, ("pickled slowly",))


# --- objects whose *unpickling* misbehaves (in the worker, after TaskStarted) ----------------


class UnpickleRaises:
    def __reduce__(self) -> tuple[Any, ...]:
        return (raise_value_error, ("unpickled badly",))


class UnpickleExits:
    def __reduce__(self) -> tuple[Any, ...]:
        return (call_sys_exit, (4,))


class UnpickleHardExits:
    def __reduce__(self) -> tuple[Any, ...]:
        return (hard_exit, (9,))


class UnpickleSegfaults:
    def __reduce__(self) -> tuple[Any, ...]:
        return (segfault_now, ())


# --- exceptions ----------------------------------------------------------------------------


class CodedError(Exception):
    """An ordinary exception class of this module: comes back as itself."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


class LambdaHoldingError(Exception):
    """Holds a lambda: plain pickle fails, cloudpickle succeeds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.transform: Callable[[int], int] = lambda x: x * 2


class AttachmentError(Exception):
    """Carries an attachment whose pickling misbehaves."""

    def __init__(self, message: str, attachment: object) -> None:
        super().__init__(message)
        self.attachment = attachment


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    """A frozen dataclass exception: unpickling sets attributes, which it forbids."""

    code: int


def raise_with_context() -> None:
    try:
        int("not a number")
    except ValueError:
        raise RuntimeError("failed while handling")  # noqa: B904 - the implicit context


def raise_with_notes() -> None:
    exc = CodedError("annotated failure", 3)
    exc.add_note("first note: input was 42")
    exc.add_note("second note: retried never")
    raise exc


def raise_group() -> None:
    raise ExceptionGroup(
        "several failures",
        [
            ValueError("first member"),
            CodedError("second member", 2),
            ExceptionGroup("nested group", [KeyError("nested-key")]),
        ],
    )


def raise_group_with_unpicklable_member() -> None:
    raise ExceptionGroup("mixed group", [ValueError("fine"), LockHoldingError("holds a lock")])


def raise_lambda_holding() -> None:
    raise LambdaHoldingError("holds a lambda")


def raise_with_attachment(kind: str) -> None:
    attachment = PickleRaises() if kind == "raises" else PickleExits()
    raise AttachmentError(f"attachment {kind}", attachment)


def raise_frozen(by_keyword: bool) -> None:
    raise FrozenError(code=5) if by_keyword else FrozenError(5)


def raise_generator_exit() -> None:
    raise GeneratorExit("task raised GeneratorExit")


# --- task functions --------------------------------------------------------------------------


def gated_exit(gate: str, code: int) -> None:
    while not os.path.exists(gate):
        time.sleep(0.01)
    os._exit(code)


def spin_forever() -> NoReturn:
    n = 0
    while True:
        n += 1


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# --- helpers (as in test_faults.py) ----------------------------------------------------------


def check_crash(rec: TaskResult, exit_code: int) -> None:
    exc = rec.exception
    assert isinstance(exc, WorkerCrashedError), repr(exc)
    assert exc.exit_code == exit_code, str(exc)
    assert rec.status == "failed"
    assert rec.attempts == 1 == len(rec.attempt_log)
    assert rec.attempt_log[0].outcome == "crashed"
    assert rec.attempt_log[0].exit_code == exit_code


def failed_in_worker_and_reused(ex: Executor, fut: TaskFuture[Any], pid: int) -> TaskResult:
    """``fut`` failed in one attempt on worker ``pid``, which then runs the canary."""
    summary = check_batch(ex, [fut])
    rec = only(summary, fut)
    assert (summary.failed, summary.succeeded) == (1, 0)
    assert rec.attempts == 1
    assert rec.attempt_log[0].outcome == "failed"
    assert rec.attempt_log[0].pid == pid
    assert canary(ex) == pid  # the worker survived and was reused
    return rec


# --- 1. submission side: pickling in the caller's thread -----------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("arg", "detail"),
    [(PickleRaises(), "ValueError: pickled badly"), (PickleExits(), "SystemExit: 4")],
    ids=["raises", "sys.exit"],
)
def test_argument_whose_pickling_misbehaves_fails_at_stage_arguments(
    arg: object, detail: str
) -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(identity, arg)  # neither raises nor exits the caller
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, SerializationError), repr(exc)
        assert exc.stage == "arguments"
        assert detail in str(exc)
        assert type(arg).__name__ in str(exc), f"the error does not name the type: {exc}"
        assert fut.task_id in str(exc)
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.status == "failed" and rec.attempts == 0 and rec.attempt_log == ()
        assert canary(ex) == pid  # pool untouched


@pytest.mark.timeout(30)
def test_slow_argument_pickling_does_not_delay_other_timeouts(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=2) as ex:
        warm_pids(ex, 2)
        timed = ex.options(timeout=0.5).submit(write_pid_then_sleep, str(pid_file), 10.0)
        read_pid_file(pid_file)
        started = time.monotonic()
        box: list[TaskFuture[Any]] = []
        pickler = threading.Thread(target=lambda: box.append(ex.submit(identity, SlowToPickle(2))))
        pickler.start()
        try:
            exc = timed.exception(timeout=WAIT)
            elapsed = time.monotonic() - started
            still_pickling = pickler.is_alive()
        finally:
            pickler.join(WAIT)
        assert isinstance(exc, TaskTimeoutError), repr(exc)
        assert elapsed < 1.5, f"the 0.5s timeout fired {elapsed:.2f}s after the task started"
        assert still_pickling, "the slow pickling ended before the timeout: nothing was tested"
        slow = box[0]
        assert slow.result(timeout=WAIT) == "pickled slowly"
        summary = check_batch(ex, [timed, slow])
        assert (summary.failed, summary.succeeded) == (1, 1)
        assert only(summary, timed).attempt_log[0].outcome == "timed_out"
        canary(ex)


@pytest.mark.timeout(30)
def test_hundred_megabyte_argument_arrives_intact() -> None:
    data = random.Random(11).randbytes(BIG)
    expected = hashlib.sha256(data).hexdigest()
    with Executor(procs=1) as ex:
        fut = ex.submit(sha256_of, data)
        del data
        assert fut.result(timeout=WAIT) == expected
        summary = check_batch(ex, [fut])
        assert summary.ok
        canary(ex)


# --- 2. worker side, before the callable runs: unpickling ----------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("arg", "type_name", "detail"),
    [(UnpickleRaises(), "ValueError", "unpickled badly"), (UnpickleExits(), "SystemExit", "4")],
    ids=["raises", "sys.exit"],
)
def test_argument_unpickling_failure_fails_the_task_and_the_worker_survives(
    arg: object, type_name: str, detail: str
) -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(identity, arg)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, SerializationError), repr(exc)
        assert exc.stage == "unpickling"
        assert exc.type_name == type_name
        assert detail in str(exc)
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("arg", "exit_code"),
    [(UnpickleHardExits(), 9), (UnpickleSegfaults(), -signal.SIGSEGV)],
    ids=["os._exit(9)", "segfault"],
)
def test_argument_unpickling_that_kills_the_worker_fails_only_that_task(
    start_method: str, arg: object, exit_code: int
) -> None:
    with Executor(procs=2, start_method=start_method) as ex:
        pids = warm_pids(ex, 2)
        neighbour = ex.submit(sleep_then_pid, 1.0)
        bad = ex.submit(identity, arg)
        after = [ex.submit(identity, i) for i in range(4)]
        exc = bad.exception(timeout=WAIT)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        assert [f.result(timeout=WAIT) for f in after] == list(range(4))
        neighbour_pid = neighbour.result(timeout=WAIT)
        summary = check_batch(ex, [neighbour, bad, *after])
        assert (summary.failed, summary.succeeded) == (1, 5)
        assert summary.telemetry.crashes == 1
        rec = only(summary, bad)
        check_crash(rec, exit_code)
        victim = rec.attempt_log[0].pid
        assert victim is not None
        assert set(pids) == {victim, neighbour_pid}
        for fut in after:  # whatever was only sent to the dead worker ran elsewhere, once
            assert only(summary, fut).attempts == 1
        assert wait_for(lambda: gone(victim), 2.0)
        assert alive(neighbour_pid)
        canary(ex)


@pytest.mark.timeout(30)
def test_callable_from_a_module_the_worker_cannot_import(tmp_path: Path) -> None:
    name = f"fm_vanishing_{uuid.uuid4().hex[:12]}"
    source = tmp_path / f"{name}.py"
    source.write_text("import os\n\n\ndef where() -> int:\n    return os.getpid()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module: ModuleType = importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
    source.unlink()
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
    try:
        where: Callable[[], int] = module.where
        assert where() == os.getpid()  # importable here, and nowhere else
        with Executor(procs=1) as ex:
            pid = canary(ex)
            fut = ex.submit(where)
            exc = fut.exception(timeout=WAIT)
            assert isinstance(exc, SerializationError), repr(exc)
            assert exc.stage == "unpickling"
            assert exc.type_name == "ModuleNotFoundError"
            assert name in str(exc)
            failed_in_worker_and_reused(ex, fut, pid)
    finally:
        sys.modules.pop(name, None)


# --- 3. running: exceptions ----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_implicit_context_is_kept_in_the_remote_traceback() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_with_context)
        exc = fut.exception(timeout=WAIT)
        assert type(exc) is RuntimeError, repr(exc)
        assert str(exc) == "failed while handling"
        tb = remote_tb(exc)
        assert "ValueError: invalid literal for int()" in tb
        assert "During handling of the above exception, another exception occurred" in tb
        assert tb.index("ValueError") < tb.index("RuntimeError: failed while handling")
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
def test_exception_notes_survive_the_trip() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_with_notes)
        exc = fut.exception(timeout=WAIT)
        assert type(exc) is CodedError, repr(exc)
        assert exc.code == 3
        assert exc.__notes__ == ["first note: input was 42", "second note: retried never"]
        tb = remote_tb(exc)
        assert "first note: input was 42" in tb and "second note: retried never" in tb
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
def test_exception_group_round_trips_with_its_members() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_group)
        exc = fut.exception(timeout=WAIT)
        assert type(exc) is ExceptionGroup, repr(exc)
        assert exc.message == "several failures"
        first, second, nested = exc.exceptions
        assert type(first) is ValueError and str(first) == "first member"
        assert type(second) is CodedError and second.code == 2
        assert type(nested) is ExceptionGroup
        assert [type(e) for e in nested.exceptions] == [KeyError]
        caught: list[BaseException] = []
        try:
            fut.result()
        except* CodedError as group:  # except* works on the rebuilt group
            caught.extend(group.exceptions)
        except* (ValueError, KeyError):
            pass
        assert [type(e) for e in caught] == [CodedError]
        tb = remote_tb(exc)
        for text in ("several failures", "ValueError: first member", "nested group"):
            assert text in tb, text
        assert "KeyError: 'nested-key'" in tb
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
def test_exception_group_with_an_unpicklable_member_becomes_remote_error() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_group_with_unpicklable_member)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, RemoteError), repr(exc)
        assert exc.type_name == "ExceptionGroup"
        assert "mixed group" in exc.message
        assert "LockHoldingError: holds a lock" in exc.traceback
        assert "ValueError: fine" in exc.traceback
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
def test_exception_holding_a_lambda_comes_back_as_itself() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_lambda_holding)
        exc = fut.exception(timeout=WAIT)
        assert type(exc) is LambdaHoldingError, repr(exc)
        assert exc.transform(21) == 42
        assert "raise_lambda_holding" in remote_tb(exc)
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["raises", "exits"])
def test_exception_whose_attribute_cannot_be_pickled_becomes_remote_error(kind: str) -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_with_attachment, kind)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, RemoteError), repr(exc)
        assert exc.type_name.endswith("AttachmentError")
        assert exc.message == f"attachment {kind}"
        assert "raise_with_attachment" in exc.traceback
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("by_keyword", [False, True], ids=["positional", "keyword"])
def test_frozen_dataclass_exception_becomes_remote_error(by_keyword: bool) -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_frozen, by_keyword)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, RemoteError), repr(exc)
        assert exc.type_name.endswith("FrozenError")
        assert "raise_frozen" in exc.traceback
        assert isinstance(exc.__cause__, RemoteTraceback)
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
def test_generator_exit_fails_only_the_task() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(raise_generator_exit)
        exc = fut.exception(timeout=WAIT)
        assert type(exc) is GeneratorExit, repr(exc)
        assert "raise_generator_exit" in remote_tb(exc)
        failed_in_worker_and_reused(ex, fut, pid)


# --- 4. running: the worker dies or hangs --------------------------------------------------


@pytest.mark.timeout(30)
def test_os_exit_zero_is_still_a_crash(start_method: str) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        pid = canary(ex)
        fut = ex.submit(exit_with, 0)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        summary = check_batch(ex, [fut])
        check_crash(only(summary, fut), 0)
        assert "exit code 0" in str(exc)
        assert summary.telemetry.crashes == 1
        assert wait_for(lambda: gone(pid), 2.0)
        assert canary(ex) != pid  # replaced


@pytest.mark.timeout(30)
def test_external_sigterm_of_a_busy_worker(start_method: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.submit(write_pid_then_sleep, str(pid_file), 10.0)
        queued = ex.submit(identity, "after")
        victim = read_pid_file(pid_file)
        os.kill(victim, signal.SIGTERM)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        assert queued.result(timeout=WAIT) == "after"
        summary = check_batch(ex, [fut, queued])
        assert (summary.failed, summary.succeeded) == (1, 1)
        rec = only(summary, fut)
        check_crash(rec, -signal.SIGTERM)
        assert rec.attempt_log[0].pid == victim
        assert only(summary, queued).attempts == 1
        assert canary(ex) != victim


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_external_signal_to_an_idle_worker(start_method: str, sig: signal.Signals) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        pid = canary(ex)
        os.kill(pid, sig)
        assert wait_for(lambda: gone(pid), 5.0)
        new = canary(ex)  # no task was lost; a replacement serves
        assert new != pid
        (worker,) = ex.stats().workers
        assert worker.pid == new
        assert worker.restarts == 1
        summary = ex.run(timeout=WAIT)
        assert summary.total_submitted == 0


@pytest.mark.timeout(30)
def test_several_workers_killed_at_once(start_method: str, tmp_path: Path) -> None:
    with Executor(procs=3, start_method=start_method) as ex:
        idle = warm_pids(ex, 3)
        for pid in idle:  # all idle workers at once
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: all(gone(p) for p in idle), 5.0)
        busy_pids = warm_pids(ex, 3)
        assert not set(busy_pids) & set(idle)
        # all busy workers at once, with tasks queued behind them
        files = [tmp_path / f"pid{i}" for i in range(3)]
        busy = [ex.submit(write_pid_then_sleep, str(f), 10.0) for f in files]
        victims = [read_pid_file(f) for f in files]
        assert sorted(victims) == sorted(busy_pids)
        queued = [ex.submit(identity, i) for i in range(6)]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        for fut in busy:
            exc = fut.exception(timeout=WAIT)
            assert isinstance(exc, WorkerCrashedError), repr(exc)
        assert [f.result(timeout=WAIT) for f in queued] == list(range(6))
        summary = check_batch(ex, [*busy, *queued])
        assert (summary.failed, summary.succeeded) == (3, 6)
        assert summary.telemetry.crashes == 3
        for fut, pid in zip(busy, victims, strict=True):
            rec = only(summary, fut)
            check_crash(rec, -signal.SIGKILL)
            assert rec.attempt_log[0].pid == pid
        for fut in queued:
            rec = only(summary, fut)
            assert rec.attempts == 1 and rec.attempt_log[0].pid not in victims
        canary(ex)
        assert len({w.pid for w in ex.stats().workers} - set(victims) - {None}) == 3


@pytest.mark.timeout(30)
def test_pure_python_infinite_loop_is_killed_at_its_timeout() -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        t0 = time.monotonic()
        fut: TaskFuture[Any] = ex.options(timeout=0.5).submit(spin_forever)
        exc = fut.exception(timeout=WAIT)
        elapsed = time.monotonic() - t0
        assert isinstance(exc, TaskTimeoutError), repr(exc)
        assert elapsed < 3.0, f"timed out after {elapsed:.2f}s, not about 0.5s"
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        assert rec.attempts == 1 and rec.attempt_log[0].outcome == "timed_out"
        assert rec.attempt_log[0].pid == pid
        assert wait_for(lambda: gone(pid), 2.0), "the spinning worker is still alive"
        assert canary(ex) != pid


# --- 5. result side ------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("cls", "detail"),
    [(PickleRaises, "pickled badly"), (PickleExits, "SystemExit")],
    ids=["raises", "sys.exit"],
)
def test_result_whose_pickling_misbehaves_fails_and_the_worker_is_reused(
    cls: Callable[[], object], detail: str
) -> None:
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(cls)  # the worker calls the class: the instance is the result
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, SerializationError), repr(exc)
        assert exc.stage == "result"
        assert detail in str(exc)
        failed_in_worker_and_reused(ex, fut, pid)


@pytest.mark.timeout(30)
def test_worker_dying_while_pickling_its_result(start_method: str) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        pid = canary(ex)
        fut = ex.submit(PickleHardExits)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, WorkerCrashedError), repr(exc)
        summary = check_batch(ex, [fut])
        rec = only(summary, fut)
        check_crash(rec, 5)
        assert rec.attempt_log[0].pid == pid
        assert canary(ex) != pid


@pytest.mark.timeout(30)
def test_hundred_megabyte_result_arrives_intact() -> None:
    expected = hashlib.sha256(make_blob(23, BIG)).hexdigest()
    with Executor(procs=1) as ex:
        pid = canary(ex)
        fut = ex.submit(make_blob, 23, BIG)
        value = fut.result(timeout=WAIT)
        assert len(value) == BIG
        assert hashlib.sha256(value).hexdigest() == expected
        del value
        summary = check_batch(ex, [fut])
        assert summary.ok
        assert canary(ex) == pid


# --- 6. lifecycle --------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_cancel_racing_with_completion_has_exactly_one_outcome() -> None:
    rng = random.Random(5)
    calls: collections.Counter[str] = collections.Counter()
    calls_lock = threading.Lock()

    def count(f: Any) -> None:
        with calls_lock:
            calls[f.task_id] += 1

    with Executor(procs=2) as ex:
        warm_pids(ex, 2)
        futs: list[TaskFuture[None]] = []
        answers: list[bool] = []
        for _ in range(60):
            fut = ex.submit(time.sleep, 0.02)
            fut.add_done_callback(count)
            time.sleep(rng.uniform(0.0, 0.05))  # around the task's completion
            answers.append(fut.cancel())
            futs.append(fut)
        summary = check_batch(ex, futs)
        for fut, said in zip(futs, answers, strict=True):
            rec = only(summary, fut)
            if said:
                assert rec.status == "cancelled" and fut.cancelled(), rec
            else:
                assert rec.status == "succeeded" and not fut.cancelled(), rec
            assert fut.cancel() is said  # asking again gives the same answer
        assert summary.cancelled == sum(answers)
        assert summary.succeeded == len(futs) - sum(answers)
        assert wait_for(lambda: len(calls) == len(futs), 2.0)
        assert set(calls.values()) == {1}, "a done-callback ran more than once"
        canary(ex)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("mode", "method"),
    [
        ("drain", "forkserver"),
        ("cancel_futures", "forkserver"),
        ("kill", "forkserver"),
        ("kill", "spawn"),
    ],
)
def test_shutdown_with_running_and_queued_tasks(mode: str, method: str, tmp_path: Path) -> None:
    ex = Executor(procs=2, start_method=method)
    try:
        warm_pids(ex, 2)
        files = [tmp_path / f"pid{i}" for i in range(2)]
        # killed, they must not be waited for: in that mode they would run for 30 s
        nap = 30.0 if mode == "kill" else 1.0
        running = [ex.submit(write_pid_then_sleep, str(f), nap) for f in files]
        pids = [read_pid_file(f) for f in files]
        queued = [ex.submit(identity, i) for i in range(3)]
        t0 = time.monotonic()
        ex.shutdown(wait=True, cancel_futures=mode == "cancel_futures", kill=mode == "kill")
        elapsed = time.monotonic() - t0
    finally:
        ex.shutdown(kill=True)
    summary = check_batch(ex, [*running, *queued])
    if mode == "drain":
        assert summary.succeeded == 5
        assert [f.result() for f in queued] == [0, 1, 2]
    elif mode == "cancel_futures":
        assert [r.status for r in summary.results] == ["succeeded"] * 2 + ["cancelled"] * 3
        assert all(r.attempts == 0 for r in summary.results[2:])
    else:
        assert summary.cancelled == 5, summary.report()
        assert elapsed < 10.0, f"a forced shutdown took {elapsed:.2f}s"
        for fut in running:
            rec = only(summary, fut)
            assert rec.attempts == 1 and rec.attempt_log[0].outcome == "cancelled"
    assert all(gone(p) for p in pids)
    with pytest.raises(ClosedError):
        ex.submit(identity, 0)


@pytest.mark.timeout(30)
def test_worker_dying_during_a_graceful_shutdown(start_method: str, tmp_path: Path) -> None:
    ex = Executor(procs=2, start_method=start_method)
    stopper = threading.Thread(target=ex.shutdown)  # wait=True: drains
    try:
        warm_pids(ex, 2)
        files = [tmp_path / f"pid{i}" for i in range(2)]
        # 4 s: the kill below must land while the task still runs, even on a
        # loaded machine where reading the pid files and closing take a while.
        running = [ex.submit(write_pid_then_sleep, str(f), 4.0) for f in files]
        pids = [read_pid_file(f) for f in files]
        queued = [ex.submit(identity, i) for i in range(3)]
        stopper.start()
        assert wait_for(lambda: "closed" in repr(ex), 2.0)
        time.sleep(0.1)  # let the supervisor take the Shutdown command
        os.kill(pids[0], signal.SIGKILL)
        stopper.join(WAIT)
        assert not stopper.is_alive(), "shutdown hung after a worker died during it"
    finally:
        ex.shutdown(kill=True)
    summary = check_batch(ex, [*running, *queued])
    assert (summary.failed, summary.succeeded) == (1, 4), summary.report()
    check_crash(only(summary, running[0]), -signal.SIGKILL)
    assert [f.result() for f in queued] == [0, 1, 2]


@pytest.mark.timeout(30)
def test_workers_dying_after_shutdown_asked_them_to_stop(start_method: str) -> None:
    ex = Executor(procs=2, start_method=start_method)
    try:
        pids = warm_pids(ex, 2)
        ex.shutdown(wait=False)
        for pid in pids:
            # A worker may already have obeyed the stop and been reaped: the
            # race this test provokes is the one where it has not.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        ex.shutdown(wait=True)
        assert time.monotonic() - t0 < 3.0
    finally:
        ex.shutdown(kill=True)
    assert all(gone(p) for p in pids)
    assert ex.run(timeout=WAIT).total_submitted == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "forced"])
def test_shutdown_from_the_done_callback_of_a_crashed_task(kill: bool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    pid_file = tmp_path / "pid"
    called = threading.Event()
    errors: list[BaseException] = []
    threads: list[int] = []
    ex = Executor(procs=2)

    def stop(_: Any) -> None:
        try:
            ex.shutdown(wait=True, kill=kill)
        except BaseException as exc:
            errors.append(exc)
        finally:
            threads.append(threading.get_ident())
            called.set()

    try:
        warm_pids(ex, 2)
        other = ex.submit(write_pid_then_sleep, str(pid_file), 1.0)
        other_pid = read_pid_file(pid_file)
        crash = ex.submit(gated_exit, str(gate), 6)
        queued = [ex.submit(identity, i) for i in range(3)]
        crash.add_done_callback(stop)
        gate.touch()
        assert called.wait(WAIT), "the done-callback never finished"
        assert errors == []
        assert threads != [threading.get_ident()]  # it ran on the supervisor thread
        finisher = threading.Thread(target=ex.shutdown)
        finisher.start()
        finisher.join(WAIT)
        assert not finisher.is_alive(), "shutdown after a callback's shutdown hung"
    finally:
        ex.shutdown(kill=True)
    summary = check_batch(ex, [other, crash, *queued])
    check_crash(only(summary, crash), 6)
    other_rec = only(summary, other)
    assert other_rec.status == ("cancelled" if kill else "succeeded")
    for fut in queued:
        rec = only(summary, fut)
        if kill:
            assert rec.status in ("succeeded", "cancelled"), rec
        else:
            assert rec.status == "succeeded", rec
    assert gone(other_pid)
    with pytest.raises(ClosedError):
        ex.submit(identity, 0)


# --- 7. the parent process -----------------------------------------------------------------


@pytest.mark.timeout(40)
def test_starting_and_replacing_workers_while_the_logging_lock_is_held(start_method: str) -> None:
    lock: threading.RLock = vars(logging)["_lock"]
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    outcome: list[object] = []

    def scenario() -> None:
        try:
            with Executor(procs=1, start_method=start_method) as ex:
                pid = canary(ex)  # started
                crash = ex.submit(exit_with, 3)
                exc = crash.exception(timeout=WAIT)
                assert isinstance(exc, WorkerCrashedError), repr(exc)
                check_crash(only(check_batch(ex, [crash]), crash), 3)
                assert canary(ex) != pid  # replaced
            outcome.append("ok")
        except BaseException as exc:
            outcome.append(exc)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    runner = threading.Thread(target=scenario, daemon=True)
    try:
        runner.start()
        runner.join(20)
        finished_while_held = not runner.is_alive()
    finally:
        release.set()
        holder.join(5)
        runner.join(WAIT)
    assert finished_while_held, "starting or replacing a worker waits for the logging lock"
    assert outcome == ["ok"], outcome


def _child_processes() -> set[int]:
    """Live descendants of this process, except the shared fork server."""
    server = ForkServer._instance
    server_pid = server.pid if server is not None and server.alive else None
    out = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid != server_pid and proc.status() != psutil.STATUS_ZOMBIE:
                out.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def _zombies() -> set[int]:
    out = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                out.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


@pytest.mark.timeout(90)
def test_two_hundred_executors_in_a_row_leave_nothing_behind() -> None:
    # the per-process fork server and its reader thread persist by design: start them first
    for method in ("forkserver", "spawn"):
        with Executor(procs=1, start_method=method) as first:
            assert first.submit(pow, 2, 3).result(timeout=WAIT) == 8
    gc.collect()
    fds_before, threads_before = _open_fds(), threading.active_count()
    children_before, zombies_before = _child_processes(), _zombies()
    kinds: collections.Counter[str] = collections.Counter()
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(200):
            method = "spawn" if i % 10 == 9 else "forkserver"
            kind = "init" if i % 20 == 7 else "crash" if i % 20 in (3, 19) else "ok"
            kinds[f"{method}-{kind}"] += 1
            if kind == "init":  # the initializer fails in every worker: the executor breaks
                ex = Executor(
                    procs=1, start_method=method, initializer=int, initargs=("not a number",)
                )
                try:
                    fut = ex.submit(pow, 2, i)
                    exc = fut.exception(timeout=WAIT)
                    assert isinstance(exc, OsiisoError), repr(exc)
                    assert "initializer" in str(exc)
                except ClosedError as closed:  # broken before the submit
                    assert "initializer" in str(closed)
                finally:
                    ex.shutdown()
            elif kind == "crash":
                with Executor(procs=1, start_method=method) as ex:
                    exc = ex.submit(os._exit, 3).exception(timeout=WAIT)
                    assert isinstance(exc, WorkerCrashedError), repr(exc)
                    assert exc.exit_code == 3
            else:
                with Executor(procs=1, start_method=method) as ex:
                    assert ex.submit(pow, 2, i).result(timeout=WAIT) == 2**i
        del ex
        gc.collect()
    elapsed = time.monotonic() - t0
    assert [str(w.message) for w in caught] == []
    assert kinds["forkserver-init"] == 10 and kinds["spawn-crash"] == 10

    def back_to_baseline() -> bool:
        return (
            _open_fds() <= fds_before
            and threading.active_count() <= threads_before
            and _child_processes() <= children_before
            and _zombies() <= zombies_before
        )

    wait_for(back_to_baseline, 5.0)
    assert _open_fds() <= fds_before, f"descriptors leaked: {_open_fds()} > {fds_before}"
    assert threading.active_count() <= threads_before, [t.name for t in threading.enumerate()]
    assert _child_processes() <= children_before, "processes left behind"
    assert _zombies() <= zombies_before, "unreaped children"
    assert elapsed < 60, f"200 executors took {elapsed:.1f}s"
