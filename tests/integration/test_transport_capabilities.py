"""The supervisor over a transport that shares nothing host-bound, with real processes.

:class:`HostlessTransport` starts real local workers but declares none of the local
transport's capabilities: no shared host (no ``sys.path``, working directory, environment,
CPUs or descriptors of ours), no shared memory, no exit codes, no common clock, no local
pids, no process groups. It is what a cluster transport looks like to the supervisor, so
these tests check that every such feature is gated by the capability and that tasks, large
values, crashes, timeouts and cancels still come out right without it. Each case also
runs on the local transport where the difference is observable, so the check can fail,
and on the Ray transport (actors of the session's local Ray), which must come out as the
hostless one does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import cloudpickle
import pytest

from osiiso_mp import Executor, WorkerCrashedError
from osiiso_mp._runtime.protocol._messages import Message
from osiiso_mp._runtime.transports._base import ELSEWHERE, LinkEvents
from osiiso_mp._runtime.transports._local import LocalLink, LocalTransport

# a worker elsewhere cannot import this test module (it gets no sys.path of ours), as a
# cluster worker could not without the module shipped to it: its functions travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG = 8 << 20  # well above the 1 MiB from which buffers may go in shared memory


class _NoExitCodes:
    """Reports a worker's exit without its code, as a transport that cannot see it."""

    def __init__(self, events: LinkEvents) -> None:
        self._events = events

    def message(self, msg: Message) -> None:
        self._events.message(msg)

    def closed(self) -> None:
        self._events.closed()

    def exited(self, code: int | None, reason: str | None = None) -> None:
        self._events.exited(None, reason)


class HostlessTransport(LocalTransport):
    """Local workers, seen as if they ran elsewhere: every capability off."""

    name = "hostless"
    capabilities = ELSEWHERE

    def connect(self, slot: int, loop: asyncio.AbstractEventLoop, events: LinkEvents) -> LocalLink:
        return super().connect(slot, loop, _NoExitCodes(events))


def _memfd_maps() -> int:
    """How many of this process's mappings are of shared-memory files (memfd)."""
    with open("/proc/self/maps") as maps:
        return sum("memfd:" in line for line in maps)


def _seen_by_worker(data: bytes) -> tuple[int, int]:
    return len(data), _memfd_maps()


def _make(n: int) -> bytes:
    return b"v" * n


def _where() -> tuple[str, list[str]]:
    return os.getcwd(), [k for k in os.environ if k.startswith("OSIISO_MP_TEST_")]


def _exit(code: int) -> None:
    os._exit(code)


def _sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def _crash_on(x: int) -> int:
    if x == 3:
        os._exit(5)
    return x * 10


def _transport(kind: str, request: pytest.FixtureRequest) -> Any:
    if kind == "ray":  # the real thing: actors of the session's local Ray
        request.getfixturevalue("ray_session")
        return "ray"
    return HostlessTransport() if kind == "hostless" else "local"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["local", "hostless", "ray"])
def test_large_values_travel_in_shared_memory_only_where_the_transport_has_it(
    kind: str, request: pytest.FixtureRequest
) -> None:
    shared = kind == "local"
    with Executor(procs=1, transport=_transport(kind, request)) as ex:
        size, worker_maps = ex.submit(_seen_by_worker, b"a" * BIG).result(timeout=30)
        before = _memfd_maps()
        value = ex.submit(_make, BIG).result(timeout=30)
        after = _memfd_maps()
        chunked = list(ex.map(_make, [BIG, 1, BIG], chunksize=3))
    assert size == BIG
    assert value == b"v" * BIG
    assert chunked == [b"v" * BIG, b"v", b"v" * BIG]
    # the argument reached the worker as a mapping of shared memory, or inline
    assert (worker_maps > 0) is shared
    # and the value came back the same way (the parent maps it while it holds the value)
    assert (after > before) is shared


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["local", "hostless", "ray"])
def test_working_directory_and_environment_are_ours_only_on_our_host(
    kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OSIISO_MP_TEST_MARK", "1")
    with Executor(procs=1, transport=_transport(kind, request)) as ex:
        cwd, env = ex.submit(_where).result(timeout=30)
    if kind == "local":
        assert (cwd, env) == (str(tmp_path), ["OSIISO_MP_TEST_MARK"])
    else:  # a worker elsewhere keeps its own (here: the fork server's, set before the test)
        assert cwd != str(tmp_path)
        assert env == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["local", "hostless"])
