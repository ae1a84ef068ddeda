"""The pure scheduling policy: priority lanes, retry delays, the pipelining rule, a map's
read-ahead."""

from __future__ import annotations

import random
from typing import Any

import pytest

from osiiso_mp._runtime._policy import (
    TINY,
    DurationEstimates,
    ReadyQueue,
    TokenBucket,
    ahead_budget,
    may_prefetch,
    must_announce,
    retry_delay,
    send_depth,
)
from osiiso_mp._runtime._read_ahead import ReadAhead


def test_ready_queue_orders_by_priority_then_fifo() -> None:
    q: ReadyQueue[str] = ReadyQueue()
    entries = [(5, "a"), (1, "b"), (3, "c"), (1, "d"), (3, "e"), (0, "f")]
    for seq, (prio, name) in enumerate(entries):
        q.push(prio, seq, name)
    assert len(q) == 6
    out = [q.pop()[2] for _ in range(len(q))]
    assert out == ["f", "b", "d", "c", "e", "a"]
    assert len(q) == 0 and q.peek() is None


def test_ready_queue_lazy_removal() -> None:
    q: ReadyQueue[int] = ReadyQueue()
    for seq in range(10):
        q.push(seq % 3, seq, seq)
    assert q.remove(0) and q.remove(4)
    assert not q.remove(0), "removing twice reports False"
    assert 0 not in q and 1 in q
    popped = [q.pop()[2] for _ in range(len(q))]
    assert popped == [3, 6, 9, 1, 7, 2, 5, 8]
    with pytest.raises(IndexError):
        q.pop()


def test_ready_queue_drop_peeked_takes_what_peek_returned_past_removed_entries() -> None:
    q: ReadyQueue[int] = ReadyQueue()
    for seq in range(6):
        q.push(0, seq, seq * 10)
    q.remove(0)
    q.remove(1)  # the two best are gone: peek skips them
    taken = []
    while (entry := q.peek()) is not None:
        taken.append(entry[2])
        q.drop_peeked()
        assert entry[1] not in q
    assert taken == [20, 30, 40, 50]
    assert len(q) == 0


def test_ready_queue_refuses_duplicate_seq_and_matches_sorted_order() -> None:
    q: ReadyQueue[int] = ReadyQueue()
    q.push(1, 7, 7)
    with pytest.raises(ValueError, match="already queued"):
        q.push(2, 7, 7)
    rng = random.Random(3)
    q2: ReadyQueue[tuple[int, int]] = ReadyQueue()
    keys = [(rng.randint(0, 4), seq) for seq in range(200)]
    for prio, seq in keys:
        q2.push(prio, seq, (prio, seq))
    removed = set(rng.sample(range(200), 50))
    for seq in removed:
        q2.remove(seq)
    expected = sorted(k for k in keys if k[1] not in removed)
    assert [q2.pop()[2] for _ in range(len(q2))] == expected
    assert sorted(q2.items()) == []


def test_retry_delay_backoff_and_budget() -> None:
    def delay(n: int) -> float | None:
        return retry_delay(attempts_made=n, retries=3, base_delay=0.5, backoff=2.0)

    assert [delay(1), delay(2), delay(3)] == [0.5, 1.0, 2.0]
    assert delay(4) is None, "3 retries = 4 attempts at most"
    assert retry_delay(attempts_made=1, retries=0, base_delay=1.0, backoff=1.0) is None


def test_retry_delay_requested_by_task() -> None:
    def delay(n: int) -> float | None:
        return retry_delay(attempts_made=n, retries=1, base_delay=5.0, backoff=2.0, requested=0.25)

    assert delay(1) == 0.25
    assert delay(2) is None, "budget still applies"


def test_may_prefetch_fills_to_depth_then_only_for_better_priority() -> None:
    assert may_prefetch((3, 10), in_flight=0, depth=2, worst_waiting=None)
    assert may_prefetch((3, 10), in_flight=1, depth=2, worst_waiting=None)
    # full: one running, one waiting at priority 3
    assert not may_prefetch((3, 10), in_flight=2, depth=2, worst_waiting=(3, 5))
    assert not may_prefetch((5, 10), in_flight=2, depth=2, worst_waiting=(3, 5))
    assert may_prefetch((1, 10), in_flight=2, depth=2, worst_waiting=(3, 5))
    # full, nothing waiting (both running): no overtaking possible
    assert not may_prefetch((0, 10), in_flight=2, depth=2, worst_waiting=None)


