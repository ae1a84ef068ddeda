"""Per-attempt telemetry and the run-level figures, measured on real workers.

These are behaviour checks, not benchmarks: where a figure is inherently noisy (CPU time,
resident memory) the bounds are generous, but each still tells a right measurement from a
wrong one (a CPU time that is really wall time, a peak that misses the allocation, ...).

Every test warms its workers up first with :func:`noop`: the first task a worker runs
imports this module (cloudpickle sends module-level functions by reference), and that
import would otherwise be charged to the attempt being measured.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from process_support import wait_until

from osiiso_mp import Attempt, Executor, RunSummary, TaskFuture, TaskResult

MB = 1_000_000
MiB = 2**20
PAGE = 4096
SCRIPT_NAME = "<script>alert(1)</script>"
ESCAPED_SCRIPT_NAME = "&lt;script&gt;alert(1)&lt;/script&gt;"


# ------------------------------------------------------------------------ worker callables


def noop() -> int:
    """Do nothing (warms a worker up: it imports this module)."""
    return os.getpid()


def burn(cpu_seconds: float) -> tuple[float, float, float, float]:
    """Burn ``cpu_seconds`` of this process's CPU in pure Python; return this call's own
    ``(perf_counter start, end, process_time start, end)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    x = 0
    while time.process_time() - c0 < cpu_seconds:
        for i in range(2000):
            x += i * i
    return t0, time.perf_counter(), c0, time.process_time()


def snooze(seconds: float) -> tuple[float, float]:
    """Sleep for ``seconds``; return this call's own perf_counter span."""
    t0 = time.perf_counter()
    time.sleep(seconds)
    return t0, time.perf_counter()


def touch_and_drop(nbytes: int) -> int:
    """Allocate ``nbytes``, make every page resident, and free it all before returning."""
    buf = bytearray(nbytes)
    for i in range(0, nbytes, PAGE):
        buf[i] = 1
    return len(buf)


def touch_and_keep(nbytes: int) -> int:
    """Allocate ``nbytes``, make every page resident, and keep it alive in the worker.

    The buffer goes into a list held by an imported module (``sys``), so it outlives the
    call however this function travelled to the worker.
    """
    buf = bytearray(nbytes)
    for i in range(0, nbytes, PAGE):
        buf[i] = 1
    keep: list[bytearray] = sys.__dict__.setdefault("_osiiso_test_keep", [])
    keep.append(buf)
    return len(keep)


def fail_once(marker: str) -> str:
    """Fail the first time (creating ``marker``), succeed afterwards."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails on purpose")
    return "second time lucky"


def die_once(pidfile: str, marker: str) -> int:
    """Write this worker's pid to ``pidfile`` (one line per call); the first time, SIGKILL
    the worker; afterwards return the pid."""
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n")
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # pragma: no cover - the signal arrives first
    return os.getpid()


def raise_value_error(message: str) -> None:
    """Fail with ``message``."""
    raise ValueError(message)


def square(x: int) -> int:
    """x squared."""
    return x * x


# ------------------------------------------------------------------------------ helpers


def record_of(fut: TaskFuture[Any]) -> TaskResult:
    """Wait for the task's record."""
    record = fut.task_result(timeout=30)
    assert record is not None
    return record


def only_attempt(record: TaskResult) -> Attempt:
    """The single attempt of a task that was not retried."""
    assert record.attempts == 1
    assert len(record.attempt_log) == 1
    return record.attempt_log[0]


def warm_up(ex: Executor) -> None:
    """Make every worker of ``ex`` ready and have it import this module, then start a fresh
    batch (so the warm-up tasks are in no later summary). The workers are waited for first:
    sent while one was still starting (a Ray actor may take a second), two tasks could run
    one after the other on another, leaving the late one to import this module later."""
    wait_until(
        lambda: all(w.state == "idle" for w in ex.stats().workers), "every worker to start", 30
    )
    futs = [ex.submit(snooze, 0.3) for _ in range(ex.procs)]
    for fut in futs:
        fut.result(timeout=30)
    ex.run()


# ------------------------------------------------------------------ 1. CPU time and duration