def test_a_crash_is_recorded_with_its_exit_code_only_where_the_transport_knows_it(
    kind: str, request: pytest.FixtureRequest
) -> None:
    with Executor(procs=1, transport=_transport(kind, request)) as ex:
        fut = ex.options(retries=1).submit(_exit, 7)
        with pytest.raises(WorkerCrashedError) as caught:
            fut.result(timeout=30)
        summary = ex.run()
    record = summary.results[0]
    codes = [a.exit_code for a in record.attempt_log]
    assert [a.outcome for a in record.attempt_log] == ["crashed", "crashed"]
    if kind == "local":
        assert codes == [7, 7]
        assert "exit code 7" in str(caught.value)
    else:
        assert codes == [None, None]
        assert "exit status unknown" in str(caught.value)


@pytest.mark.timeout(90)
def test_without_host_capabilities_timeouts_cancels_and_chunk_splits_still_hold() -> None:
    with Executor(procs=2, transport=HostlessTransport()) as ex:
        timed = ex.options(timeout=0.5).submit(_sleep, 30)
        running = ex.submit(_sleep, 30)
        deadline = time.monotonic() + 20
        while running.status() != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.cancel()
        with pytest.raises(WorkerCrashedError):
            list(ex.map(_crash_on, range(6), chunksize=6))
        fine = ex.submit(_sleep, 0).result(timeout=30)
        summary = ex.run()
    assert fine == "slept"
    with pytest.raises(TimeoutError):
        timed.result()
    assert running.cancelled()
    by_name: dict[str, list[str]] = {}
    for record in summary.results:
        by_name.setdefault(record.name, []).append(record.status)
    # the chunk was run again item by item after its worker died: only item 3 failed
    assert sorted(by_name["_crash_on"]) == ["failed"] + ["succeeded"] * 5


@pytest.mark.timeout(60)
def test_times_from_workers_elsewhere_are_mapped_onto_our_clock() -> None:
    start = time.perf_counter()
    with Executor(procs=2, transport=HostlessTransport()) as ex:
        for i in range(4):
            ex.submit(_sleep, 0.05 * i)
        summary = ex.run()
        stats = ex.stats()
    end = time.perf_counter()
    assert len(stats.workers) == 2 and stats.completed == 4
    for record in summary.results:
        assert record.status == "succeeded"
        (attempt,) = record.attempt_log
        assert attempt.started_at is not None
        assert start <= record.created_at <= attempt.started_at <= attempt.finished_at <= end
        assert attempt.duration == pytest.approx(attempt.finished_at - attempt.started_at)


def _hold(n: int, seconds: float) -> int:
    data = b"\x01" * n  # every page written: resident
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # pure Python, holding the worker's loop (and GIL)
        sum(range(1000))
    return len(data)


@pytest.mark.timeout(60)
def test_a_worker_we_cannot_read_watches_its_own_memory_mid_task_and_is_replaced() -> None:
    from osiiso_mp import MemoryLimitError

    limit = 200 << 20
    with Executor(procs=1, transport=HostlessTransport(), max_rss=limit) as ex:
        pid = ex.submit(os.getpid).result(timeout=30)
        start = time.monotonic()
        fut = ex.submit(_hold, 300 << 20, 20.0)
        exc = fut.exception(timeout=30)
        elapsed = time.monotonic() - start
        assert isinstance(exc, MemoryLimitError), repr(exc)
        assert elapsed < 10.0, f"stopped after {elapsed:.1f}s: the task holds on for 20s"
        assert exc.limit == limit and exc.rss > limit
        record = fut.task_result()
        assert record is not None
        assert [a.outcome for a in record.attempt_log] == ["memory_exceeded"]
        assert ex.submit(os.getpid).result(timeout=30) != pid  # on a replacement


@pytest.mark.timeout(60)
def test_stats_of_workers_we_cannot_read_come_from_their_reports() -> None:
    with Executor(procs=2, transport=HostlessTransport()) as ex:
        fut = ex.submit(_hold, 80 << 20, 5.0)  # reported even while it holds the loop
        deadline = time.monotonic() + 10
        rows = ex.stats().workers
        while not any(w.rss > 80 << 20 for w in rows) and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = ex.stats().workers
        fut.cancel()
    assert all(w.rss > 0 for w in rows)
    busy = [w for w in rows if w.rss > 80 << 20]
    assert len(busy) == 1 and busy[0].cpu_percent > 10  # the one holding 80 MiB, spinning
