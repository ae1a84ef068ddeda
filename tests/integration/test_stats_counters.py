"""``ex.stats()``'s counters per outcome, and their Prometheus rendering, on real workers.

Each test drives real failures (a raise, a timeout that kills a worker, a worker that
exits, a retry, cancellations of queued and running tasks, map chunks) and checks that the
counters say what happened and add up: ``succeeded + failed + cancelled == completed``,
which is every task once the executor is idle. The Prometheus text is parsed with
``prometheus_client``'s own parser and read back against the snapshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import re
import time
from pathlib import Path
from typing import Any

import pytest
from outcome_tasks import die, fail, fail_once, nap
from prometheus_client import parser

from osiiso_mp import AsyncExecutor, Executor, PoolStats, TaskFuture

pytestmark = pytest.mark.timeout(60)


def every_seventh_fails(x: int) -> int:
    """``x * 2``, except that multiples of 7 raise."""
    if x % 7 == 0:
        raise ValueError(f"{x} is a multiple of 7")
    return x * 2


def idle(stats: PoolStats) -> bool:
    return stats.pending == stats.running == stats.scheduled == 0


def check_adds_up(stats: PoolStats) -> None:
    assert stats.completed == stats.succeeded + stats.failed + stats.cancelled


def test_each_outcome_has_its_counter_and_they_add_up(tmp_path: Path) -> None:
    with Executor(procs=2) as ex:
        fresh = ex.stats()
        assert (fresh.completed, fresh.succeeded, fresh.failed, fresh.cancelled) == (0, 0, 0, 0)
        assert (fresh.retries, fresh.timeouts, fresh.crashes, fresh.memory_exceeded) == (0,) * 4
        futures: list[TaskFuture[Any]] = [ex.submit(abs, -i) for i in range(5)]
        futures.append(ex.submit(fail, "boom"))
        futures.append(ex.options(retries=1).submit(fail_once, str(tmp_path / "marker")))
        futures.append(ex.options(timeout=0.5).submit(nap, 30))
        futures.append(ex.submit(die))
        later = ex.options(delay=30).submit(abs, 1)
        assert later.cancel()
        _, not_done = cf.wait(futures, timeout=40)
        assert not not_done
        stats = ex.stats()
        assert idle(stats)
        assert stats.succeeded == 6  # five abs and the retried one
        assert stats.failed == 3  # the raise, the timeout, the crash
        assert stats.cancelled == 1  # cancelled while scheduled: no attempt at all
        assert stats.completed == 10  # every task taken, cancelled one included
        check_adds_up(stats)
        assert stats.retries == 1
        assert stats.timeouts == 1
        assert stats.crashes == 1
        assert stats.memory_exceeded == 0
        # the records agree: run() summarises the same batch
        summary = ex.run()
        assert (summary.succeeded, summary.failed, summary.cancelled) == (6, 3, 1)
        telemetry = summary.telemetry
        assert (telemetry.retries, telemetry.timeouts, telemetry.crashes) == (1, 1, 1)


def test_a_running_task_cancelled_counts_as_cancelled_not_completed_work(
    tmp_path: Path,
) -> None:
    with Executor(procs=1) as ex:
        running = ex.submit(nap, 30)
        deadline = time.monotonic() + 20
        while running.status() != "running":
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.01)
        assert running.cancel()
        assert ex.submit(abs, -1).result(timeout=20) == 1
        stats = ex.stats()
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.completed) == (1, 0, 1, 2)
    # a cancellation is not a crash, even though the worker was killed to stop it
    assert (stats.crashes, stats.timeouts, stats.retries) == (0, 0, 0)


def test_map_items_are_counted_one_by_one() -> None:
    with Executor(procs=2) as ex:
        values = ex.map(every_seventh_fails, range(40), chunksize=8)
        summary = ex.run()
        values.close()
        stats = ex.stats()
    assert summary.total_submitted == 40
    assert (stats.succeeded, stats.failed, stats.cancelled) == (34, 6, 0)  # 0, 7, ..., 35
    assert stats.completed == 40
    check_adds_up(stats)


def test_a_run_timeout_cancels_a_running_task_and_queued_chunks() -> None:
    with Executor(procs=1) as ex:
        ex.submit(nap, 30)
        values = ex.map(abs, range(20), chunksize=5)
        summary = ex.run(timeout=0.5)
        values.close()
        stats = ex.stats()
    assert summary.timed_out and summary.cancelled == 21
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.completed) == (0, 0, 21, 21)


def test_the_async_executor_counts_the_same() -> None:
    async def scenario() -> PoolStats:
        async with AsyncExecutor(procs=1) as ex:
            assert await ex.submit(abs, -2) == 2
            with pytest.raises(ValueError, match="boom"):
                await ex.submit(fail, "boom")
            waiting = asyncio.ensure_future(ex.options(delay=30).submit(abs, 3))
            await asyncio.sleep(0.1)
            waiting.cancel()  # cancelling the await cancels the task
            with pytest.raises(asyncio.CancelledError):
                await waiting
            deadline = time.monotonic() + 10
            while ex.stats().cancelled == 0:
                assert time.monotonic() < deadline, "the cancellation never reached it"
                await asyncio.sleep(0.01)
            return ex.stats()

    stats = asyncio.run(scenario())
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.completed) == (1, 1, 1, 3)
    assert idle(stats)


# -- Prometheus ----------------------------------------------------------------------------


def families(text: str) -> dict[str, Any]:
    """The parsed metric families by name (prometheus_client's parser)."""
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def value(family: Any, suffix: str = "", **labels: str) -> float:
    """The one sample of ``family`` with these labels (among others)."""
    found = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (family.name, labels, family.samples)
    return float(found[0])


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'  # a value: escapes only
_SAMPLE = re.compile(rf"({_NAME})(?:\{{{_PAIR}(?:,{_PAIR})*\}})? (\S+)")


def check_exposition_lines(text: str) -> None:
    """A strict line check of the text format: each family a HELP line, then its TYPE line
    (counter or gauge; a counter's name ends in _total), then samples of that name only;
    label values quoted with only the three escapes; a line feed at the end."""
    assert text.endswith("\n")
    announced: str | None = None
    seen: set[str] = set()
    lines = text[:-1].split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            match = re.fullmatch(rf"# HELP ({_NAME}) \S.*", line)
            assert match, line
            announced = match.group(1)
            assert announced not in seen, f"{announced} announced twice"
            seen.add(announced)
            kind = lines[i + 1].removeprefix(f"# TYPE {announced} ")
            assert kind == ("counter" if announced.endswith("_total") else "gauge"), line
        elif line.startswith("# TYPE "):
            assert announced is not None and line.split()[2] == announced, line
        else:
            match = _SAMPLE.fullmatch(line)
            assert match, line
            assert match.group(1) == announced, line
            float(match.group(2))
    assert seen


def test_prometheus_text_of_a_real_pool_parses_and_matches_the_snapshot(tmp_path: Path) -> None:
    with Executor(procs=2) as ex:
        futures: list[TaskFuture[Any]] = [ex.submit(abs, -i) for i in range(3)]
        futures.append(ex.submit(fail, "boom"))
        futures.append(ex.options(retries=1).submit(fail_once, str(tmp_path / "marker")))
        futures.append(ex.options(timeout=0.3).submit(nap, 30))
        scheduled = ex.options(delay=30).submit(abs, 1)
        cf.wait(futures, timeout=40)
        stats = ex.stats()
        text = stats.to_prometheus(labels={"service": 'api "v2"\\x\nnext'})
        scheduled.cancel()
    check_exposition_lines(text)
    found = families(text)
    # prometheus_client names a counter's family without its _total
    kinds = {name: f.type for name, f in found.items()}
    assert kinds == {
        "osiiso_mp_tasks": "counter",
        "osiiso_mp_retries": "counter",
        "osiiso_mp_timeouts": "counter",
        "osiiso_mp_crashes": "counter",
        "osiiso_mp_memory_exceeded": "counter",
        "osiiso_mp_tasks_pending": "gauge",
        "osiiso_mp_tasks_running": "gauge",
        "osiiso_mp_tasks_scheduled": "gauge",
        "osiiso_mp_workers": "gauge",
        "osiiso_mp_worker_rss_bytes": "gauge",
        "osiiso_mp_worker_cpu_percent": "gauge",
        "osiiso_mp_worker_running_tasks": "gauge",
        "osiiso_mp_worker_pid": "gauge",
        "osiiso_mp_worker_tasks_done": "counter",
        "osiiso_mp_worker_restarts": "counter",
    }
    for family in found.values():
        assert family.documentation
        for sample in family.samples:  # the constant label survives escaping exactly
            assert sample.labels["service"] == 'api "v2"\\x\nnext'
    tasks = found["osiiso_mp_tasks"]
    assert value(tasks, "_total", status="succeeded") == stats.succeeded == 4
    assert value(tasks, "_total", status="failed") == stats.failed == 2
    assert value(tasks, "_total", status="cancelled") == stats.cancelled == 0
    assert value(found["osiiso_mp_retries"], "_total") == 1
    assert value(found["osiiso_mp_timeouts"], "_total") == 1
    assert value(found["osiiso_mp_crashes"], "_total") == 0
    assert value(found["osiiso_mp_tasks_scheduled"]) == stats.scheduled == 1
    assert value(found["osiiso_mp_tasks_pending"]) == stats.pending == 0
    states = {s.labels["state"]: s.value for s in found["osiiso_mp_workers"].samples}
    assert set(states) == {"starting", "idle", "busy", "retiring", "stopping"}
    assert sum(states.values()) == 2
    assert any(w.state == "idle" and w.rss > 1 << 20 for w in stats.workers)
    for w in stats.workers:
        slot = str(w.worker)
        assert value(found["osiiso_mp_worker_rss_bytes"], worker=slot) == w.rss
        assert value(found["osiiso_mp_worker_running_tasks"], worker=slot) == len(w.current)
        assert value(found["osiiso_mp_worker_restarts"], "_total", worker=slot) == w.restarts
        done = value(found["osiiso_mp_worker_tasks_done"], "_total", worker=slot)
        assert done == w.tasks_done
        pids = [s for s in found["osiiso_mp_worker_pid"].samples if s.labels["worker"] == slot]
        assert [s.value for s in pids] == ([] if w.pid is None else [w.pid])


def test_prometheus_prefix_names_every_metric() -> None:
    with Executor(procs=1) as ex:
        ex.submit(abs, 1).result(timeout=20)
        text = ex.stats().to_prometheus(prefix="svc:pool")
    check_exposition_lines(text)
    names = set(families(text))
    assert names and all(name.startswith("svc:pool_") for name in names)
    assert value(families(text)["svc:pool_tasks"], "_total", status="succeeded") == 1
