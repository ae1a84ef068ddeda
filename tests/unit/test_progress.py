"""Unit tests of progress reporting (PRODUCT.md section 8, "Progress"); no processes.

Every tracker here watches plain ``concurrent.futures.Future`` objects, some carrying a
hand-made ``_record`` as a ``TaskFuture`` does. Both bars are covered: tqdm's (installed in
the dev environment) and the text fallback (forced with ``use_tqdm=False``, or by hiding
tqdm from the import system).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
import logging
import os
import pickle
import re
import sys
import threading
import time
from array import array
from typing import Any

import pytest

from osiiso_mp._progress import (
    ProgressEvent,
    ProgressTracker,
    _bars,
    progress_tracker,
    sized_total,
)
from osiiso_mp._results import TaskResult
from osiiso_mp._runtime._chunk import Chunk
from osiiso_mp._runtime._retention import StoredValue
from osiiso_mp._task_options import TaskOptions

TEXT_LINE = re.compile(
    r"demo: \|[# ]{20}\| (\d+)/(\d+) done \((\d+) ok, (\d+) failed, (\d+) cancelled\) \d+\.\ds"
)


# --------------------------------------------------------------------------- helpers


def settle(fut: cf.Future[Any], outcome: str, value: Any = None) -> None:
    """Finish a plain future: ``"ok"``, ``"fail"`` or ``"cancel"``."""
    if outcome == "ok":
        fut.set_result(value)
    elif outcome == "fail":
        fut.set_exception(ValueError(f"bad {value!r}"))
    else:
        assert fut.cancel()
        fut.set_running_or_notify_cancel()


def futures(n: int) -> list[cf.Future[Any]]:
    return [cf.Future() for _ in range(n)]


class RecordFuture(cf.Future[Any]):
    """A plain future that carries a record, as a ``TaskFuture`` does."""

    def __init__(self, record: TaskResult) -> None:
        super().__init__()
        self._record: TaskResult | None = record


class Events:
    """A progress callable that keeps what it receives."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.threads: set[int] = set()

    def __call__(self, event: ProgressEvent) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)

    @property
    def final(self) -> list[ProgressEvent]:
        return [e for e in self.events if e.final]


def text_frames(output: str) -> list[str]:
    """The lines the text bar drew (each starts with a carriage return)."""
    assert output.startswith("\r")
    return [frame.rstrip() for frame in output.split("\r")[1:]]


def callback_tracker(events: Events, total: int | None = None) -> ProgressTracker:
    tracker = progress_tracker(events, total=total)
    assert tracker is not None
    return tracker


# --------------------------------------------------------------------------- the argument


@pytest.mark.parametrize("off", [None, False])
def test_falsy_progress_gives_no_tracker(off: Any) -> None:
    assert progress_tracker(off, total=3) is None


