"""The same executor over Ray actors (``transport="ray"``) as over local processes.

The cases that mean the same on a cluster run over both transports (the ``transport``
fixture); those only Ray has (its reasons for an actor's end, the data plane's door, a
Ray started by the executor) run on Ray alone. Every worker actor is a real Ray actor on
the session's local Ray, killed for real.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from process_support import gone, wait_for

from osiiso_mp import (
    Executor,
    MemoryLimitError,
    RayTransport,
    TaskTimeoutError,
)

# a cluster's workers import what the cluster has (here: osiiso_mp, from the working
# directory Ray gives them), not this test module: its functions travel by value, as a
# user's own modules would with cloudpickle.register_pickle_by_value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

WAIT = 60


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def async_sleep_then_pid(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


def crash_first_time(marker: str) -> int:
    """Dies (``os._exit(3)``) the first time; returns its pid after."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return os.getpid()


def sleep_first_time(marker: str) -> int:
    """Sleeps 30 s the first time (to be killed); returns its pid after."""
    if not os.path.exists(marker):
        Path(marker).touch()
        time.sleep(30)
    return os.getpid()


def hold(n: int, seconds: float) -> int:
    data = b"\x01" * n  # every page written: resident
    time.sleep(seconds)
    return len(data)


def _running(ex: Executor, fut: Any) -> None:
    assert wait_for(lambda: fut.status() == "running", 20), fut.status()


# --- over both transports ----------------------------------------------------------------


@pytest.mark.timeout(120)
def test_every_task_gets_one_record_and_map_keeps_input_order(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        where = "forkserver" if transport == "local" else "ray"  # how, or where, they run
        assert repr(ex) == f"<Executor procs=2 {where} open>"
        futs = [ex.submit(square, i) for i in range(10)]
        mapped = list(ex.map(square, range(200), chunksize=16))
        group = ex.group(square, range(5))
        assert [f.result(timeout=WAIT) for f in futs] == [i * i for i in range(10)]
        assert group.values() == [i * i for i in range(5)]
        summary = ex.run(timeout=WAIT)
    assert mapped == [i * i for i in range(200)]
    assert summary.total_submitted == 215 and summary.succeeded == 215
    assert len({r.task_id for r in summary.results}) == 215
    for record in summary.results:
        assert len(record.attempt_log) == record.attempts == 1
        (attempt,) = record.attempt_log
        assert attempt.started_at is not None
        assert record.created_at <= attempt.started_at <= attempt.finished_at
        if transport == "local":  # where it ran: this host, or the Ray node
            assert attempt.node == socket.gethostname()
        else:
            assert re.fullmatch(r"\S+:[0-9a-f]{8}", attempt.node), attempt.node


@pytest.mark.timeout(120)
def test_a_crashed_attempt_is_retried_on_another_worker_and_others_go_on(
    transport: str, tmp_path: Path
) -> None:
    with Executor(procs=2, transport=transport) as ex:
        others = [ex.submit(sleep_then_pid, 0.05) for _ in range(6)]
        fut = ex.options(retries=1).submit(crash_first_time, str(tmp_path / "crashed"))
        second = fut.result(timeout=WAIT)
        assert all(isinstance(o.result(timeout=WAIT), int) for o in others)
        record = fut.task_result()
    assert record is not None and record.status == "succeeded"
    first, retry = record.attempt_log
    assert (first.outcome, retry.outcome) == ("crashed", "succeeded")
    assert first.pid != second == retry.pid
    assert "died while running the task" in first.error
    if transport == "ray":
        assert "Ray: ActorDiedError" in first.error


@pytest.mark.timeout(120)
def test_a_sync_task_past_its_timeout_is_stopped_with_its_worker(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        before = ex.submit(pid).result(timeout=WAIT)
        fut = ex.options(timeout=1.0).submit(sleep_then_pid, 30)
        _running(ex, fut)
        started = time.monotonic()
        exc = fut.exception(timeout=WAIT)
        late = time.monotonic() - started
        assert isinstance(exc, TaskTimeoutError), repr(exc)
        assert late < 2.0, f"the attempt ended {late:.2f}s after it started, timeout 1s"
        assert wait_for(lambda: gone(before), 5), "the timed-out worker is still alive"
        after = ex.submit(pid).result(timeout=WAIT)
    assert after != before
    record = fut.task_result()
    assert record is not None and [a.outcome for a in record.attempt_log] == ["timed_out"]


@pytest.mark.timeout(120)
def test_cancelling_a_running_sync_task_replaces_its_worker_an_async_one_keeps_it(
    transport: str,
) -> None:
    with Executor(procs=1, transport=transport) as ex:
        first = ex.submit(pid).result(timeout=WAIT)
        coro = ex.submit(async_sleep_then_pid, 30)
        _running(ex, coro)
        assert coro.cancel()
        same = ex.submit(pid).result(timeout=WAIT)
        sync = ex.submit(sleep_then_pid, 30)
        _running(ex, sync)
        assert sync.cancel()
        assert wait_for(lambda: gone(first), 5), "the cancelled task's worker is alive"
        replacement = ex.submit(pid).result(timeout=WAIT)
    assert same == first  # the async cancel stayed in place
    assert replacement != first
    assert coro.cancelled() and sync.cancelled()


@pytest.mark.timeout(120)
def test_a_task_above_max_rss_mid_run_ends_memory_exceeded_and_its_worker_is_replaced(
    transport: str,
) -> None:
    limit = 250 << 20
    with Executor(procs=1, transport=transport, max_rss=limit) as ex:
        before = ex.submit(pid).result(timeout=WAIT)
        fut = ex.submit(hold, 400 << 20, 20)
        started = time.monotonic()
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, MemoryLimitError), repr(exc)
        assert time.monotonic() - started < 10, "not stopped mid-task (it holds for 20s)"
        assert exc.limit == limit and exc.rss > limit
        after = ex.submit(pid).result(timeout=WAIT)
    assert after != before
    record = fut.task_result()
    assert record is not None
    (attempt,) = record.attempt_log
    assert attempt.outcome == "memory_exceeded" and attempt.peak_rss > limit


# --- Ray alone ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_worker_actor_killed_from_outside_is_a_crash_with_rays_reason(
    ray_session: None, tmp_path: Path
) -> None:
    with Executor(procs=2, transport="ray") as ex:
        fut = ex.options(retries=1).submit(sleep_first_time, str(tmp_path / "slept"))
        _running(ex, fut)
        info = fut.info()
        assert info is not None and info.worker_pid is not None
        victim = info.worker_pid
        os.kill(victim, signal.SIGKILL)
        retried_on = fut.result(timeout=WAIT)
        other = ex.submit(square, 4).result(timeout=WAIT)
    assert other == 16
    record = fut.task_result()
    assert record is not None and record.status == "succeeded"
    first, retry = record.attempt_log
    assert first.outcome == "crashed" and first.pid == victim
    assert first.exit_code is None  # Ray cannot tell an os._exit's or a SIGKILL's code
    assert "Ray: ActorDiedError" in first.error
    assert retry.pid == retried_on != victim