@pytest.mark.timeout(60)
def test_a_workers_times_on_this_host_are_read_on_our_clock(transport: str) -> None:
    # Ray's actors do not promise our clock, but on this host they have it (same kernel):
    # the attempt's window must bracket the task's own readings exactly. Mapped by the
    # hand-shake's offset instead, the start would come out late by its delivery (tens of
    # microseconds at least), after the task's own first reading.
    with Executor(procs=1, transport=transport) as ex:
        warm_up(ex)
        for _ in range(3):
            fut = ex.submit(burn, 0.05)
            own_start, own_end, _, _ = fut.result(timeout=30)
            attempt = only_attempt(record_of(fut))
            assert attempt.started_at is not None
            assert attempt.started_at <= own_start < own_end <= attempt.finished_at


# local only: it compares the task's own perf_counter readings with the attempt's times,
# one clock only where the workers share ours (a worker on another host has its times
# mapped onto ours at its hand-shake, latency aside)
@pytest.mark.timeout(60)
def test_cpu_bound_task_cpu_time_tracks_its_duration() -> None:
    ratios = []
    with Executor(procs=1) as ex:
        warm_up(ex)
        for _ in range(3):
            fut = ex.submit(burn, 0.5)
            own_start, own_end, own_cpu0, own_cpu1 = fut.result(timeout=30)
            attempt = only_attempt(record_of(fut))
            own_span, own_cpu = own_end - own_start, own_cpu1 - own_cpu0
            assert attempt.outcome == "succeeded"
            assert attempt.started_at is not None
            # the attempt's window brackets the task's own measurement (one clock)
            assert attempt.started_at <= own_start
            assert attempt.finished_at >= own_end
            # duration is the task's own wall time plus a small per-attempt overhead
            assert own_span >= 0.5
            assert own_span <= attempt.duration <= own_span + 0.05, (attempt.duration, own_span)
            # cpu_time is the worker's CPU over the attempt: what the task saw, plus a little
            assert own_cpu - 0.01 <= attempt.cpu_time <= own_cpu + 0.05, (
                attempt.cpu_time,
                own_cpu,
            )
            ratios.append(attempt.cpu_time / attempt.duration)
    # pure-Python work is all CPU: cpu_time within 20% of wall time. Other processes on a
    # shared 2-core machine can take the CPU away for a while (the checks above show the
    # measurement stays exact then), so the best of three runs must meet it.
    assert max(ratios) >= 0.8, f"cpu_time/duration of three runs: {ratios}"
    assert all(r <= 1.2 for r in ratios), ratios


@pytest.mark.timeout(60)
def test_sleeping_task_uses_little_cpu() -> None:
    with Executor(procs=1) as ex:
        warm_up(ex)
        fut = ex.submit(snooze, 0.3)
        own_start, own_end = fut.result(timeout=30)
        record = record_of(fut)
    attempt = only_attempt(record)
    assert attempt.outcome == "succeeded"
    assert attempt.duration >= own_end - own_start >= 0.3
    assert attempt.cpu_time < 0.1, f"cpu_time={attempt.cpu_time:.3f}s for a 0.3 s sleep"
    assert attempt.cpu_time >= 0.0


# ------------------------------------------------------------------- 2. resident memory