@pytest.mark.parametrize("bad", [1, 0, "yes", 2.5, [print], object()])
def test_other_values_raise_type_error_naming_progress(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^progress must be True .*got"):
        progress_tracker(bad)


@pytest.mark.parametrize("total", [-1, 1.5, True, "3"])
def test_a_bad_total_raises_value_error(total: Any) -> None:
    with pytest.raises(ValueError, match="total must be a non-negative int or None"):
        progress_tracker(Events(), total=total)


def test_kinds() -> None:
    bar = progress_tracker(True, use_tqdm=True, file=io.StringIO())
    text = progress_tracker(True, use_tqdm=False, file=io.StringIO())
    call = progress_tracker(Events())
    assert bar is not None and text is not None and call is not None
    assert (bar.kind, text.kind, call.kind) == ("tqdm", "text", "callback")
    assert "ProgressTracker callback 0/? done open" in repr(call)


def test_nothing_is_shown_and_no_thread_started_before_tracking() -> None:
    before = threading.active_count()
    for use_tqdm in (True, False):
        out = io.StringIO()
        tracker = progress_tracker(True, total=3, use_tqdm=use_tqdm, file=out)
        assert tracker is not None
        assert out.getvalue() == ""
    assert threading.active_count() == before


# --------------------------------------------------------------------------- the callable


def test_callback_gets_one_event_per_task_then_one_final_event() -> None:
    events = Events()
    tracker = callback_tracker(events, total=4)
    futs = futures(4)
    tracker.track_all(futs)
    settle(futs[2], "ok", 20)
    settle(futs[0], "fail", 0)
    settle(futs[3], "cancel")
    settle(futs[1], "ok", 10)
    tracker.close()

    counts = [(e.done, e.succeeded, e.failed, e.cancelled) for e in events.events]
    assert counts == [(1, 1, 0, 0), (2, 1, 1, 0), (3, 1, 1, 1), (4, 2, 1, 1), (4, 2, 1, 1)]
    assert [e.final for e in events.events] == [False] * 4 + [True]
    assert all(e.total == 4 for e in events.events)
    results = [e.result for e in events.events]
    assert results[-1] is None
    assert [r.status for r in results[:-1] if r is not None] == [
        "succeeded",
        "failed",
        "cancelled",
        "succeeded",
    ]
    assert results[0] is not None and results[0].value == 20
    failed = results[1]
    assert failed is not None and isinstance(failed.exception, ValueError)
    assert failed.message == "bad 0"
    elapsed = [e.elapsed for e in events.events]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0.0


def test_futures_already_done_are_counted_at_once_in_the_callers_thread() -> None:
    events = Events()
    tracker = callback_tracker(events)
    futs = futures(3)
    settle(futs[0], "ok")
    settle(futs[1], "cancel")
    tracker.track_all(futs, last=True)
    assert [(e.done, e.total) for e in events.events] == [(1, 3), (2, 3)]
    assert events.threads == {threading.get_ident()}
    settle(futs[2], "fail")
    tracker.close()
    assert events.final == [dataclasses.replace(events.final[0], done=3)]
    final = events.final[0]
    assert (final.succeeded, final.failed, final.cancelled, final.result) == (1, 1, 1, None)


def test_the_record_decides_the_outcome_when_a_future_carries_one() -> None:
    events = Events()
    tracker = callback_tracker(events)
    record = TaskResult(task_id="t1", name="job", status="cancelled", message="why")
    fut = RecordFuture(record)
    tracker.track(fut)
    fut.set_result(None)  # the record says cancelled, and wins
    tracker.close()
    assert events.events[0].result is record
    assert (events.final[0].cancelled, events.final[0].succeeded) == (1, 0)


def test_stand_in_record_takes_task_id_and_name_when_the_future_has_them() -> None:
    events = Events()
    fut: cf.Future[Any] = cf.Future()
    fut.task_id = "abc"  # type: ignore[attr-defined]
    fut.name = "job"  # type: ignore[attr-defined]
    with callback_tracker(events) as tracker:
        tracker.track(fut)
        settle(fut, "ok", 5)
    result = events.events[0].result
    assert result is not None
    assert (result.task_id, result.name, result.status, result.value) == (
        "abc",
        "job",
        "succeeded",
        5,
    )


def test_total_none_stays_none_and_last_sets_it() -> None:
    events = Events()
    tracker = callback_tracker(events)
    first = futures(2)
    tracker.track_all(first)
    settle(first[0], "ok")
    assert events.events[-1].total is None
    assert tracker.snapshot().total is None
    second = futures(3)
    tracker.track_all(second, last=True)
    assert tracker.total == 5
    for fut in [first[1], *second]:
        settle(fut, "ok")
    tracker.close()
    assert [e.total for e in events.events] == [None, 5, 5, 5, 5, 5]
    assert events.final[0].fraction == 1.0


def test_given_total_is_kept_without_last() -> None:
    events = Events()
    with callback_tracker(events, total=10) as tracker:
        tracker.track_all(futures(2))
    assert events.final[0].total == 10
    assert events.final[0].done == 0
    assert events.final[0].fraction == 0.0


def test_progress_event_fraction() -> None:
    def ev(done: int, total: int | None) -> ProgressEvent:
        return ProgressEvent(done, total, done, 0, 0, 0.0)

    assert ev(1, 4).fraction == 0.25
    assert ev(0, 0).fraction == 1.0
    assert ev(3, None).fraction is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev(1, 2).done = 2  # type: ignore[misc]


def test_close_is_idempotent_and_ignores_later_futures() -> None:
    events = Events()
    tracker = callback_tracker(events)
    fut: cf.Future[Any] = cf.Future()
    tracker.track(fut)
    tracker.close()
    tracker.close()
    assert tracker.closed
    settle(fut, "ok")
    late: cf.Future[Any] = cf.Future()
    settle(late, "ok")
    tracker.track(late)
    tracker.on_done(late)
    assert len(events.events) == 1 and events.events[0].final
    assert events.events[0].done == 0
    assert tracker.snapshot().final


def test_close_without_tracking_sends_a_final_event() -> None:
    events = Events()
    callback_tracker(events, total=0).close()
    assert [(e.done, e.total, e.final) for e in events.events] == [(0, 0, True)]


def test_on_done_ignores_an_unfinished_future() -> None:
    events = Events()
    tracker = callback_tracker(events)
    tracker.on_done(cf.Future())
    tracker.close()
    assert [e.final for e in events.events] == [True]


def test_close_waits_for_a_done_callback_already_under_way() -> None:
    """The future is done (waiters woke) but its callbacks are still running elsewhere."""
    events = Events()
    tracker = callback_tracker(events)
    fut: cf.Future[Any] = cf.Future()
    fut.add_done_callback(lambda _: time.sleep(0.3))  # runs before the tracker's callback
    tracker.track_all([fut], last=True)
    setter = threading.Thread(target=fut.set_result, args=(1,))
    setter.start()
    cf.wait([fut])
    tracker.close()
    setter.join()
    assert events.final[0].done == 1


def test_callback_that_raises_is_logged_once_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[ProgressEvent] = []

    def broken(event: ProgressEvent) -> None:
        calls.append(event)
        raise RuntimeError("boom")

    tracker = progress_tracker(broken)
    assert tracker is not None
    futs = futures(3)
    with caplog.at_level(logging.DEBUG, logger="osiiso_mp"):
        tracker.track_all(futs)
        for fut in futs:
            settle(fut, "ok")
        tracker.close()
    assert len(calls) == 4 and calls[-1].final
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "osiiso_mp"
    assert "progress callback" in errors[0].getMessage()
    assert errors[0].exc_info is not None and "boom" in str(errors[0].exc_info[1])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "raised 4 times" in warnings[0].getMessage()


def test_events_are_ordered_when_many_threads_finish_tasks() -> None:
    events = Events()
    tracker = callback_tracker(events)
    per_thread, n_threads = 500, 8
    futs = futures(per_thread * n_threads)
    tracker.track_all(futs, last=True)
    start = threading.Barrier(n_threads)

    def finish(mine: list[cf.Future[Any]]) -> None:
        start.wait()
        for i, fut in enumerate(mine):
            settle(fut, ("ok", "fail", "cancel")[i % 3])

    threads = [
        threading.Thread(target=finish, args=(futs[i::n_threads],)) for i in range(n_threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracker.close()
    done = [e.done for e in events.events if not e.final]
    assert done == list(range(1, len(futs) + 1))
    final = events.final[0]
    assert final.done == final.total == len(futs)
    assert final.succeeded + final.failed + final.cancelled == len(futs)
    assert (final.succeeded, final.failed, final.cancelled) == (
        per_thread // 3 * n_threads + (per_thread % 3 > 0) * n_threads,
        per_thread // 3 * n_threads + (per_thread % 3 > 1) * n_threads,
        per_thread // 3 * n_threads,
    )


def test_a_callback_that_finishes_another_future_does_not_deadlock() -> None:
    futs = futures(2)
    seen: list[tuple[int, bool]] = []

    def chain(event: ProgressEvent) -> None:
        seen.append((event.done, event.final))
        if event.done == 1:
            settle(futs[1], "ok")  # counted re-entrantly, delivered after this returns

    tracker = progress_tracker(chain)
    assert tracker is not None
    tracker.track_all(futs, last=True)
    settle(futs[0], "ok")
    tracker.close()
    assert seen == [(1, False), (2, False), (2, True)]


def test_a_callback_may_close_its_tracker() -> None:
    seen: list[ProgressEvent] = []
    holder: list[ProgressTracker] = []

    def closer(event: ProgressEvent) -> None:
        seen.append(event)
        if not event.final:
            holder[0].close()

    tracker = progress_tracker(closer)
    assert tracker is not None
    holder.append(tracker)
    futs = futures(2)
    tracker.track_all(futs)
    settle(futs[0], "ok")
    settle(futs[1], "ok")
    assert [(e.done, e.final) for e in seen] == [(1, False), (1, True)]


# --------------------------------------------------------------------------- the text bar


def test_text_bar_is_one_line_redrawn_in_place() -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, desc="demo", use_tqdm=False, file=out)
    assert tracker is not None
    futs = futures(4)
    tracker.track_all(futs, last=True)
    settle(futs[0], "ok")
    settle(futs[1], "fail")
    time.sleep(0.35)  # the redraw thread catches up
    settle(futs[2], "cancel")
    settle(futs[3], "ok")
    tracker.close()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    frames = text_frames(text)
    assert TEXT_LINE.fullmatch(frames[0])
    assert frames[0].startswith("demo: |                    | 0/4 done (0 ok, 0 failed")
    assert "2/4 done (1 ok, 1 failed, 0 cancelled)" in " ".join(frames[1:-1])
    assert frames[-1].startswith(
        "demo: |####################| 4/4 done (2 ok, 1 failed, 1 cancelled) "
    )
    for frame in frames:
        assert TEXT_LINE.fullmatch(frame), frame


def test_text_bar_without_a_total() -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, desc="demo", use_tqdm=False, file=out)
    assert tracker is not None
    futs = futures(3)
    tracker.track_all(futs)
    for fut in futs:
        settle(fut, "ok")
    tracker.close()
    last = text_frames(out.getvalue())[-1]
    assert re.fullmatch(r"demo: 3 done \(3 ok, 0 failed, 0 cancelled\) \d+\.\ds", last)


def test_text_bar_redraws_at_most_ten_times_a_second() -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, desc="demo", use_tqdm=False, file=out)
    assert tracker is not None
    futs = futures(3000)
    tracker.track_all(futs, last=True)
    start = time.monotonic()
    for fut in futs:
        settle(fut, "ok")
        time.sleep(0.0001)
    tracker.close()
    elapsed = time.monotonic() - start
    frames = text_frames(out.getvalue())
    # the first frame, at most one per 0.1 s of redraw thread, the final one
    assert len(frames) <= 2 + elapsed / 0.1 + 1
    assert frames[-1].startswith("demo: |####################| 3000/3000 done (3000 ok")