class _Planted:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.mark.timeout(120)
def test_the_data_plane_lets_no_stranger_in_and_the_executor_goes_on(
    ray_session: None, tmp_path: Path
) -> None:
    planted = tmp_path / "unpickled"
    evil = pickle.dumps(_Planted(str(planted)))
    transport = RayTransport()
    with Executor(procs=2, transport=transport) as ex:
        assert ex.submit(square, 3).result(timeout=WAIT) == 9
        listener = transport._listener
        assert listener is not None
        for payload in (evil + b"\0" * 100, os.urandom(300), b""):
            with socket.create_connection(listener.address, timeout=5) as stranger:
                stranger.settimeout(15)
                try:  # the listener may have closed it already (a reset): that is the point
                    if payload:
                        stranger.sendall(payload)
                    stranger.shutdown(socket.SHUT_WR)
                    while stranger.recv(4096):
                        pass
                except OSError:
                    pass
        assert list(ex.map(square, range(20))) == [i * i for i in range(20)]
        address = listener.address
    assert not planted.exists()
    with pytest.raises(OSError):  # closed with the executor
        socket.create_connection(address, timeout=2).close()


@pytest.mark.timeout(180)
def test_a_ray_started_by_the_executor_sizes_the_pool_and_is_shut_down_with_it() -> None:
    # in a process of its own: this one shares the session's Ray
    script = textwrap.dedent(
        """
        import builtins, os, sys, psutil
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        from osiiso_mp import Executor
        before = (builtins.print, dict(os.environ))
        with Executor(transport="ray") as ex:
            import ray
            print("procs", ex.procs)
            print("cpus", int(ray.cluster_resources()["CPU"]))
            print("values", ex.submit(sum, (1, 2)).result(timeout=60))
            print("started", ex._core.sup.transport.started_ray)
        import ray
        print("initialized", ray.is_initialized())
        print("restored", (builtins.print, dict(os.environ)) == before)
        me = psutil.Process()
        left = [p for p in me.children(recursive=True) if p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]
        print("left", len(left))
        """
    )
    env = {**os.environ, "RAY_ADDRESS": "local"}  # a Ray of its own, never the session's
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["procs"] == lines["cpus"]  # procs=None: the cluster's CPUs
    assert lines["values"] == "3"
    assert lines["started"] == "True"
    assert lines["initialized"] == "False"
    assert lines["restored"] == "True"  # Ray's print and environment variables undone
    assert lines["left"] == "0"
