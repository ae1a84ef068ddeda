"""Integration tests of progress reporting against real workers (PRODUCT.md section 8).

The first tests attach a :class:`ProgressTracker` by hand to the :class:`TaskFuture` handles
of ``Executor.submit``, the way ``run(progress=...)``, ``map`` and ``pmap`` attach it:
``track_all`` on the batch, ``close`` once the waiting is over. The last ones call
``run``/``map``/``pmap`` with ``progress=``. Tasks are module-level functions, imported by
reference in the workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import io
import re
import threading
import time
from typing import Any

import pytest

from osiiso_mp import AsyncExecutor, ExecutionError, Executor, TaskFuture, pmap
from osiiso_mp._progress import ProgressEvent, progress_tracker


def square(x: int) -> int:
    return x * x


def fail_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def sleep_return(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


class Events:
    """A progress callable that keeps what it receives, and on which thread."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.threads: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self.lock:
            self.events.append(event)
            self.threads.append(threading.get_ident())


def test_callback_counts_a_real_batch_like_run_does(transport: str) -> None:
    events = Events()
    with Executor(procs=2, transport=transport) as ex:
        tracker = progress_tracker(events, desc="osiiso_mp run")
        assert tracker is not None
        batch = [ex.submit(fail_on_odd, i) for i in range(8)]
        tracker.track_all(batch, last=True)
        cf.wait(batch)
        tracker.close()
        summary = ex.run()
        sup_thread = ex._core.sup.thread_id
    per_task = [e for e in events.events if not e.final]
    assert [e.done for e in per_task] == list(range(1, 9))
    assert all(e.total == 8 for e in events.events)
    final = events.events[-1]
    assert final.final and final.result is None
    assert (final.done, final.succeeded, final.failed, final.cancelled) == (
        summary.total_submitted,
        summary.succeeded,
        summary.failed,
        summary.cancelled,
    )
    assert (final.succeeded, final.failed) == (4, 4)
    # each event carries the task's own record
    records = {r.task_id: r for r in (fut.task_result() for fut in batch) if r is not None}
    for event in per_task:
        assert event.result is not None
        assert records[event.result.task_id] is event.result
    failed = [e.result for e in per_task if e.result is not None and not e.result.ok]
    assert all(isinstance(r.exception, ValueError) for r in failed)
    # tasks that finished after tracking began were counted on the supervisor thread
    me = threading.get_ident()
    assert set(events.threads) <= {me, sup_thread}
    assert events.threads[-1] == me  # the final event comes from close()


def test_cancelled_tasks_are_counted_as_cancelled() -> None:
    events = Events()
    with Executor(procs=1) as ex:
        tracker = progress_tracker(events)
        assert tracker is not None
        slow = ex.submit(sleep_return, 30)
        queued = ex.submit(square, 3)
        quick: list[TaskFuture[Any]] = [slow, queued]
        tracker.track_all(quick, last=True)
        assert queued.cancel()
        assert slow.cancel()
        cf.wait(quick)
        tracker.close()
    final = events.events[-1]
    assert (final.done, final.cancelled, final.succeeded, final.failed) == (2, 2, 0, 0)
    assert {e.result.status for e in events.events if e.result is not None} == {"cancelled"}


def test_text_bar_over_a_real_batch() -> None:
    out = io.StringIO()
    with Executor(procs=2) as ex:
        tracker = progress_tracker(True, desc="osiiso_mp run", use_tqdm=False, file=out)
        assert tracker is not None
        batch = [ex.submit(fail_on_odd, i) for i in range(6)]
        tracker.track_all(batch, last=True)
        cf.wait(batch)
        tracker.close()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    last = text.split("\r")[-1].rstrip()
    assert re.fullmatch(
        r"osiiso_mp run: \|#{20}\| 6/6 done \(3 ok, 3 failed, 0 cancelled\) \d+\.\ds", last
    ), last


def test_tqdm_bar_over_a_real_batch() -> None:
    out = io.StringIO()
    with Executor(procs=2) as ex:
        tracker = progress_tracker(True, desc="osiiso_mp run", file=out)
        assert tracker is not None and tracker.kind == "tqdm"
        batch = [ex.submit(square, i) for i in range(10)]
        tracker.track_all(batch, last=True)
        cf.wait(batch)
        tracker.close()
    assert re.search(r"osiiso_mp run: 100%\|#+\| 10/10 \[.*task/s\]\n$", out.getvalue())


def test_streaming_futures_with_an_unknown_total_like_map_with_buffersize() -> None:
    events = Events()
    with Executor(procs=2) as ex:
        tracker = progress_tracker(events, desc="osiiso_mp map")
        assert tracker is not None
        window = [ex.submit(square, i) for i in range(3)]
        tracker.track_all(window)
        values = []
        for i in range(3, 12):  # keep three outstanding, as map(buffersize=3) does
            fut = ex.submit(square, i)
            tracker.track(fut)
            window.append(fut)
            values.append(window.pop(0).result())
        values.extend(f.result() for f in window)
        cf.wait(window)
        tracker.close()
    assert values == [i * i for i in range(12)]
    assert all(e.total is None for e in events.events)
    final = events.events[-1]
    assert final.final and final.done == final.succeeded == 12