def test_text_bar_pads_a_shorter_line_over_a_longer_one() -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, desc="demo", use_tqdm=False, file=out)
    assert tracker is not None
    tracker.track_all(futures(10))
    first = text_frames(out.getvalue())[0]
    display = tracker._display
    assert isinstance(display, _bars.TextDisplay)
    display._width = len(first) + 7  # as if a longer line was on screen
    tracker.close()
    raw_last = out.getvalue().split("\r")[-1]
    assert raw_last.endswith(" " * 7 + "\n")


def test_text_bar_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    tracker = progress_tracker(True, total=1, desc="demo", use_tqdm=False)
    assert tracker is not None
    fut: cf.Future[Any] = cf.Future()
    tracker.track(fut)
    settle(fut, "fail")
    tracker.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert text_frames(captured.err)[-1].startswith(
        "demo: |####################| 1/1 done (0 ok, 1 failed, 0 cancelled)"
    )


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_bar_on_a_terminal_fits_its_width_and_keeps_the_clock_moving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.get_terminal_size", lambda: os.terminal_size((40, 24)))
    monkeypatch.setattr(_bars, "_TTY_TICK", 0.1)
    out = FakeTerminal()
    tracker = progress_tracker(True, desc="demo", use_tqdm=False, file=out)
    assert tracker is not None
    tracker.track_all(futures(1))
    time.sleep(0.5)  # nothing finishes, but the clock is redrawn
    tracker.close()
    frames = text_frames(out.getvalue())
    assert len(frames) >= 3
    assert all(len(f) <= 39 for f in frames)