def test_may_prefetch_keeps_start_order_on_one_worker() -> None:
    """Simulate one worker: whatever the arrival order, tasks start in priority order."""
    rng = random.Random(11)
    for _ in range(50):
        arrivals = [(rng.randint(0, 5), seq) for seq in range(30)]
        supervisor: list[tuple[int, int]] = []
        worker: list[tuple[int, int]] = []
        started: list[tuple[int, int]] = []
        running = True  # a blocker runs while everything arrives
        for key in arrivals:
            supervisor.append(key)
            supervisor.sort()
            while supervisor and may_prefetch(
                supervisor[0], len(worker) + running, 2, max(worker, default=None)
            ):
                worker.append(supervisor.pop(0))
        running = False
        while worker or supervisor:
            worker.sort()
            started.append(worker.pop(0))
            while supervisor and may_prefetch(
                supervisor[0], len(worker) + 1, 2, max(worker, default=None)
            ):
                worker.append(supervisor.pop(0))
        assert started == sorted(arrivals)


def test_token_bucket_bursts_then_paces() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take(100.0)
    assert wait == pytest.approx(0.1)
    assert bucket.take(100.05) == pytest.approx(0.05), "nothing was taken by the refusal"
    assert bucket.take(100.1) == 0.0
    # a long idle period refills only up to the burst
    assert [bucket.take(200.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]


def test_token_bucket_long_run_rate() -> None:
    bucket = TokenBucket(rate=50.0, burst=1, now=0.0)
    now, started = 0.0, 0
    while now < 10.0:
        wait = bucket.take(now)
        if wait == 0.0:
            started += 1
        else:
            now += wait
    assert 499 <= started <= 501
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1, now=0.0)


def test_pipeline_depth_scales_with_known_short_tasks() -> None:
    est = DurationEstimates(short=0.005)
    assert est.pipeline_depth(["new"]) == 1, "unknown callables are never queued behind"
    est.observe("tiny", 0.00005)
    est.observe("small", 0.001)
    est.observe("long", 0.5)
    assert est.pipeline_depth(["tiny"]) == 40  # 2 ms of work / 50 µs each
    assert est.pipeline_depth(["tiny", "small"]) == 2  # the longest one decides
    assert est.pipeline_depth(["tiny", "long"]) == 1
    assert est.pipeline_depth(["tiny", "new"]) == 1
    est.observe("instant", 0.0)
    assert est.pipeline_depth(["instant"]) == 64  # capped
    assert est.pipeline_depth([]) == 64


def test_a_worker_holds_four_gil_switch_intervals_of_short_work() -> None:
    assert ahead_budget(0.005) == 0.02  # the default switch interval: 20 ms of work
    assert ahead_budget(0.0001) == 0.002  # never under 2 ms
    kw: dict[str, Any] = dict(
        chunk=False, is_async=False, concurrency=1, holds_chunks_only=False, holds_short_only=False
    )
    # 2 ms tasks: ten held (one runs) where the GIL switches every 5 ms, two at 1 ms
    assert send_depth(longest=0.002, budget=ahead_budget(0.005), **kw) == 10
    assert send_depth(longest=0.002, budget=ahead_budget(0.001), **kw) == 2
    assert send_depth(longest=None, budget=ahead_budget(0.005), **kw) == 1  # unknown: one
    assert send_depth(longest=1e-7, budget=ahead_budget(0.005), **kw) == 64  # capped


def test_by_default_a_worker_is_sent_one_more_behind_tasks_under_50_ms() -> None:
    est = DurationEstimates()
    est.observe("medium", 0.02)
    est.observe("slow", 0.08)
    assert est.pipeline_depth(["medium"]) == 2  # one waits while one runs: no idle turn
    assert est.pipeline_depth(["slow"]) == 1  # never queued behind a slow one
    assert est.pipeline_depth(["medium", "slow"]) == 1


