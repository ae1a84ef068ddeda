"""Unit tests of the records (no processes: every record is built by hand)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import xml.etree.ElementTree as ET
from collections.abc import Hashable
from typing import Any

import pytest

from osiiso_mp._errors import ExecutionError, OsiisoError, ValueReleasedError
from osiiso_mp._results import (
    Attempt,
    Outcome,
    ReleasedValue,
    Status,
    TaskResult,
    pack,
    packed_finished_at,
    packed_status,
    packed_value,
    packed_with_value,
    raw_value,
    set_raw_value,
    unpack,
    with_value,
)
from osiiso_mp._runtime._retention import StoredValue, handout
from osiiso_mp._snapshots import TaskInfo
from osiiso_mp._summary import RunSummary

SVG_NS = "{http://www.w3.org/2000/svg}"


def attempt(
    number: int = 1,
    *,
    worker: int = 0,
    pid: int | None = 1000,
    started_at: float | None = 10.0,
    duration: float = 0.1,
    cpu_time: float = 0.1,
    peak_rss: int = 1 << 20,
    outcome: Outcome = "succeeded",
    error: str = "",
    exit_code: int | None = None,
) -> Attempt:
    """An attempt starting at ``started_at`` and lasting ``duration``."""
    begin = 10.0 if started_at is None else started_at
    return Attempt(
        number=number,
        worker=worker,
        pid=pid,
        queued_for=0.01,
        started_at=started_at,
        finished_at=begin + (duration if started_at is not None else 0.0),
        duration=duration if started_at is not None else 0.0,
        cpu_time=cpu_time,
        peak_rss=peak_rss,
        rss_delta=0,
        outcome=outcome,
        error=error,
        exit_code=exit_code,
    )


def result(
    task_id: str,
    name: str,
    status: Status,
    *,
    log: tuple[Attempt, ...] | None = None,
    value: Any = None,
    message: str = "",
    exception: BaseException | None = None,
    group_id: Hashable | None = None,
    metadata: Any = None,
) -> TaskResult:
    """A record whose attempt count always matches its attempt log."""
    if log is None:
        outcome: Outcome = "succeeded" if status == "succeeded" else "failed"
        log = (attempt(outcome=outcome),) if status != "cancelled" else ()
    started = [a.started_at for a in log if a.started_at is not None]
    first = min(started) if started else None
    end = max((a.finished_at for a in log), default=10.0)
    return TaskResult(
        task_id=task_id,
        name=name,
        status=status,
        value=value,
        exception=exception,
        attempts=len(log),
        group_id=group_id,
        created_at=9.0,
        started_at=first,
        finished_at=end,
        duration=end - first if first is not None else 0.0,
        message=message,
        metadata=metadata,
        attempt_log=log,
    )


def example_summary() -> RunSummary:
    """The run of PRODUCT.md section 4: 3 succeeded, 2 failed, one of them after 3 attempts."""
    fetch_log = tuple(
        attempt(n, worker=1, started_at=10.0 + n, outcome="failed", error="Connection refused")
        for n in (1, 2, 3)
    )
    return RunSummary(
        results=(
            result("t1", "load", "succeeded", value=1, group_id="g"),
            result(
                "t2",
                "fetch-api",
                "failed",
                log=fetch_log,
                message="Connection refused",
                exception=ConnectionRefusedError("Connection refused"),
                group_id="g",
            ),
            result("t3", "transform", "succeeded", value=3),
            result(
                "t4",
                "parse-data",
                "failed",
                message="Invalid JSON at line 42",
                exception=ValueError("Invalid JSON at line 42"),
            ),
            result("t5", "save", "succeeded", value=5, group_id=("h", 1)),
        ),
        duration=1.234,
        procs=2,
    )


EXAMPLE_TEXT = """\
----------------------------------------
  Run Summary: COMPLETED WITH ERRORS
----------------------------------------
  Total tasks : 5
  Succeeded   : 3
  Failed      : 2
  Cancelled   : 0
  Duration    : 1.234s
----------------------------------------
  Failures:
    - fetch-api (3 attempts)
      Connection refused
    - parse-data
      Invalid JSON at line 42