@pytest.mark.timeout(60)
def test_peak_rss_and_rss_delta(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        warm_up(ex)
        trivial = record_of(ex.submit(noop))
        big = record_of(ex.submit(touch_and_drop, 200 * MiB))
        kept = record_of(ex.submit(touch_and_keep, 100 * MiB))
        after = record_of(ex.submit(noop))
    base, peak, keep, tail = (only_attempt(r) for r in (trivial, big, kept, after))
    assert {a.outcome for a in (base, peak, keep, tail)} == {"succeeded"}
    assert len({a.pid for a in (base, peak, keep, tail)}) == 1  # one worker, never replaced

    # the trivial task's peak is the worker's baseline resident size
    assert base.peak_rss > 0
    assert abs(base.rss_delta) < 20 * MB, f"trivial task rss_delta={base.rss_delta}"

    # 200 MiB (209.7 MB) made resident then freed: the peak sees it, the delta does not
    assert peak.peak_rss >= base.peak_rss + 200 * MB, (
        f"peak_rss={peak.peak_rss} baseline={base.peak_rss} "
        f"(+{(peak.peak_rss - base.peak_rss) / MB:.1f} MB, expected >= +200 MB)"
    )
    assert abs(peak.rss_delta) < 20 * MB, f"freed allocation left rss_delta={peak.rss_delta}"

    # 100 MiB (104.9 MB) kept alive in the worker: the delta sees it
    assert keep.rss_delta >= 90 * MB, f"kept 100 MiB but rss_delta={keep.rss_delta}"
    assert keep.peak_rss >= base.peak_rss + 90 * MB

    # nothing new allocated afterwards: small delta again, and the resident size (which
    # the peak of a task below the high-water mark reports) still holds the kept buffer
    assert abs(tail.rss_delta) < 20 * MB, f"trivial task rss_delta={tail.rss_delta}"
    assert tail.peak_rss >= base.peak_rss + 90 * MB


def close_statm_descriptors() -> int:
    """Close every descriptor of this process open on its own statm file (as a task with a
    double close of its own might hit the worker's meter's); how many it closed."""
    closed = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.endswith("/statm"):
            os.close(int(name))
            closed += 1
    return closed


@pytest.mark.timeout(60)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_task_that_closes_the_meters_descriptor_leaves_later_records_measured() -> None:
    with Executor(procs=1) as ex:
        warm_up(ex)
        closing = ex.submit(close_statm_descriptors)
        assert closing.result(timeout=20) >= 1
        kept = record_of(ex.submit(touch_and_keep, 100 * MiB))
    attempt = only_attempt(kept)
    assert attempt.peak_rss > 0
    assert attempt.rss_delta >= 90 * MB, f"kept 100 MiB but rss_delta={attempt.rss_delta}"


# ------------------------------------------------------------------------ 4. timestamps


@pytest.mark.timeout(60)
def test_single_task_timestamps_are_consistent(transport: str) -> None:
    with Executor(procs=1, transport=transport) as ex:
        warm_up(ex)
        submitted = time.perf_counter()
        fut = ex.submit(snooze, 0.05)
        fut.result(timeout=30)
        record = record_of(fut)
        returned = time.perf_counter()
    attempt = only_attempt(record)
    assert attempt.started_at is not None
    assert attempt.number == 1
    assert submitted <= record.created_at <= returned
    # queued_for is the wait before the attempt started, and began no earlier than submission
    assert attempt.queued_for >= 0.0
    assert record.created_at <= attempt.started_at - attempt.queued_for + 1e-3
    assert attempt.started_at - attempt.queued_for <= attempt.started_at
    # A local worker shares our clock, and so does a Ray worker on this host (same boot
    # id): its readings are not mapped by the hand-shake's offset, which is late by that
    # message's delivery (48 ms was seen on a loaded machine). No allowance for either.
    assert attempt.started_at <= attempt.finished_at <= returned
    assert attempt.duration == pytest.approx(attempt.finished_at - attempt.started_at, abs=1e-6)
    # the record's times are its only attempt's
    assert record.started_at == attempt.started_at
    assert record.finished_at == attempt.finished_at
    assert record.duration == pytest.approx(attempt.finished_at - attempt.started_at, abs=1e-6)
    assert record.duration >= 0.05


@pytest.mark.timeout(60)
def test_retried_task_attempts_are_ordered_in_time(transport: str, tmp_path: Path) -> None:
    with Executor(procs=1, transport=transport) as ex:
        warm_up(ex)
        fut = ex.options(retries=1, retry_delay=0.2).submit(fail_once, str(tmp_path / "m"))
        assert fut.result(timeout=30) == "second time lucky"
        record = record_of(fut)
    assert record.status == "succeeded"
    assert record.attempts == len(record.attempt_log) == 2
    first, second = record.attempt_log
    assert (first.number, second.number) == (1, 2)
    assert (first.outcome, second.outcome) == ("failed", "succeeded")
    assert "first attempt fails on purpose" in first.error
    assert second.error == ""
    assert first.started_at is not None and second.started_at is not None
    assert record.created_at <= first.started_at - first.queued_for + 1e-3
    assert first.started_at <= first.finished_at
    # the retry starts after the backoff has passed
    assert first.finished_at <= second.started_at <= second.finished_at
    assert second.started_at - first.finished_at >= 0.2 - 1e-3
    # the record spans both attempts
    assert record.started_at == first.started_at
    assert record.finished_at == second.finished_at
    assert record.duration == pytest.approx(second.finished_at - first.started_at, abs=1e-6)


@pytest.mark.timeout(60)
def test_retry_queued_for_includes_the_retry_delay(tmp_path: Path) -> None:
    """``queued_for`` of a retry is the wait before it started, retry_delay included."""
    with Executor(procs=1) as ex:
        warm_up(ex)
        fut = ex.options(retries=1, retry_delay=0.2).submit(fail_once, str(tmp_path / "m"))
        fut.result(timeout=30)
        record = record_of(fut)
    first, second = record.attempt_log
    assert second.started_at is not None
    assert second.queued_for >= 0.2 - 0.02, (
        f"retry waited {second.started_at - first.finished_at:.3f}s after the failed attempt "
        f"(retry_delay=0.2) but its queued_for is {second.queued_for:.4f}s"
    )
    assert second.queued_for <= second.started_at - first.finished_at + 1e-3


# ----------------------------------------------------------------- 5. a killed attempt


@pytest.mark.timeout(60)
def test_killed_attempt_and_its_retry(tmp_path: Path, start_method: str) -> None:
    pidfile, marker = tmp_path / "pids", tmp_path / "marker"
    with Executor(procs=1, start_method=start_method) as ex:
        warm_up(ex)
        fut = ex.options(retries=1).submit(die_once, str(pidfile), str(marker))
        survivor_pid = fut.result(timeout=30)
        record = record_of(fut)
        summary = ex.run()
    reported = [int(line) for line in pidfile.read_text().split()]
    assert len(reported) == 2
    assert reported[1] == survivor_pid

    assert record.status == "succeeded"
    assert record.attempts == len(record.attempt_log) == 2
    killed, retried = record.attempt_log
    assert (killed.number, retried.number) == (1, 2)
    assert (killed.outcome, retried.outcome) == ("crashed", "succeeded")
    # the crashed attempt: the pid that died, minus the signal, and no worker measurements
    assert killed.pid == reported[0]
    assert killed.exit_code == -signal.SIGKILL == -9
    assert "WorkerCrashedError" in killed.error
    assert killed.cpu_time == 0.0
    assert killed.peak_rss == 0
    assert killed.rss_delta == 0
    assert killed.started_at is not None
    assert killed.duration == pytest.approx(killed.finished_at - killed.started_at, abs=1e-6)
    # the retry ran on the replacement worker
    assert retried.pid == reported[1] != killed.pid
    assert retried.exit_code is None
    assert retried.peak_rss > 0
    assert retried.started_at is not None and killed.finished_at <= retried.started_at

    t = summary.telemetry
    assert summary.results == (record,)
    assert t.crashes == 1
    assert t.respawns >= 1
    assert summary.respawns == t.respawns
    assert t.retries == 1
    assert t.attempts == 2
    assert t.timeouts == 0 and t.memory_exceeded == 0
    (worker,) = t.workers
    assert worker.attempts == 2
    assert worker.pids == (killed.pid, retried.pid)


# ---------------------------------------------------------------- 6. RunSummary.telemetry


@pytest.mark.timeout(60)
def test_run_telemetry_of_a_cpu_batch(transport: str) -> None:
    with Executor(procs=2, transport=transport) as ex:
        warm_up(ex)
        futs = [ex.submit(burn, 0.15) for _ in range(8)]
        summary = ex.run()
    assert summary.ok and summary.succeeded == 8
    assert [r.task_id for r in summary.results] == [f.task_id for f in futs]
    t = summary.telemetry
    log = [a for r in summary.results for a in r.attempt_log]
    assert len(log) == 8

    assert t.cpu_seconds == pytest.approx(sum(a.cpu_time for a in log), rel=1e-9)
    own_cpu = sum(c1 - c0 for _, _, c0, c1 in (f.result() for f in futs))
    assert own_cpu >= 8 * 0.15
    # the attempts' CPU is the CPU the tasks themselves burned, plus a little overhead each
    assert own_cpu - 0.05 <= t.cpu_seconds <= own_cpu + 8 * 0.02, (t.cpu_seconds, own_cpu)
    assert t.efficiency == pytest.approx(t.cpu_seconds / (summary.duration * 2), rel=1e-9)
    # (how much of the wall time the workers had the CPU depends on what else runs on a
    # shared machine: 0.035 was seen with two busy loops beside the suite; so no floor)
    assert 0.0 < t.efficiency <= 1.05, (
        f"efficiency={t.efficiency:.3f} cpu={t.cpu_seconds:.3f}s wall={summary.duration:.3f}s"
    )

    assert (t.attempts, t.retries, t.crashes, t.timeouts, t.respawns) == (8, 0, 0, 0, 0)
    assert t.peak_rss == max(a.peak_rss for a in log) > 0

    assert [w.worker for w in t.workers] == [0, 1]
    assert sum(w.attempts for w in t.workers) == 8
    for w in t.workers:
        mine = [a for a in log if a.worker == w.worker]
        assert w.attempts == len(mine) >= 1
        assert w.busy_time > 0
        assert w.busy_time == pytest.approx(sum(a.duration for a in mine), rel=1e-9)
        assert w.utilisation == pytest.approx(w.busy_time / summary.duration, rel=1e-9)
        assert 0 < w.utilisation <= 1.0 + 1e-6
        assert len(w.pids) == 1

    assert 1 <= len(t.slowest) <= 5
    durations = [r.duration for r in t.slowest]
    assert durations == sorted(durations, reverse=True)
    assert durations[0] == max(r.duration for r in summary.results)


# ------------------------------------------------------- a run with a bit of everything


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunSummary]:
    """A finished run with a success, a failure (named like an HTML script), a retry after
    a failure and a retry after a crash."""
    tmp = tmp_path_factory.mktemp("mixed")
    with Executor(procs=2) as ex:
        warm_up(ex)
        ex.options(metadata={"k": (1, 2)}, group_id=("g", 1)).submit(square, 7)
        ex.options(name=SCRIPT_NAME, group_id="grp").submit(
            raise_value_error, f"{SCRIPT_NAME} & more"
        )
        ex.options(retries=1, metadata=object()).submit(fail_once, str(tmp / "failed"))
        ex.options(retries=1).submit(die_once, str(tmp / "pids"), str(tmp / "died"))
        summary = ex.run()
    yield summary