class BrokenStream(io.StringIO):
    def write(self, s: str) -> int:
        raise OSError("stream gone")


def test_text_bar_on_a_broken_stream_never_raises() -> None:
    tracker = progress_tracker(True, use_tqdm=False, file=BrokenStream())
    assert tracker is not None
    futs = futures(2)
    tracker.track_all(futs)
    settle(futs[0], "ok")
    settle(futs[1], "fail")
    tracker.close()
    assert tracker.snapshot().done == 2


def test_the_redraw_thread_ends_at_close() -> None:
    tracker = progress_tracker(True, use_tqdm=False, file=io.StringIO())
    assert tracker is not None
    tracker.track_all(futures(1))
    names = [t.name for t in threading.enumerate()]
    assert "osiiso_mp-progress" in names
    tracker.close()
    assert "osiiso_mp-progress" not in [t.name for t in threading.enumerate()]


# --------------------------------------------------------------------------- tqdm


def test_tqdm_bar_is_used_when_tqdm_is_installed() -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, desc="demo", file=out)
    assert tracker is not None and tracker.kind == "tqdm"
    futs = futures(5)
    tracker.track_all(futs, last=True)
    for fut, outcome in zip(futs, ["ok", "fail", "cancel", "ok", "ok"], strict=True):
        settle(fut, outcome)
    tracker.close()
    text = out.getvalue()
    assert "demo:" in text
    assert "0/5" in text
    assert re.search(r"demo: 100%\|#+\| 5/5 \[.*task/s, 1 failed, 1 cancelled\]\n$", text), text