def test_read_ahead_holds_back_past_its_limit_and_releases_as_the_reader_reads() -> None:
    flow: ReadAhead[str] = ReadAhead(limit=100)
    for seq in (10, 20, 30, 40):
        flow.track(seq)
    assert len(flow) == 4
    assert not flow.holds_back(10)  # nothing waits to be read yet
    flow.delivered(60)
    flow.untrack(10)
    assert not flow.holds_back(20)  # 60 of 100
    flow.delivered(60)
    flow.untrack(20)
    assert flow.holding and flow.holds_back(30) and flow.holds_back(40)
    flow.park(30, "c")
    flow.park(40, "d")
    assert flow.release() == []  # still 120 unread
    flow.read(30)
    assert flow.release() == ["c", "d"]  # 90 of 100: all of them, in seq order
    assert not flow.parked


def test_read_ahead_never_holds_back_what_the_reader_waits_for() -> None:
    flow: ReadAhead[str] = ReadAhead(limit=0)
    for seq in (-5, 10, 20, 30):  # -5: an element retried (split off its chunk)
        flow.track(seq)
    flow.delivered(1)
    assert all(flow.holds_back(seq) for seq in (-5, 10, 20, 30))
    for seq, item in ((-5, "retry"), (20, "b"), (30, "c")):
        flow.park(seq, item)
    flow.wait_for(20)  # the reader waits for the entry whose tasks end at seq 20
    assert not flow.holds_back(10) and not flow.holds_back(-5)
    assert flow.holds_back(30)
    assert flow.release() == ["retry", "b"]
    assert list(flow.parked) == [30]
    flow.wait_for(15)  # never moves back
    assert flow.waiting_for == 20


def test_read_ahead_opened_or_ended_holds_nothing() -> None:
    flow: ReadAhead[str] = ReadAhead(limit=0)
    flow.track(1)
    flow.track(2)
    flow.delivered(10)
    flow.park(1, "a")
    flow.park(2, "b")
    flow.untrack(1)  # ended (cancelled): no longer parked, nor live
    assert list(flow.parked) == [2] and len(flow) == 1
    flow.read(1000)
    assert flow.unread == 0  # never below zero
    flow.delivered(10)
    flow.open()
    assert not flow.holding and not flow.holds_back(2)
    assert flow.release() == ["b"]


def test_only_known_tiny_sync_tasks_run_unannounced() -> None:
    def announced(estimate: float | None, **flags: bool) -> bool:
        return must_announce(
            is_async=flags.get("is_async", False),
            timeout=5.0 if flags.get("timeout") else None,
            suspect=flags.get("suspect", False),
            chunk=flags.get("chunk", False),
            start_hook=flags.get("start_hook", False),
            estimate=estimate,
        )

    assert not announced(TINY / 2)
    assert announced(None)  # unknown: it may be long
    assert announced(TINY)
    for reason in ("is_async", "timeout", "suspect", "chunk", "start_hook"):
        assert announced(TINY / 2, **{reason: True}), reason


def test_send_depth_per_kind_of_task() -> None:
    def depth(**kw: object) -> int:
        base: dict[str, object] = {
            "chunk": False,
            "is_async": False,
            "concurrency": 100,
            "holds_chunks_only": False,
            "holds_short_only": False,
            "longest": None,
        }
        return send_depth(**{**base, **kw})  # type: ignore[arg-type]

    assert depth(chunk=True, holds_chunks_only=True) == 2  # one chunk ahead of the running one
    assert depth(chunk=True) == 1  # never behind a task of another kind
    assert depth(is_async=True) == 100  # the worker's concurrency
    assert depth(is_async=True, holds_short_only=True) == 101
    assert depth() == 1  # a sync task behind something long or unknown: none ahead
    assert depth(longest=0.0001) == 20  # about 2 ms of known-short work
    assert depth(longest=1e-9) == 64  # capped
    assert depth(longest=0.01) == 2  # at least one ahead once known
