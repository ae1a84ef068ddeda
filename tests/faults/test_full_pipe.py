"""A worker whose pipe to the supervisor is full must still announce before it runs.

A worker writes what it sends when its loop turns, and leaves what the kernel will not take
to a writer callback, which cannot run while a sync task holds the loop. A task's start
must nevertheless be out before the task runs: else, when the task crashes, the supervisor
still sees the task before it as running, and puts the crash down to that one. And a
worker's last results must be out before it exits. Here the supervisor is held busy (a
real ``Call`` sleeping on its thread) while a worker fills the pipe with a result, then the
next task ends the worker with ``os._exit``.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time

import pytest

from osiiso_mp import Executor, WorkerCrashedError
from osiiso_mp._runtime.protocol._commands import Call

pytestmark = pytest.mark.timeout(60)

VALUE = 500_000  # bytes per result: through the socket (shared memory starts at 1 MiB),
# more than the kernel holds for an unread socket (net.core.wmem_default, 208 KiB)


def produce(mode: str, pause: float = 0.0) -> bytes:
    if mode == "crash":
        os._exit(3)
    time.sleep(pause)
    return b"v" * (VALUE if mode == "big" else 1)


def _hold_supervisor(ex: Executor, seconds: float) -> threading.Event:
    """Keep the supervisor's thread (and so its reads) busy for ``seconds``."""
    started = threading.Event()

    def hold() -> None:
        started.set()
        time.sleep(seconds)

    ex._core.sup.post(Call(hold, cf.Future()))
    return started


def test_a_crash_behind_a_full_pipe_is_put_down_to_its_own_task() -> None:
    # timeout= makes every task announced; once `produce` is known to be quick, the next
    # task is sent ahead to the one worker, so both run while the supervisor cannot read
    with Executor(procs=1) as ex:
        view = ex.options(timeout=30)
        for fut in [view.submit(produce, "small") for _ in range(30)]:
            fut.result(timeout=30)
        ex.run()
        first = view.submit(produce, "big", 0.3)  # starts, then the supervisor is held
        crash = view.submit(produce, "crash")  # sent ahead: runs once first's result is out
        assert _hold_supervisor(ex, 2.0).wait(10)
        with pytest.raises(WorkerCrashedError):
            crash.result(timeout=30)
        assert first.result(timeout=30) == b"v" * VALUE
        summary = ex.run()
    (failed,) = summary.errors
    assert failed.task_id == crash.task_id
    assert failed.attempt_log[-1].outcome == "crashed" and failed.attempt_log[-1].exit_code == 3
    assert summary.succeeded == 1


def test_a_retiring_worker_sends_its_last_result_before_it_exits() -> None:
    # max_tasks_per_worker=1: the worker is told to stop with its task; it exits once the
    # task is done, and must not leave the result behind in a full pipe
    with Executor(procs=1, max_tasks_per_worker=1) as ex:
        fut = ex.submit(produce, "big", 0.3)
        assert _hold_supervisor(ex, 2.0).wait(10)
        assert fut.result(timeout=30) == b"v" * VALUE
        summary = ex.run()
    assert summary.succeeded == 1 and summary.results[0].attempts == 1