@pytest.mark.timeout(60)
def test_mixed_run_shape(mixed: RunSummary) -> None:
    """The run the next tests serialise really has a failure, a retry and a crash."""
    assert (mixed.succeeded, mixed.failed, mixed.cancelled) == (3, 1, 0)
    t = mixed.telemetry
    assert t.crashes == 1 and t.retries == 2 and t.attempts == 6 and t.respawns >= 1
    outcomes = sorted(a.outcome for r in mixed.results for a in r.attempt_log)
    assert outcomes == ["crashed", "failed", "failed", "succeeded", "succeeded", "succeeded"]


# --------------------------------------------------------------- 7. to_dict / to_json


@pytest.mark.timeout(60)
def test_to_json_round_trips(mixed: RunSummary) -> None:
    text = mixed.to_json()
    data = mixed.to_dict()
    assert json.loads(text) == data
    assert data["schema_version"] == 1
    assert data["status"] == "COMPLETED WITH ERRORS"
    assert data["ok"] is False
    assert (data["total_submitted"], data["succeeded"], data["failed"]) == (4, 3, 1)
    assert data["procs"] == 2
    assert data["respawns"] == mixed.respawns >= 1

    tel = data["telemetry"]
    assert tel["crashes"] == 1 and tel["retries"] == 2 and tel["attempts"] == 6
    assert tel["cpu_seconds"] == mixed.telemetry.cpu_seconds
    assert sum(w["attempts"] for w in tel["workers"]) == 6
    assert all(isinstance(p, int) for w in tel["workers"] for p in w["pids"])
    assert tel["slowest"] == [r.task_id for r in mixed.telemetry.slowest]

    attempt_keys = {f.name for f in fields(Attempt)}
    assert len(data["results"]) == 4
    for entry, record in zip(data["results"], mixed.results, strict=True):
        assert entry["task_id"] == record.task_id
        assert entry["attempts"] == record.attempts == len(entry["attempt_log"]) >= 1
        for a_dict, attempt in zip(entry["attempt_log"], record.attempt_log, strict=True):
            assert set(a_dict) == attempt_keys
            assert a_dict == {k: getattr(attempt, k) for k in attempt_keys}

    ok, bad, retried, crashed = data["results"]
    assert ok["value_repr"] == "49" and ok["exception"] is None
    assert ok["metadata"] == {"k": [1, 2]}
    assert ok["group_id"] == repr(("g", 1))
    assert bad["value_repr"] is None
    assert bad["exception"] == {"type": "ValueError", "message": f"{SCRIPT_NAME} & more"}
    assert bad["group_id"] == "grp"
    assert retried["value_repr"] == repr("second time lucky")
    assert isinstance(retried["metadata"], str) and "object" in retried["metadata"]
    assert [a["outcome"] for a in retried["attempt_log"]] == ["failed", "succeeded"]
    assert [a["outcome"] for a in crashed["attempt_log"]] == ["crashed", "succeeded"]
    assert crashed["attempt_log"][0]["exit_code"] == -9