def test_tqdm_bar_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    tracker = progress_tracker(True, desc="demo")
    assert tracker is not None
    fut: cf.Future[Any] = cf.Future()
    tracker.track_all([fut], last=True)
    settle(fut, "ok")
    tracker.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "demo: 100%" in captured.err and "1/1" in captured.err


def test_tqdm_bar_without_a_total_then_given_one() -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, desc="demo", file=out)
    assert tracker is not None
    first = futures(2)
    tracker.track_all(first)
    settle(first[0], "ok")
    second = futures(1)
    tracker.track_all(second, last=True)
    settle(first[1], "ok")
    settle(second[0], "ok")
    tracker.close()
    text = out.getvalue()
    assert "0task [" in text  # no total at first: a count, no percentage
    assert re.search(r"demo: 100%\|#+\| 3/3 ", text), text


def test_tqdm_bar_that_cannot_start_does_not_break_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def no_bar(**kwargs: Any) -> Any:
        raise RuntimeError("no terminal")

    tracker = ProgressTracker(_bars._TqdmDisplay(no_bar, "demo", None))
    futs = futures(2)
    with caplog.at_level(logging.WARNING, logger="osiiso_mp"):
        tracker.track_all(futs)
        settle(futs[0], "ok")
        settle(futs[1], "fail")
        tracker.close()
    assert tracker.snapshot().done == 2
    assert any("could not start a tqdm progress bar" in r.getMessage() for r in caplog.records)


