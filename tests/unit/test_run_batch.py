"""The batch of the next ``run()`` (no processes): every submission once, in order; a
batch nobody summarises is pruned of what finished more than ``result_ttl`` ago."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

from osiiso_mp._batch import PRUNE_AT, RunBatch


class _Sup:
    def __init__(self) -> None:
        self.let_go: list[Any] = []

    def batch_let_go(self, holders: list[Any], wait: bool = False) -> None:
        self.let_go.extend(holders)


class _Entry:
    """A task as the batch sees it: its weight, holder, and when it finished."""

    weight = 1

    def __init__(self, i: int, finished_at: float | None) -> None:
        self.i = i
        self.finished_at = finished_at
        self.holder = self
        self.opts = SimpleNamespace(detached=False)

    def _in_batch(self, task: Any) -> Any:  # (as a TaskFuture: the batch keeps its task)
        return task


def _batch_of(ttl: float) -> tuple[RunBatch, _Sup]:
    sup = _Sup()
    config = SimpleNamespace(result_ttl=ttl, procs=1)
    return RunBatch(cast(Any, sup), cast(Any, config)), sup


def test_nothing_old_enough_nothing_dropped_and_the_threshold_doubles() -> None:
    batch, sup = _batch_of(300.0)
    now = time.perf_counter()
    entries = [_Entry(i, now if i % 2 else None) for i in range(PRUNE_AT)]
    for e in entries:
        batch.add(cast(Any, e), cast(Any, e))
    assert list(batch.entries) == cast(list[Any], entries) and sup.let_go == []
    assert batch._weight == PRUNE_AT and batch._prune_at == 2 * PRUNE_AT
    taken, _ = batch.take()
    assert list(taken) == cast(list[Any], entries)
    assert not batch.entries and batch._weight == 0


def test_what_finished_before_the_ttl_is_dropped_the_rest_kept_in_order() -> None:
    batch, sup = _batch_of(1.0)
    old, recent = time.perf_counter() - 10.0, time.perf_counter()
    entries = [_Entry(i, (old, recent, None)[i % 3]) for i in range(PRUNE_AT)]
    for e in entries:
        batch.add(cast(Any, e), cast(Any, e))
    kept = [e for e in entries if e.i % 3]
    assert list(batch.entries) == cast(list[Any], kept)
    assert sup.let_go == [e for e in entries if e.i % 3 == 0]
    assert batch._weight == len(kept)
    assert batch._prune_at == max(PRUNE_AT, 2 * len(kept))
