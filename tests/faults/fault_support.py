"""Helpers shared by the fault tests: task functions, waiting, and the invariant checks.

Task functions here are imported by reference in the workers (the test directory is on the
sys.path the workers get), like any user module's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from process_support import gone as gone  # re-exported: fault tests import it from here
from process_support import read_written
from process_support import wait_for as wait_for

from osiiso_mp import Executor, RunSummary, TaskFuture, TaskResult
from osiiso_mp._errors import RemoteTraceback

WAIT = 15.0  # generous bound on a single result; a hang fails the test instead of killing pytest


class LockHoldingError(Exception):
    """Holds a lock: it cannot be pickled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def alive(pid: int) -> bool:
    return not gone(pid)


def canary(ex: Executor) -> int:
    """A task submitted after the fault succeeds; returns the pid that ran it."""
    fut = ex.submit(sleep_then_pid, 0.0)
    pid = fut.result(timeout=WAIT)
    summary = check_batch(ex, [fut])
    assert summary.succeeded == 1
    return pid


def check_batch(ex: Executor, futs: Sequence[TaskFuture[Any]]) -> RunSummary:
    """Collect the batch with ``run()`` and check it holds exactly one record per task."""
    summary = ex.run(timeout=WAIT)
    assert not summary.timed_out, f"run() timed out: {summary.report()}"
    ids = [f.task_id for f in futs]
    got = [r.task_id for r in summary.results]
    assert got == ids, f"records {got} != submitted {ids}"
    assert summary.total_submitted == len(futs)
    assert summary.succeeded + summary.failed + summary.cancelled == summary.total_submitted
    assert summary.succeeded == sum(r.status == "succeeded" for r in summary.results)
    assert summary.cancelled == sum(r.status == "cancelled" for r in summary.results)
    for fut, rec in zip(futs, summary.results, strict=True):
        assert len(rec.attempt_log) == rec.attempts, rec
        assert [a.number for a in rec.attempt_log] == list(range(1, rec.attempts + 1))
        assert fut.done()
        assert fut.task_result() is rec
        if rec.status == "succeeded":
            assert fut.result() == rec.value
        elif rec.status == "failed":
            assert fut.exception() is rec.exception
            assert rec.exception is not None
        else:
            assert fut.cancelled()
    return summary


def exit_with(code: int) -> None:
    os._exit(code)


def identity(x: Any) -> Any:
    return x


def only(summary: RunSummary, fut: TaskFuture[Any]) -> TaskResult:
    rec = summary.by_task_id()[fut.task_id]
    assert rec is fut.task_result()
    return rec


def read_pid_file(path: Path, timeout: float = WAIT) -> int:
    return int(read_written(path, timeout))


def remote_tb(exc: BaseException) -> str:
    cause = exc.__cause__
    assert isinstance(cause, RemoteTraceback), f"__cause__ is {cause!r}"
    return str(cause)


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def warm_pids(ex: Executor, n: int) -> list[int]:
    """Wait until all ``n`` workers serve; return their pids (distinct, in dispatch order).

    Tasks are dealt to the least loaded ready worker, so once every worker is ready a round
    of ``n`` slow tasks lands one per worker. The warm-up batch is collected and checked.
    """
    deadline = time.monotonic() + WAIT
    futs: list[TaskFuture[int]] = []
    while True:
        round_ = [ex.submit(sleep_then_pid, 0.2) for _ in range(n)]
        futs += round_
        pids = [f.result(timeout=WAIT) for f in round_]
        if len(set(pids)) == n:
            break
        assert time.monotonic() < deadline, f"workers never all ready: {pids}"
    summary = check_batch(ex, futs)
    assert summary.ok
    return pids


def write_pid_then_sleep(path: str, seconds: float) -> int:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, path)
    time.sleep(seconds)
    return os.getpid()