# ------------------------------------------------------------ 8. HTML and SVG renderings


@pytest.mark.timeout(60)
def test_html_escapes_task_names(mixed: RunSummary) -> None:
    html = mixed._repr_html_()
    assert SCRIPT_NAME not in html
    assert "<script" not in html
    assert ESCAPED_SCRIPT_NAME in html


@pytest.mark.timeout(60)
def test_timeline_has_one_bar_per_started_attempt(mixed: RunSummary) -> None:
    svg = mixed.timeline()
    assert SCRIPT_NAME not in svg
    root = ET.fromstring(svg)
    bars = [el for el in root.iter() if el.tag.endswith("rect") and el.get("class") == "attempt"]
    started = [a for r in mixed.results for a in r.attempt_log if a.started_at is not None]
    assert len(started) == 6
    assert len(bars) == len(started)
    # each bar names its task, and the script-named task's tooltip is text, not markup
    by_task = {r.task_id: r for r in mixed.results}
    for bar in bars:
        assert bar.get("data-task-id") in by_task
    titles = [bar.findtext("{http://www.w3.org/2000/svg}title") or "" for bar in bars]
    assert any(title.startswith(f"{SCRIPT_NAME} #1 failed") for title in titles)


# ------------------------------------------------------------------------------- 9. repr