def test_without_tqdm_progress_true_falls_back_to_the_text_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    assert _bars._tqdm_class() is None
    tracker = progress_tracker(True, use_tqdm=None, file=io.StringIO())
    assert tracker is not None and tracker.kind == "text"
    with pytest.raises(ImportError, match=r"osiiso_mp\[progress\]"):
        progress_tracker(True, use_tqdm=True)


def test_importing_tqdm_auto_raises_no_warning() -> None:
    # pytest turns warnings into errors here; tqdm.auto's experimental warning is silenced
    assert _bars._tqdm_class() is not None


# --------------------------------------------------------------------------- sized_total


def test_sized_total() -> None:
    assert sized_total([[1, 2, 3]]) == 3
    assert sized_total([range(10), "abcd", (1, 2, 3, 4, 5)]) == 4
    assert sized_total([[1, 2], iter([1, 2])]) is None
    assert sized_total([x for x in range(3)] for _ in range(1)) == 3
    assert sized_total(()) is None
    assert sized_total([{}]) == 0


def _ended_chunk(n: int, failed: int, cancelled: int) -> cf.Future[None]:
    """A done future standing for a map chunk of ``n`` elements, as a MapChunk does."""
    chunk = Chunk(
        prefix="f" * 28,
        fn=abs,
        args=[(i,) for i in range(n)],
        name="abs",
        fn_name="abs",
        opts=TaskOptions(),
        created_at=0.0,
    )
    for i in range(failed):
        chunk.outcome[i] = TaskResult(task_id=chunk.item_id(i), name="abs", status="failed")
    for i in range(failed, failed + cancelled):
        chunk.outcome[i] = TaskResult(task_id=chunk.item_id(i), name="abs", status="cancelled")
    stored = StoredValue(pickle.dumps(([0] * n, {})), ())
    chunk.ran(stored, array("d", range(n + 1)), array("d", [0.0] * n),
              worker=0, pid=1, peak_rss=0, rss_delta=0, queued_since=0.0)  # fmt: skip
    chunk.settle(float(n))

    class Done(cf.Future[None]):
        weight = n

        def records(self) -> list[TaskResult]:
            return chunk.records()

    fut = Done()
    fut.chunk = chunk  # type: ignore[attr-defined]
    fut.set_result(None)
    return fut


@pytest.mark.parametrize("use_tqdm", [True, False])
def test_a_bar_counts_a_chunk_without_building_its_records(use_tqdm: bool) -> None:
    out = io.StringIO()
    tracker = progress_tracker(True, use_tqdm=use_tqdm, file=out)
    assert tracker is not None
    fut = _ended_chunk(500, failed=2, cancelled=1)

    def refuse(*_: Any) -> Any:
        raise AssertionError("a bar must not build a chunk's records")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Chunk, "record", refuse)
        patch.setattr(Chunk, "records", refuse)
        tracker.track_all([fut], last=True)
    snap = tracker.snapshot()
    assert (snap.done, snap.total, snap.succeeded, snap.failed, snap.cancelled) == (
        500, 500, 497, 2, 1,
    )  # fmt: skip
    tracker.close()
    assert "500" in out.getvalue()


def test_a_callback_gets_an_event_per_element_of_a_chunk() -> None:
    events = Events()
    tracker = progress_tracker(events)
    assert tracker is not None
    tracker.track_all([_ended_chunk(20, failed=1, cancelled=0)], last=True)
    tracker.close()
    per_task = [e for e in events.events if not e.final]
    assert len(per_task) == 20 and per_task[-1].done == 20 and per_task[-1].failed == 1
    assert {e.result.status for e in per_task if e.result} == {"succeeded", "failed"}
