"""Resource caps with real workers: ``max_rss``, ``cpu_affinity``, ``nice``, ``inner_threads``.

PRODUCT.md sections 6 and 7: a worker above ``max_rss`` is killed and replaced, and the task
it ran fails (or retries) with :class:`MemoryLimitError`; one left above the cap by a task is
recycled before its next task; workers can be pinned to CPUs, niced, and told how many
BLAS/OpenMP threads to use.

Functions the tasks run are defined at module level, so workers import them by reference
(the test directory is on the parent's ``sys.path``, which workers inherit); ``_HOARD`` is
therefore a module global of each worker process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from process_support import gone, wait_for

from osiiso_mp import Executor, MemoryLimitError, OsiisoError, TaskResult
from osiiso_mp._resources import THREAD_ENV_VARS, ProcessRss, cpu_budget, thread_env
from osiiso_mp._runtime.supervisor import _common as _supervisor_common

MiB = 1024**2
WAIT = 15.0  # generous bound on a single result; a hang fails the test instead of killing pytest

# --- task functions (run in workers) --------------------------------------------------------

_HOARD: list[bytes] = []  # a worker's module global: what is put here stays resident


def allocate_and_sleep(n: int, seconds: float) -> int:
    """Make ``n`` bytes resident (every page written), then hold them for ``seconds``."""
    data = b"\x01" * n
    time.sleep(seconds)
    return len(data)


def allocate_unless_marked(marker: str, n: int) -> int:
    """The first call (no marker yet) allocates ``n`` bytes and sleeps; later ones do not."""
    if not os.path.exists(marker):
        Path(marker).touch()
        allocate_and_sleep(n, 10.0)
    return os.getpid()


def hoard(n: int) -> int:
    """Keep ``n`` resident bytes in this worker after returning; return the worker's pid."""
    if n:
        _HOARD.append(b"\x01" * n)
    return os.getpid()