----------------------------------------
"""

PASSED_TEXT = """\
----------------------------------------
  Run Summary: PASSED
----------------------------------------
  Total tasks : 2
  Succeeded   : 2
  Failed      : 0
  Cancelled   : 0
  Duration    : 0.500s
----------------------------------------
"""

TIMED_OUT_TEXT = """\
----------------------------------------
  Run Summary: TIMED OUT
----------------------------------------
  Total tasks : 3
  Succeeded   : 1
  Failed      : 1
  Cancelled   : 1
  Duration    : 30.000s
----------------------------------------
  Failures:
    - slow
      attempt timed out after 5s
      its worker was killed and replaced
----------------------------------------
"""


def test_display_failing_example(capsys: pytest.CaptureFixture[str]) -> None:
    summary = example_summary()
    for r in summary.results:
        assert len(r.attempt_log) == r.attempts
    summary.display()
    assert capsys.readouterr().out == EXAMPLE_TEXT
    assert summary.report() == EXAMPLE_TEXT.rstrip("\n")
    assert summary.status_word == "COMPLETED WITH ERRORS"
    assert not summary.ok


def test_display_passing_run(capsys: pytest.CaptureFixture[str]) -> None:
    summary = RunSummary(
        (result("a", "one", "succeeded", value=1), result("b", "two", "succeeded", value=2)),
        duration=0.5,
    )
    summary.display()
    assert capsys.readouterr().out == PASSED_TEXT
    assert summary.ok
    assert summary.status_word == "PASSED"


def test_display_timed_out_run_with_multiline_message(capsys: pytest.CaptureFixture[str]) -> None:
    summary = RunSummary(
        (
            result("a", "quick", "succeeded", value=1),
            result(
                "b",
                "slow",
                "failed",
                log=(attempt(outcome="timed_out"),),
                message="attempt timed out after 5s\n\nits worker was killed and replaced\n",
            ),
            result("c", "later", "cancelled", message="cancelled: run timed out"),
        ),
        duration=30.0,
        timed_out=True,
    )
    summary.display()
    assert capsys.readouterr().out == TIMED_OUT_TEXT
    assert summary.status_word == "TIMED OUT"
    assert not summary.ok


def test_timed_out_without_failures_is_not_ok() -> None:
    summary = RunSummary((result("a", "x", "cancelled"),), duration=1.0, timed_out=True)
    assert not summary.ok
    assert summary.status_word == "TIMED OUT"
    assert "Failures" not in summary.report()


def test_cancellations_make_ok_false_without_raising() -> None:
    # osiiso: "True if no failures, cancellations, or timeouts" (test_ok_false_when_cancelled)
    summary = RunSummary(
        (result("a", "x", "succeeded"), result("b", "y", "cancelled")), duration=1.0
    )
    assert not summary.ok
    assert summary.status_word == "COMPLETED WITH ERRORS"
    report = summary.report()
    assert "Run Summary: COMPLETED WITH ERRORS" in report
    assert "  Cancelled   : 1" in report
    assert "Failures" not in report  # the failures block lists failed tasks only
    assert summary.to_dict()["ok"] is False
    assert summary.to_dict()["status"] == "COMPLETED WITH ERRORS"
    assert "Run Summary: COMPLETED WITH ERRORS" in summary._repr_html_()
    summary.raise_for_errors()  # cancellations alone raise only when asked to
    with pytest.raises(ExecutionError, match="cancelled"):
        summary.raise_for_errors(include_cancelled=True)


def test_a_run_whose_every_task_was_cancelled_is_not_ok() -> None:
    summary = RunSummary(
        (result("a", "x", "cancelled"), result("b", "y", "cancelled")), duration=1.0
    )
    assert not summary.ok
    assert summary.report().splitlines()[1] == "  Run Summary: COMPLETED WITH ERRORS"
    assert summary.values == () and summary.errors == ()


def test_views_are_tuples() -> None:
    summary = example_summary()
    views = (
        summary.values,
        summary.errors,
        summary.successes(),
        summary.cancellations(),
        *summary.by_name().values(),
        *summary.by_group().values(),
    )
    assert all(type(view) is tuple for view in views)
    assert summary.cancellations() == ()
    assert summary.by_group()[("h", 1)] == (summary.results[4],)


def test_failure_without_message_has_no_message_line() -> None:
    summary = RunSummary((result("a", "quiet", "failed"),), duration=0.25)
    assert summary.report().splitlines()[-3:] == [
        "  Failures:",
        "    - quiet",
        "-" * 40,
    ]


def test_counters_and_lookups() -> None:
    summary = example_summary()
    assert (summary.total_submitted, summary.succeeded, summary.failed, summary.cancelled) == (
        5,
        3,
        2,
        0,
    )
    assert summary.values == (1, 3, 5)
    assert [r.task_id for r in summary.errors] == ["t2", "t4"]
    assert [r.task_id for r in summary.successes()] == ["t1", "t3", "t5"]
    assert summary.cancellations() == ()
    assert list(summary.by_task_id()) == ["t1", "t2", "t3", "t4", "t5"]
    assert summary.by_task_id()["t4"].name == "parse-data"
    assert {k: [r.task_id for r in v] for k, v in summary.by_name().items()}["save"] == ["t5"]


def test_values_keep_submission_order() -> None:
    summary = RunSummary(
        tuple(result(f"t{i}", "f", "succeeded" if i % 2 else "failed", value=i) for i in range(6)),
        duration=1.0,
    )
    assert summary.values == (1, 3, 5)


def test_by_group_puts_ungrouped_under_none() -> None:
    groups = example_summary().by_group()
    assert list(groups) == ["g", None, ("h", 1)]
    assert [r.task_id for r in groups["g"]] == ["t1", "t2"]
    assert [r.task_id for r in groups[None]] == ["t3", "t4"]
    assert [r.task_id for r in groups[("h", 1)]] == ["t5"]


def test_raise_for_errors_counts_failures() -> None:
    summary = example_summary()
    with pytest.raises(ExecutionError) as info:
        summary.raise_for_errors()
    assert str(info.value) == "2 task(s) failed"
    assert [r.task_id for r in info.value.results] == ["t2", "t4"]


def test_raise_for_errors_with_cancellations() -> None:
    mixed = RunSummary(
        (
            result("a", "x", "cancelled"),
            result("b", "y", "failed"),
            result("c", "z", "succeeded"),
        ),
        duration=1.0,
    )
    with pytest.raises(ExecutionError) as info:
        mixed.raise_for_errors(include_cancelled=True)
    assert str(info.value) == "1 task(s) failed, 1 task(s) cancelled"
    assert [r.task_id for r in info.value.results] == ["a", "b"]

    only_cancelled = RunSummary((result("a", "x", "cancelled"),), duration=1.0)
    only_cancelled.raise_for_errors()
    with pytest.raises(ExecutionError, match=r"^1 task\(s\) cancelled$") as info:
        only_cancelled.raise_for_errors(include_cancelled=True)
    assert [r.task_id for r in info.value.results] == ["a"]


def test_telemetry_figures() -> None:
    log_a = (
        attempt(1, worker=0, pid=11, started_at=0.0, duration=1.0, cpu_time=0.5, outcome="crashed"),
        attempt(2, worker=0, pid=12, started_at=1.0, duration=1.0, cpu_time=1.0),
    )
    log_b = (
        attempt(1, worker=1, pid=21, started_at=0.0, duration=0.5, cpu_time=0.5, peak_rss=7 << 20),
    )
    log_c = (
        attempt(1, worker=1, pid=21, started_at=None, outcome="crashed"),
        attempt(2, worker=1, pid=22, started_at=1.0, duration=1.0, outcome="timed_out"),
        attempt(3, worker=0, pid=12, started_at=2.0, duration=0.5, outcome="memory_exceeded"),
    )
    summary = RunSummary(
        (
            result("a", "a", "succeeded", log=log_a),
            result("b", "b", "succeeded", log=log_b),
            result("c", "c", "failed", log=log_c),
            result("d", "d", "cancelled", log=()),
        ),
        duration=4.0,
        procs=2,
        respawns=3,
    )
    t = summary.telemetry
    cpu = 0.5 + 1.0 + 0.5 + 0.1 + 0.1 + 0.1
    assert t.cpu_seconds == pytest.approx(cpu)
    assert t.efficiency == pytest.approx(cpu / 8.0)
    assert t.attempts == 6
    assert t.retries == 3
    assert t.crashes == 2
    assert t.timeouts == 1
    assert t.memory_exceeded == 1
    assert t.respawns == 3
    assert t.peak_rss == 7 << 20
    assert [w.worker for w in t.workers] == [0, 1]
    w0, w1 = t.workers
    assert w0.pids == (11, 12)
    assert w0.attempts == 3
    assert w0.busy_time == pytest.approx(2.5)
    assert w0.utilisation == pytest.approx(2.5 / 4.0)
    assert w1.pids == (21, 22)
    assert w1.attempts == 3
    assert w1.busy_time == pytest.approx(1.5)  # the attempt that never started costs nothing
    assert [r.task_id for r in t.slowest] == ["c", "a", "b"]  # "d" never started
    assert summary.telemetry is t


def test_telemetry_of_empty_run() -> None:
    t = RunSummary((), duration=0.0, procs=0).telemetry
    assert (t.cpu_seconds, t.efficiency, t.attempts, t.peak_rss) == (0.0, 0.0, 0, 0)
    assert t.workers == () and t.slowest == ()


def test_slowest_keeps_five() -> None:
    results = tuple(
        result(f"t{i}", "f", "succeeded", log=(attempt(duration=float(i)),)) for i in range(8)
    )
    slowest = RunSummary(results, duration=10.0).telemetry.slowest
    assert [r.task_id for r in slowest] == ["t7", "t6", "t5", "t4", "t3"]


def test_to_json_round_trip() -> None:
    summary = RunSummary(
        (
            *example_summary().results,
            result(
                "t6", "odd", "succeeded", value={1, 2}, group_id=frozenset({1}), metadata=(1, 2)
            ),
            result("t7", "opaque", "cancelled", metadata=object(), message="cancelled by user"),
        ),
        duration=1.234,
        procs=2,
    )
    data = summary.to_dict()
    text = summary.to_json()
    assert json.loads(text) == data
    assert summary.to_json() == text  # stable
    assert json.loads(summary.to_json(indent=2, sort_keys=True)) == data
    assert data["schema_version"] == 1
    assert (data["total_submitted"], data["succeeded"], data["failed"], data["cancelled"]) == (
        7,
        4,
        2,
        1,
    )
    assert data["status"] == "COMPLETED WITH ERRORS" and data["ok"] is False
    assert data["telemetry"]["attempts"] == summary.telemetry.attempts
    assert data["telemetry"]["slowest"][0] == "t2"
    by_id = {r["task_id"]: r for r in data["results"]}
    assert by_id["t1"]["value_repr"] == "1"
    assert by_id["t2"]["exception"] == {
        "type": "ConnectionRefusedError",
        "message": "Connection refused",
    }
    assert by_id["t2"]["value_repr"] is None
    assert len(by_id["t2"]["attempt_log"]) == 3
    assert set(by_id["t2"]["attempt_log"][0]) == {f.name for f in dataclasses.fields(Attempt)}
    assert by_id["t5"]["group_id"] == "('h', 1)"
    assert by_id["t6"]["group_id"] == "frozenset({1})"
    assert by_id["t6"]["metadata"] == [1, 2]
    assert by_id["t7"]["metadata"].startswith("<object object")
    assert by_id["t1"]["group_id"] == "g"


def test_html_escapes_user_text() -> None:
    evil = "<script>alert(1)</script>"
    summary = RunSummary(
        (
            result("id<1>", evil, "failed", message=evil, group_id=evil),
            result("ok", "fine", "succeeded"),
        ),
        duration=1.0,
    )
    html = summary._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "id&lt;1&gt;" in html
    assert "COMPLETED WITH ERRORS" in html


def test_timeline_has_one_rect_per_started_attempt() -> None:
    summary = example_summary()
    extra = result(
        "t6",
        "<b>&",
        "failed",
        log=(attempt(1, worker=3, started_at=None, outcome="crashed"),),
    )
    summary = RunSummary((*summary.results, extra), duration=2.0)
    svg = summary.timeline()
    assert svg._repr_svg_() == str(svg)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    rects = [e for e in root.iter(f"{SVG_NS}rect") if e.get("class") == "attempt"]
    started = sum(a.started_at is not None for r in summary.results for a in r.attempt_log)
    assert started == 7
    assert len(rects) == started
    titles = [(e.findtext(f"{SVG_NS}title") or "").splitlines()[0] for e in rects]
    assert "fetch-api #3 failed 0.100s" in titles
    fills = {e.get("fill") for e in rects}
    assert fills == {"#2e9e44", "#d62728"}


def test_timeline_escapes_and_handles_empty() -> None:
    named = RunSummary((result("x", "<b>&", "succeeded"),), duration=1.0)
    root = ET.fromstring(named.timeline())
    titles = [
        (e.findtext(f"{SVG_NS}title") or "\n").splitlines()[0] for e in root.iter(f"{SVG_NS}rect")
    ]
    assert "<b>& #1 succeeded 0.100s" in titles

    empty = ET.fromstring(RunSummary((), duration=0.0).timeline())
    assert [e for e in empty.iter(f"{SVG_NS}rect") if e.get("class") == "attempt"] == []
    assert "no attempts" in "".join(empty.itertext())
    with pytest.raises(ValueError, match="width"):
        named.timeline(width=10)


def test_records_are_frozen() -> None:
    summary = example_summary()
    r = summary.results[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = "failed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.attempt_log[0].duration = 9.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.failed = 0  # type: ignore[misc]
    info = TaskInfo("t", "n", "mod.fn", (1,), {"k": 2}, 1_700_000_000_000, 0, "queued", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.tries = 1  # type: ignore[misc]


def test_records_pickle_and_compare() -> None:
    summary = example_summary()
    summary.telemetry  # noqa: B018 - fill the cache; it must not affect equality
    clone = pickle.loads(pickle.dumps(summary))
    assert clone.report() == summary.report()
    assert clone.results[0] == summary.results[0]
    assert RunSummary(list(summary.results), duration=1.234, procs=2) == RunSummary(  # type: ignore[arg-type]
        summary.results, duration=1.234, procs=2
    )


def test_reprs_are_compact() -> None:
    summary = example_summary()
    assert repr(summary) == (
        "RunSummary(COMPLETED WITH ERRORS, total=5, succeeded=3, failed=2, cancelled=0, "
        "duration=1.234s)"
    )
    text = repr(summary.results[1])
    assert text.startswith("TaskResult(task_id='t2', name='fetch-api', status='failed', attempts=3")
    assert "ConnectionRefusedError" in text
    big = result("b", "big", "succeeded", value=list(range(10_000)))
    assert len(repr(big)) < 200
    assert big.ok and not summary.results[1].ok


def test_repr_pretty_uses_report() -> None:
    class Printer:
        def __init__(self) -> None:
            self.out: list[str] = []

        def text(self, s: str) -> None:
            self.out.append(s)

    p = Printer()
    summary = example_summary()
    summary._repr_pretty_(p, False)
    assert p.out == [summary.report()]


# --------------------------------------------------------------------------- kept values
# A record the executor kept holds its value serialized (StoredValue); one it hands out
# makes the value on first read; one released under retain_bytes raises on reading it.


def _kept(task_id: str, value: Any) -> TaskResult:
    """A record as the executor keeps it: its value in the form the worker sent."""
    record = result(task_id, "kept", "succeeded", value=None)
    return with_value(record, StoredValue(pickle.dumps(value, protocol=5), ()))


def _released(task_id: str) -> TaskResult:
    record = _kept(task_id, [1, 2])
    set_raw_value(record, ReleasedValue(256 << 20))
    return record


def test_a_handed_out_record_makes_its_value_once_and_keeps_it() -> None:
    kept = _kept("k1", {"a": [1, 2]})
    mine = handout(kept)
    assert mine is not kept and mine.value == {"a": [1, 2]}
    assert mine.value is mine.value  # made on first read, then the record keeps it
    assert type(raw_value(kept)) is StoredValue  # the kept record still holds no object
    assert kept.value == mine.value and kept.value is not kept.value  # made on each read
    assert mine == kept
    frozen = _kept("k1", (1, "a"))
    assert (
        hash(handout(frozen))
        == hash(frozen)
        == hash(result("k1", "kept", "succeeded", value=(1, "a")))
    )
    plain = result("k1", "kept", "succeeded", value={"a": [1, 2]})
    assert plain == kept and handout(plain) is plain  # nothing stored: nothing to copy


def test_kept_values_show_in_repr_pickle_and_json_as_the_value() -> None:
    kept = _kept("k2", (1, "two"))
    assert "value=(1, 'two')" in repr(kept)
    clone = pickle.loads(pickle.dumps(handout(kept)))
    assert raw_value(clone) == (1, "two") and clone == kept  # pickled as the value itself
    data = RunSummary((kept,), duration=1.0).to_dict()
    assert data["results"][0]["value_repr"] == "(1, 'two')"
    assert RunSummary((handout(kept),), duration=1.0).values == ((1, "two"),)


def test_a_released_value_raises_naming_retain_bytes_and_its_record_stays() -> None:
    record = _released("gone")
    with pytest.raises(ValueReleasedError, match=r"retain_bytes \(256\.00 MiB\)") as info:
        record.value  # noqa: B018
    assert "task 'kept', id gone" in str(info.value) and info.value.limit == 256 << 20
    assert record.status == "succeeded" and record.ok and record.attempts == 1
    summary = RunSummary((result("ok", "f", "succeeded", value=3), record), duration=1.0)
    assert summary.succeeded == 2 and summary.ok
    with pytest.raises(ValueReleasedError, match="retain_bytes"):
        summary.values  # noqa: B018
    # nothing else reads it, so nothing else raises
    assert "value=<value released under retain_bytes>" in repr(record)
    data = json.loads(summary.to_json())
    assert data["results"][1]["value_repr"] == "<value released under retain_bytes>"
    assert summary.report().startswith("-" * 40)
    clone = pickle.loads(pickle.dumps(record))
    assert clone == record and clone != _kept("gone", [1, 2])  # released != any value
    assert hash(clone) == hash(record)
    with pytest.raises(ValueReleasedError):
        clone.value  # noqa: B018


def test_value_released_error_pickles_to_an_equal_error() -> None:
    err = ValueReleasedError(1024, name="f", task_id="abc")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is ValueReleasedError and str(clone) == str(err)
    assert (clone.limit, clone.name, clone.task_id) == (1024, "f", "abc")
    assert "retain_bytes (1.00 KiB)" in str(err)
    assert isinstance(err, OsiisoError)
    assert "no budget" in str(ValueReleasedError(None))


def test_a_packed_record_unpacks_equal_and_is_left_alone_by_the_collector() -> None:
    import gc

    plain = result("a", "f", "succeeded", value=7, metadata={"k": 1})
    failed = result(
        "b",
        "g",
        "failed",
        log=(attempt(1, outcome="crashed", exit_code=-9), attempt(2, outcome="failed")),
        exception=ValueError("no"),
        message="ValueError: no",
        group_id="batch",
    )
    for record in (plain, failed):
        packed = pack(record)
        again = unpack(packed)
        assert again == record and again is not record
        assert again.attempt_log == record.attempt_log and again.attempt_log[0] is not None
        assert packed_status(packed) == record.status
        assert packed_finished_at(packed) == record.finished_at
        assert unpack(packed) is not again  # a new record on each read
        assert packed_value(packed) is raw_value(record)
    # the value slot as it is, not read through (a stored value stays stored)
    stored = StoredValue(pickle.dumps([1, 2], protocol=5), ())
    deferred = with_value(plain, stored)
    assert raw_value(unpack(pack(deferred))) is stored
    assert raw_value(unpack(pack(plain, stored, replace=True))) is stored
    marker = ReleasedValue(100)
    assert raw_value(unpack(packed_with_value(pack(plain), marker))) is marker
    # made of strings, numbers and None: after one collection the collector no longer
    # tracks it (a record and its attempt are objects it walks for as long as they live)
    packed = pack(result("c", "h", "succeeded", value=3))
    assert gc.is_tracked(packed)
    gc.collect()
    assert not gc.is_tracked(packed)
