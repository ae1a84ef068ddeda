"""Soak: many tasks with injected faults, from several submitting threads.

Sized by ``OSIISO_SOAK_TASKS`` (``make test`` runs 3,000; ``make soak`` runs 100,000).
Faults, chosen with a fixed seed: 1% raise, 0.1% ``os._exit``, 0.1% run past a timeout.
Afterwards: exactly one record per task, the counts match the injected faults, the
parent's memory grew little after warm-up, and descriptors and threads are back to their
baseline once the executor is shut down.
"""

from __future__ import annotations

import os
import random
import threading
import time

import psutil
import pytest

from osiiso_mp import Executor, TaskFuture, TaskTimeoutError, WorkerCrashedError

TASKS = int(os.environ.get("OSIISO_SOAK_TASKS", "3000"))
THREADS = 4


def soak_task(i: int, kind: str) -> int:
    """A task that misbehaves as told."""
    if kind == "raise":
        raise ValueError(f"injected failure {i}")
    if kind == "exit":
        os._exit(3)
    if kind == "hang":
        time.sleep(30)
    return i


def plan(n: int, seed: int = 20261122) -> list[str]:
    """The kind of each task, from a fixed seed."""
    rng = random.Random(seed)
    kinds = []
    for _ in range(n):
        r = rng.random()
        kinds.append(
            "raise" if r < 0.01 else "exit" if r < 0.011 else "hang" if r < 0.012 else "ok"
        )
    return kinds


def open_fds() -> int:
    """Descriptors open in this process."""
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


@pytest.mark.soak
@pytest.mark.timeout(max(120, TASKS // 200))
def test_soak_with_injected_faults() -> None:
    kinds = plan(TASKS)
    with Executor(procs=1) as first:  # starts the per-process fork server, which stays
        first.submit(abs, 1).result(timeout=30)
    fds_before, threads_before = open_fds(), threading.active_count()
    me = psutil.Process()
    futures: list[TaskFuture[int] | None] = [None] * TASKS
    records = {}
    ex = Executor(procs=2, result_ttl=2)
    try:
        warm = [ex.submit(soak_task, -1, "ok") for _ in range(200)]
        for f in warm:
            f.result(timeout=30)
        ex.run()
        rss_warm = me.memory_info().rss

        def submit_share(k: int) -> None:
            for i in range(k, TASKS, THREADS):
                view = ex.options(timeout=0.2) if kinds[i] == "hang" else ex
                futures[i] = view.submit(soak_task, i, kinds[i])

        submitters = [threading.Thread(target=submit_share, args=(k,)) for k in range(THREADS)]
        for t in submitters:
            t.start()
        while any(t.is_alive() for t in submitters):  # summarise in batches meanwhile
            time.sleep(0.5)
            for r in ex.run().results:
                assert r.task_id not in records, "a task was summarised twice"
                records[r.task_id] = r
        for t in submitters:
            t.join()
        for r in ex.run().results:
            assert r.task_id not in records, "a task was summarised twice"
            records[r.task_id] = r
        rss_end = me.memory_info().rss
    finally:
        ex.shutdown(kill=True)

    assert all(f is not None for f in futures)
    by_id = {f.task_id: (i, f) for i, f in enumerate(futures) if f is not None}
    assert set(records) == set(by_id), "every task has exactly one record"
    for task_id, (i, fut) in by_id.items():
        record = records[task_id]
        assert fut.task_result() is record
        assert len(record.attempt_log) == record.attempts
        kind = kinds[i]
        if kind == "ok":
            assert record.status == "succeeded" and record.value == i
        elif kind == "raise":
            assert record.status == "failed" and isinstance(record.exception, ValueError)
        elif kind == "exit":
            assert isinstance(record.exception, WorkerCrashedError), record
            assert record.attempt_log[-1].exit_code == 3
        else:
            assert isinstance(record.exception, TaskTimeoutError), record
    assert (rss_end - rss_warm) < 50 * 2**20, f"parent grew {(rss_end - rss_warm) >> 20} MiB"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        open_fds() > fds_before or threading.active_count() > threads_before
    ):
        time.sleep(0.05)
    assert open_fds() <= fds_before, "descriptors leaked"
    assert threading.active_count() <= threads_before, "threads leaked"
