"""Stopped workers are replaced; workers take the processes their tasks started with them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_support import gone

from osiiso_mp import Executor, TaskTimeoutError, WorkerCrashedError


def wait_text(path: Path, timeout: float = 10.0) -> str:
    """Wait until ``path`` has content; return it."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def wait_gone(pid: int, timeout: float = 2.0) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit."""
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def pid_then_sleep(pid_file: str, seconds: float) -> int:
    """Write our pid, then sleep."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def start_child(pid_file: str, then_sleep: float) -> int:
    """Start a child process that would outlive us, record its pid, then sleep."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(pid_file).write_text(str(child.pid))
    time.sleep(then_sleep)
    return child.pid


@pytest.mark.timeout(30)
def test_a_stopped_busy_worker_is_replaced(start_method: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.submit(pid_then_sleep, str(pid_file), 60)
        pid = int(wait_text(pid_file))
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(WorkerCrashedError, match="stopped"):
            fut.result(timeout=15)
        assert time.monotonic() - started < 6  # 2 s grace, checked every 0.5 s
        assert wait_gone(pid)
        assert ex.submit(os.getpid).result(timeout=15) != pid  # a replacement serves
        summary = ex.run()
    record = summary.results[0]
    assert record.attempt_log[-1].outcome == "crashed"
    assert summary.telemetry.respawns >= 1


@pytest.mark.timeout(30)
def test_a_stopped_idle_worker_is_replaced(tmp_path: Path) -> None:
    with Executor(procs=1) as ex:
        pid = ex.submit(os.getpid).result(timeout=15)
        os.kill(pid, signal.SIGSTOP)
        assert wait_gone(pid, 6.0)
        assert ex.submit(os.getpid).result(timeout=15) != pid
        assert ex.run().succeeded == 2


@pytest.mark.timeout(30)
def test_children_die_with_a_killed_worker(start_method: str, tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.options(timeout=1.0).submit(start_child, str(child_file), 60)
        child = int(wait_text(child_file))
        assert not gone(child)
        with pytest.raises(TaskTimeoutError):
            fut.result(timeout=15)
        assert wait_gone(child), "the task's child outlived its killed worker"
        assert ex.submit(abs, -1).result(timeout=15) == 1


@pytest.mark.timeout(30)
def test_children_die_when_the_executor_shuts_down(start_method: str, tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    with Executor(procs=1, start_method=start_method) as ex:
        child = ex.submit(start_child, str(child_file), 0.0).result(timeout=15)
        assert not gone(child)  # the task returned; its child lives on while the worker does
    assert wait_gone(child), "the task's child outlived the executor"


TICKS: list[float] = []


async def leave_background_task() -> str:
    """Start a task that would run forever, and return without awaiting it."""
    import asyncio

    async def forever() -> None:
        while True:
            TICKS.append(time.monotonic())
            await asyncio.sleep(0.01)

    asyncio.get_running_loop().create_task(forever())
    await asyncio.sleep(0.05)
    return "left one behind"


async def count_background() -> tuple[int, int]:
    """Other live tasks on this worker's loop, and ticks seen during 0.2 s."""
    import asyncio

    before = len(TICKS)
    await asyncio.sleep(0.2)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return len(others), len(TICKS) - before


@pytest.mark.timeout(30)
def test_background_tasks_of_a_coroutine_are_cancelled_when_it_ends() -> None:
    with Executor(procs=1, concurrency=1) as ex:
        assert ex.submit(leave_background_task).result(timeout=10) == "left one behind"
        others, ticks = ex.submit(count_background).result(timeout=10)
    assert (others, ticks) == (0, 0)


@pytest.mark.timeout(60)
def test_workers_and_grandchildren_die_with_a_sigkilled_parent(start_method: str) -> None:
    script = Path(__file__).parent / "scripts" / "parent_with_grandchild.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), start_method],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        worker, grandchild = (int(p) for p in proc.stdout.readline().split())
        assert not gone(worker) and not gone(grandchild)
        proc.kill()
        proc.wait(timeout=10)
        assert wait_gone(worker), "the worker outlived its SIGKILLed parent"
        assert wait_gone(grandchild), "a task's child outlived the SIGKILLed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def ignore_sigterm_then_sleep(pid_file: str) -> None:
    """Ignore SIGTERM (as some programs do), then overrun any timeout."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


@pytest.mark.timeout(30)
def test_a_task_ignoring_sigterm_is_still_stopped_at_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Executor(procs=1) as ex:
        fut = ex.options(timeout=0.5).submit(ignore_sigterm_then_sleep, str(pid_file))
        pid = int(wait_text(pid_file))
        with pytest.raises(TaskTimeoutError):
            fut.result(timeout=15)
        assert wait_gone(pid)  # SIGKILL cannot be ignored
        assert ex.submit(abs, -2).result(timeout=15) == 2