@pytest.mark.timeout(60)
def test_reprs_are_single_line_with_name_and_id() -> None:
    with Executor(procs=1) as ex:
        ok = ex.options(name="repr-ok").submit(str.upper, "multi\nline\nvalue")
        bad = ex.options(name="repr-bad").submit(raise_value_error, "line one\nline two")
        pending_repr = repr(ok)
        for fut in (ok, bad):
            record = record_of(fut)
            for text in (repr(record), repr(fut)):
                assert "\n" not in text, text
                assert fut.name in text and fut.task_id in text, text
        ex.run()
    assert "\n" not in pending_repr
    assert "repr-ok" in pending_repr and ok.task_id in pending_repr


@pytest.mark.timeout(60)
def test_a_replacement_after_a_timeout_counts_in_the_run_that_caused_it(transport: str) -> None:
    # the killed worker's exit is noticed just after the timed-out task's record is made:
    # its replacement still belongs to this run, not to the next one
    with Executor(procs=1, transport=transport) as ex:
        ex.options(timeout=0.3).submit(time.sleep, 30)
        first = ex.run()
        ex.submit(abs, 1)
        time.sleep(0.2)
        second = ex.run()
    assert first.telemetry.timeouts == 1
    assert (first.respawns, second.respawns) == (1, 0)