def append_pid(path: str) -> int:
    """Append this worker's pid to ``path`` (a record of every process that ran it)."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid()


def pid_and_affinity() -> tuple[int, list[int]]:
    time.sleep(0.2)  # long enough for a round of two to land one task per worker
    return os.getpid(), sorted(os.sched_getaffinity(0))


def niceness() -> int:
    return os.nice(0)


def thread_variables() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in THREAD_ENV_VARS}


# --- helpers -----------------------------------------------------------------------------------


def record(fut_result: TaskResult | None) -> TaskResult:
    assert fut_result is not None
    assert len(fut_result.attempt_log) == fut_result.attempts
    return fut_result


def canary(ex: Executor) -> int:
    """A task submitted after the fault succeeds; returns the pid that ran it."""
    return ex.submit(hoard, 0).result(timeout=WAIT)


needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs os.sched_setaffinity and at least 2 usable CPUs",
)

# --- max_rss ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_task_above_max_rss_fails_with_memory_limit_error(start_method: str) -> None:
    limit = 300 * MiB
    with Executor(procs=1, start_method=start_method, max_rss="300MiB") as ex:
        assert ex.config.max_rss == limit
        pid = canary(ex)
        t0 = time.monotonic()
        fut = ex.submit(allocate_and_sleep, 400 * MiB, 10.0)
        exc = fut.exception(timeout=WAIT)
        elapsed = time.monotonic() - t0
        assert isinstance(exc, MemoryLimitError), repr(exc)
        assert elapsed < 5.0, f"killed after {elapsed:.2f}s: the task sleeps 10s once allocated"
        assert exc.limit == limit
        assert exc.rss > limit
        assert exc.task_id == fut.task_id and exc.name == "allocate_and_sleep"
        assert "exceeded max_rss 300.00 MiB" in str(exc)
        rec = record(fut.task_result())
        assert rec.status == "failed" and rec.attempts == 1
        attempt = rec.attempt_log[0]
        assert attempt.outcome == "memory_exceeded"
        assert attempt.exit_code == -9
        assert attempt.pid == pid
        assert attempt.peak_rss == exc.rss
        assert attempt.error.startswith("MemoryLimitError: worker memory")
        assert wait_for(lambda: gone(pid), 2.0), f"worker {pid} above max_rss still alive"
        new_pid = canary(ex)  # the pool recovered
        assert new_pid != pid
        summary = ex.run(timeout=WAIT)
        assert summary.telemetry.memory_exceeded == 1
        assert ex.stats().workers[0].restarts == 1


@pytest.mark.timeout(30)
def test_memory_exceeded_is_retried(tmp_path: Path) -> None:
    marker = tmp_path / "allocated-once"
    with Executor(procs=1, max_rss="300MiB") as ex:
        fut = ex.options(retries=1).submit(allocate_unless_marked, str(marker), 400 * MiB)
        second_pid = fut.result(timeout=WAIT)
        rec = record(fut.task_result())
        assert rec.status == "succeeded" and rec.attempts == 2
        first, second = rec.attempt_log
        assert (first.outcome, second.outcome) == ("memory_exceeded", "succeeded")
        assert first.exit_code == -9
        assert first.pid != second.pid == second_pid
        assert second.peak_rss < 300 * MiB


# local only: a Ray worker watches its own memory mid-task (no "unsampled" run), and a bare
# Ray worker is about 95 MB resident, above this test's limit // 2
@pytest.mark.timeout(30)
@pytest.mark.parametrize("sampling", ["sampled", "unsampled"])
def test_worker_above_max_rss_after_a_task_is_recycled_before_the_next(
    sampling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sampling == "unsampled":
        # no periodic sample ever runs: the guarantee must come from the check made as
        # the task finished, not from sampling luck
        monkeypatch.setattr(_supervisor_common, "RSS_INTERVAL", 3600.0)
    limit = 150 * MiB
    with Executor(procs=1, max_rss=limit) as ex:
        a = ex.submit(hoard, 200 * MiB)
        a_rec = record(a.task_result(timeout=WAIT))
        if sampling == "unsampled":
            assert a_rec.status == "succeeded"  # nothing watched it while it ran
        if a_rec.status == "succeeded":
            a_pid = a_rec.value
        else:  # a sample caught it before it returned
            assert isinstance(a_rec.exception, MemoryLimitError), a_rec
            a_pid = a_rec.attempt_log[0].pid
        b = ex.submit(hoard, 0)
        b_pid = b.result(timeout=WAIT)
        assert b_pid != a_pid, "the next task ran on the worker left above max_rss"
        b_rec = record(b.task_result())
        assert b_rec.attempts == 1
        assert b_rec.attempt_log[0].peak_rss < limit // 2
        assert wait_for(lambda: gone(a_pid), 2.0)
        assert ex.stats().workers[0].restarts == 1


# local only: a Ray worker watches its own memory, so task A is stopped mid-task instead
@pytest.mark.timeout(30)
def test_a_task_sent_ahead_never_starts_on_a_worker_left_above_max_rss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Task B is pipelined behind A (both are known to be short), so it already sits in the
    # worker when A leaves the worker above the cap: the worker itself must refuse to start
    # it, and B must run once, elsewhere.
    monkeypatch.setattr(_supervisor_common, "RSS_INTERVAL", 3600.0)
    runs = tmp_path / "runs"
    with Executor(procs=1, max_rss="150MiB") as ex:
        for _ in range(20):  # teach the supervisor that both callables are short
            ex.submit(hoard, 0).result(timeout=WAIT)
            ex.submit(append_pid, str(tmp_path / "warm")).result(timeout=WAIT)
        a = ex.submit(hoard, 200 * MiB)
        b = ex.submit(append_pid, str(runs))
        a_pid = a.result(timeout=WAIT)
        b_pid = b.result(timeout=WAIT)
        assert b_pid != a_pid
        assert runs.read_text().split() == [str(b_pid)], "B started on the worker above the cap"
        assert record(b.task_result()).attempts == 1


@pytest.mark.timeout(30)
def test_workers_above_max_rss_before_any_task_break_the_executor(transport: str) -> None:
    # a cap below a bare worker's size: replacing workers forever would help nobody
    with Executor(procs=1, max_rss="1MiB", transport=transport) as ex:
        fut = ex.submit(hoard, 0)
        exc = fut.exception(timeout=WAIT)
        assert isinstance(exc, OsiisoError), repr(exc)
        assert "above max_rss" in str(exc) and "before running any task" in str(exc)
        assert ex.stats().workers[0].restarts >= 2


@pytest.mark.timeout(30)
def test_no_memory_sampling_without_max_rss() -> None:
    with Executor(procs=1) as ex:
        assert ex.config.max_rss is None
        assert ex.submit(allocate_and_sleep, 50 * MiB, 0.0).result(timeout=WAIT) == 50 * MiB
        assert ex._core.sup.memcap.timer is None


# --- cpu_affinity ------------------------------------------------------------------------------


def _two_worker_affinities(ex: Executor) -> dict[int, list[int]]:
    """``{pid: affinity}`` as each of the two workers reports it from inside."""
    seen: dict[int, list[int]] = {}
    deadline = time.monotonic() + WAIT
    while len(seen) < 2 and time.monotonic() < deadline:
        for fut in [ex.submit(pid_and_affinity) for _ in range(2)]:
            pid, cpus = fut.result(timeout=WAIT)
            seen[pid] = cpus
    assert len(seen) == 2, seen
    return seen


@needs_affinity
@pytest.mark.timeout(30)
def test_cpu_affinity_pins_each_worker_to_one_cpu(start_method: str) -> None:
    with Executor(procs=2, start_method=start_method, cpu_affinity=[0, 1]) as ex:
        assert ex.config.cpu_affinity == (frozenset({0}), frozenset({1}))
        inside = _two_worker_affinities(ex)
        assert sorted(inside.values()) == [[0], [1]]
        for snap in ex.stats().workers:  # slot i is pinned to cpus[i], seen from outside too
            assert snap.pid is not None
            assert psutil.Process(snap.pid).cpu_affinity() == [snap.worker]
            assert inside[snap.pid] == [snap.worker]


@needs_affinity
@pytest.mark.timeout(30)
def test_cpu_affinity_sets_of_cpus() -> None:
    with Executor(procs=2, cpu_affinity=[{0}, {0, 1}]) as ex:
        inside = _two_worker_affinities(ex)
        assert sorted(inside.values()) == [[0], [0, 1]]
        for snap in ex.stats().workers:
            assert snap.pid is not None
            assert inside[snap.pid] == [[0], [0, 1]][snap.worker]


@pytest.mark.timeout(30)
def test_a_cpu_that_cannot_be_used_breaks_the_executor_loudly() -> None:
    with Executor(procs=1, cpu_affinity=[100_000]) as ex:
        exc = ex.submit(hoard, 0).exception(timeout=WAIT)
        assert isinstance(exc, OsiisoError), repr(exc)
        text = str(exc)
        assert "worker setup failed 3 times in a row" in text
        assert "cannot pin the worker to CPUs {100000} (cpu_affinity)" in text


# --- nice ---------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_nice_raises_the_workers_niceness(start_method: str) -> None:
    parent = os.nice(0)
    with Executor(procs=1, start_method=start_method, nice=5) as ex:
        assert ex.submit(niceness).result(timeout=WAIT) == min(parent + 5, 19)
    with Executor(procs=1, start_method=start_method) as ex:
        assert ex.submit(niceness).result(timeout=WAIT) == parent


# --- inner_threads ------------------------------------------------------------------------------


@pytest.fixture
def no_thread_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.timeout(30)
def test_inner_threads_sets_the_thread_variables(
    start_method: str, no_thread_variables: pytest.MonkeyPatch
) -> None:
    with Executor(procs=1, start_method=start_method, inner_threads=3) as ex:
        assert ex.submit(thread_variables).result(timeout=WAIT) == dict.fromkeys(
            THREAD_ENV_VARS, "3"
        )
    no_thread_variables.setenv("OMP_NUM_THREADS", "7")
    with Executor(procs=1, start_method=start_method, inner_threads=3) as ex:
        got = ex.submit(thread_variables).result(timeout=WAIT)
    assert got == {**dict.fromkeys(THREAD_ENV_VARS, "3"), "OMP_NUM_THREADS": "7"}


@pytest.mark.timeout(30)
def test_inner_threads_default_divides_the_cpu_budget(
    no_thread_variables: pytest.MonkeyPatch,
) -> None:
    expected = str(max(1, cpu_budget() // 2))
    with Executor(procs=2) as ex:
        assert ex.config.inner_threads is None
        got = ex.submit(thread_variables).result(timeout=WAIT)
    assert got == dict.fromkeys(THREAD_ENV_VARS, expected)
    if os.cpu_count() == 2 and cpu_budget() == 2:
        assert expected == "1"


@pytest.mark.timeout(30)
def test_inner_threads_are_set_before_the_initializer(
    no_thread_variables: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "seen-by-initializer"
    with Executor(procs=1, inner_threads=2, initializer=_record_omp, initargs=(str(out),)) as ex:
        ex.submit(hoard, 0).result(timeout=WAIT)
    assert out.read_text() == "2"


def _record_omp(path: str) -> None:
    Path(path).write_text(os.environ.get("OMP_NUM_THREADS", "unset"))


# --- the pieces, without workers ----------------------------------------------------------------


def test_thread_env_keeps_the_parents_values() -> None:
    assert thread_env(4, 2, env={}) == tuple((name, "4") for name in THREAD_ENV_VARS)
    env = {"MKL_NUM_THREADS": "8"}
    assert dict(thread_env(4, 2, env=env))["MKL_NUM_THREADS"] == "8"
    assert dict(thread_env(4, 2, env=env))["OMP_NUM_THREADS"] == "4"


def test_thread_env_default_and_when_the_budget_is_asked() -> None:
    calls: list[int] = []

    def budget() -> int:
        calls.append(1)
        return 8

    assert dict(thread_env(None, 3, env={}, budget=budget))["BLIS_NUM_THREADS"] == "2"
    assert dict(thread_env(None, 16, env={}, budget=budget))["BLIS_NUM_THREADS"] == "1"
    assert len(calls) == 2
    everything = dict.fromkeys(THREAD_ENV_VARS, "5")
    assert thread_env(None, 3, env=everything, budget=budget) == tuple(everything.items())
    assert len(calls) == 2  # nothing missing: the budget is not computed
    assert dict(thread_env(6, 3, env={}, budget=budget))["OMP_NUM_THREADS"] == "6"
    assert len(calls) == 2


def test_process_rss_reads_a_live_process_and_zero_once_gone() -> None:
    me = ProcessRss(os.getpid())
    try:
        rss = me.read()
        assert rss > 0
        assert abs(rss - psutil.Process().memory_info().rss) < 64 * MiB
    finally:
        me.close()
        me.close()  # idempotent
    assert me.read() == 0


def read_env(name: str) -> str | None:
    """An environment variable as the worker sees it."""
    return os.environ.get(name)


@pytest.mark.timeout(30)
def test_workers_see_the_parents_environment_at_spawn_time(
    start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fork server may predate this change: workers must still see it
    with Executor(procs=1, start_method=start_method) as ex:
        ex.submit(abs, 1).result(timeout=30)
    monkeypatch.setenv("OSIISO_LATE_SETTING", "42")
    monkeypatch.delenv("OSIISO_GONE_SETTING", raising=False)
    with Executor(procs=1, start_method=start_method) as ex:
        assert ex.submit(read_env, "OSIISO_LATE_SETTING").result(timeout=30) == "42"
        assert ex.submit(read_env, "OSIISO_GONE_SETTING").result(timeout=30) is None
