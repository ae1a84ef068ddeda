"""``summary.to_pandas()`` and ``summary.to_chrome_trace()`` from a real run.

One run on two workers has every kind of ending a trace must show: successes, a task that
raises, one that fails once and succeeds on its retry, a timeout (its worker killed), a
worker that exits, and a task cancelled before it ever ran. The table is checked row by
row against the records; the trace is written to a file, parsed as JSON and checked event
by event, as Perfetto would read it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from outcome_tasks import die, fail, fail_once, nap

from osiiso_mp import Executor, RunSummary

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunSummary]:
    marker = tmp_path_factory.mktemp("exports") / "marker"
    with Executor(procs=2) as ex:
        for i in range(4):
            ex.options(name=f"ok-{i}", group_id="ok").submit(abs, -i)
        ex.options(name="boom").submit(fail, "boom")
        ex.options(name="flaky", retries=1).submit(fail_once, str(marker))
        ex.options(name="slow", timeout=0.3).submit(nap, 30)
        ex.options(name="die").submit(die)
        later = ex.options(name="never", delay=30).submit(abs, 1)
        assert later.cancel()
        result = ex.run(timeout=40)
    assert not result.timed_out
    yield result


def by_name(summary: RunSummary) -> dict[str, Any]:
    return {r.name: r for r in summary.results}


# -- to_pandas -----------------------------------------------------------------------------


def test_to_pandas_has_one_row_per_attempt(summary: RunSummary) -> None:
    import pandas as pd

    frame = summary.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    # every attempt, plus one row for the task cancelled before it made any
    assert len(frame) == sum(max(r.attempts, 1) for r in summary.results) == 10
    assert list(frame.columns)[:4] == ["task_id", "name", "group_id", "status"]
    records = by_name(summary)
    rows = frame.set_index(["name", frame.groupby("name").cumcount()])

    flaky = frame[frame.name == "flaky"]
    assert list(flaky.attempt) == [1, 2]
    assert list(flaky.outcome) == ["failed", "succeeded"]
    assert set(flaky.status) == {"succeeded"}
    assert set(flaky.task_id) == {records["flaky"].task_id}
    assert flaky.error.iloc[0] == "RuntimeError: first attempt fails"

    boom = rows.loc[("boom", 0)]
    assert boom.status == "failed" and boom.outcome == "failed"
    assert boom.exception_type == "ValueError" and boom.message == "boom"
    assert boom.pid == records["boom"].attempt_log[0].pid

    slow = rows.loc[("slow", 0)]
    assert (slow.outcome, slow.exit_code) == ("timed_out", -9)
    assert slow.exception_type.endswith(".TaskTimeoutError")
    dead = rows.loc[("die", 0)]
    assert dead.outcome == "crashed" and dead.exit_code == 3
    assert dead.exception_type.endswith(".WorkerCrashedError")

    never = rows.loc[("never", 0)]
    assert never.status == "cancelled" and never.attempts == 0
    assert pd.isna(never.attempt) and pd.isna(never.worker) and pd.isna(never.started_at)
    assert pd.isna(never.outcome)

    ok = frame[frame.group_id == "ok"]
    assert len(ok) == 4 and set(ok.outcome) == {"succeeded"}
    assert set(ok.exception_type.dropna()) == set()
    # numbers are numbers: nullable integers, float times
    assert str(frame.dtypes["pid"]) == "Int64" and str(frame.dtypes["attempt"]) == "Int64"
    assert str(frame.dtypes["started_at"]) == "float64"
    started = frame.dropna(subset=["started_at"])
    assert ((started.finished_at - started.started_at - started.duration).abs() < 1e-9).all()
    assert (frame.worker.dropna() < 2).all()


def test_to_pandas_of_an_empty_run_has_the_columns() -> None:
    frame = RunSummary(results=(), duration=0.0).to_pandas()
    assert len(frame) == 0
    assert "outcome" in frame.columns and "task_id" in frame.columns


def test_to_pandas_without_pandas_names_the_extra(
    summary: RunSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"osiiso_mp\[pandas\]"):
        summary.to_pandas()


# -- to_chrome_trace -----------------------------------------------------------------------


def test_chrome_trace_written_and_parsed(summary: RunSummary, tmp_path: Path) -> None:
    path = tmp_path / "run.trace.json"
    returned = summary.to_chrome_trace(path)
    trace = json.loads(path.read_text(encoding="utf-8"))
    assert trace == returned
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    spans = [e for e in events if e["ph"] == "X"]
    for e in events:
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)

    # one named track per worker slot that ran something
    threads = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    workers = {a.worker for r in summary.results for a in r.attempt_log}
    assert set(threads) == workers and workers <= {0, 1}
    for tid, name in threads.items():
        assert name.startswith(f"worker {tid} (pid ")
    assert any(e["name"] == "process_name" for e in meta)

    # one complete event per attempt that started, on its worker's track
    attempts = [(r, a) for r in summary.results for a in r.attempt_log]
    started = [(r, a) for r, a in attempts if a.started_at is not None]
    assert len(spans) == len(started)
    origin = min(r.created_at for r in summary.results)
    for e in spans:
        assert e["ts"] >= 0 and e["dur"] >= 0
        assert set(e["args"]) >= {"task_id", "attempt", "outcome", "status", "pid"}
        (r, a) = next(
            (r, a)
            for r, a in started
            if r.task_id == e["args"]["task_id"] and a.number == e["args"]["attempt"]
        )
        assert e["name"] == r.name and e["cat"] == a.outcome == e["args"]["outcome"]
        assert e["tid"] == a.worker and e["args"]["pid"] == a.pid
        assert a.started_at is not None
        assert e["ts"] == pytest.approx((a.started_at - origin) * 1e6, abs=0.01)
        assert e["dur"] == pytest.approx(a.duration * 1e6, abs=0.01)

    named: dict[str, list[dict[str, Any]]] = {}
    for e in spans:
        named.setdefault(e["name"], []).append(e)
    # the retry: two events of one task, failed then succeeded, the second after the first
    first, second = sorted(named["flaky"], key=lambda e: e["args"]["attempt"])
    assert first["args"]["task_id"] == second["args"]["task_id"]
    assert (first["cat"], second["cat"]) == ("failed", "succeeded")
    assert first["args"]["error"] == "RuntimeError: first attempt fails"
    assert second["ts"] >= first["ts"] + first["dur"]
    assert second["args"]["status"] == "succeeded"
    # the failures carry what went wrong
    (boom,) = named["boom"]
    assert boom["args"]["status"] == "failed" and boom["args"]["error"].startswith("ValueError")
    (slow,) = named["slow"]
    assert slow["cat"] == "timed_out" and slow["args"]["exit_code"] == -9
    assert slow["dur"] >= 0.25e6  # it ran to its 0.3 s timeout
    (dead,) = named["die"]
    assert dead["cat"] == "crashed" and dead["args"]["exit_code"] == 3
    # the task that never ran is on no track
    assert "never" not in named
    assert trace["otherData"]["cancelled"] == 1 and trace["otherData"]["failed"] == 3


def test_chrome_trace_of_an_empty_run() -> None:
    trace = RunSummary(results=(), duration=0.0).to_chrome_trace()
    json.dumps(trace, allow_nan=False)
    assert [e["ph"] for e in trace["traceEvents"]] == ["M"]