# --------------------------------------------------------------------------- the wiring


def final_of(events: Events) -> ProgressEvent:
    finals = [e for e in events.events if e.final]
    assert len(finals) == 1 and events.events[-1] is finals[0]
    return finals[0]


def test_run_progress_callable_matches_the_summary(transport: str) -> None:
    events = Events()
    with Executor(procs=2, transport=transport) as ex:
        done_before = ex.submit(square, 2)
        done_before.result()
        for i in range(7):
            ex.submit(fail_on_odd, i)
        run = ex.run
        summary = run(progress=events)
    final = final_of(events)
    assert (final.total, final.done, final.succeeded, final.failed) == (8, 8, 5, 3)
    assert (final.succeeded, final.failed) == (summary.succeeded, summary.failed)
    assert [e.done for e in events.events[:-1]] == list(range(1, 9))


def test_run_progress_true_draws_a_tqdm_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with Executor(procs=2) as ex:
        for i in range(5):
            ex.submit(square, i)
        run = ex.run
        assert run(progress=True).succeeded == 5
    err = capsys.readouterr().err
    assert re.search(r"osiiso_mp run: 100%\|[^|]+\| 5/5 ", err), err


def test_run_progress_true_without_tqdm_draws_the_text_bar(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("osiiso_mp._progress._bars._tqdm_class", lambda: None)
    with Executor(procs=2) as ex:
        for i in range(4):
            ex.submit(fail_on_odd, i)
        run = ex.run
        run(progress=True)
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1
    assert "osiiso_mp run: |####################| 4/4 done (2 ok, 2 failed, 0 cancelled)" in err


def test_run_with_a_bad_progress_raises_and_keeps_the_batch() -> None:
    with Executor(procs=1) as ex:
        ex.submit(square, 3)
        run = ex.run
        with pytest.raises(TypeError, match="progress"):
            run(progress="yes")  # type: ignore[arg-type]  # deliberate misuse
        assert ex.run().values == (9,)


def test_run_timeout_counts_the_cancelled_tasks() -> None:
    events = Events()
    with Executor(procs=1) as ex:
        ex.submit(square, 1).result()
        ex.submit(sleep_return, 30)
        ex.submit(square, 2)
        run = ex.run
        summary = run(timeout=0.5, progress=events)
    assert summary.timed_out
    final = final_of(events)
    assert (final.done, final.succeeded, final.cancelled) == (3, 1, 2)


def test_map_progress_counts_every_task_and_knows_the_total(transport: str) -> None:
    events = Events()
    with Executor(procs=2, transport=transport) as ex:
        values = list(ex.map(square, (i for i in range(6)), progress=events))
    assert values == [i * i for i in range(6)]
    assert {e.total for e in events.events} == {6}  # all submitted up front: len known
    final = final_of(events)
    assert final.done == final.succeeded == 6


def test_map_with_buffersize_learns_the_total_when_the_input_runs_out() -> None:
    events = Events()
    with Executor(procs=2) as ex:
        values = list(ex.map(square, (i for i in range(10)), buffersize=2, progress=events))
    assert values == [i * i for i in range(10)]
    assert events.events[0].total is None
    final = final_of(events)
    assert (final.total, final.done, final.succeeded) == (10, 10, 10)


def test_map_closed_early_reports_the_cancellations() -> None:
    events = Events()
    with Executor(procs=1) as ex:
        it = ex.map(sleep_return, [0.0, 30.0, 30.0], progress=events)
        assert next(it) is None
        it.close()
    final = final_of(events)
    assert (final.total, final.done, final.succeeded, final.cancelled) == (3, 3, 1, 2)


def test_pmap_progress() -> None:
    events = Events()
    assert pmap(square, range(5), procs=2, progress=events) == [0, 1, 4, 9, 16]
    final = final_of(events)
    assert (final.total, final.done, final.succeeded) == (5, 5, 5)


def test_pmap_progress_closes_before_raising_a_failure() -> None:
    events = Events()
    with pytest.raises(ExecutionError):
        pmap(fail_on_odd, range(4), procs=2, progress=events)
    final = final_of(events)
    assert (final.done, final.succeeded, final.failed) == (4, 2, 2)


def test_pmap_with_a_bad_progress_raises_before_starting_workers() -> None:
    with pytest.raises(TypeError, match="progress"):
        pmap(square, range(3), progress=42)  # type: ignore[call-overload]  # deliberate misuse


def test_async_map_progress_as_the_sync_one(transport: str) -> None:
    # the same map loop under both facades: the same progress events
    events = Events()

    async def main() -> list[int]:
        async with AsyncExecutor(procs=2, transport=transport) as aex:
            return [v async for v in aex.map(square, range(6), buffersize=2, progress=events)]

    assert asyncio.run(main()) == [i * i for i in range(6)]
    assert events.events[0].total == 6  # a sized input: the total is known at once
    final = final_of(events)
    assert (final.total, final.done, final.succeeded) == (6, 6, 6)
