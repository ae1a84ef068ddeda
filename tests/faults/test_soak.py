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

from osiiso_mp import Executor, TaskResult, TaskTimeoutError, WorkerCrashedError

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


def check(record: TaskResult, i: int, kind: str) -> None:
    """The record matches the fault injected into task ``i``."""
    assert len(record.attempt_log) == record.attempts
    if kind == "ok":
        assert record.status == "succeeded" and record.value == i
    elif kind == "raise":
        assert record.status == "failed" and isinstance(record.exception, ValueError)
    elif kind == "exit":
        assert isinstance(record.exception, WorkerCrashedError), record
        assert record.attempt_log[-1].exit_code == 3
    else:
        assert isinstance(record.exception, TaskTimeoutError), record


@pytest.mark.soak
@pytest.mark.timeout(max(120, TASKS // 200))
def test_soak_with_injected_faults() -> None:
    kinds = plan(TASKS)
    with Executor(procs=1) as first:  # starts the per-process fork server, which stays
        first.submit(abs, 1).result(timeout=30)
    fds_before, threads_before = open_fds(), threading.active_count()
    me = psutil.Process()
    # Only ids are kept here: each record is checked when its batch is summarised, then
    # dropped, so the memory measured is the executor's, not this test's.
    index_of: dict[str, int] = {}
    seen: set[str] = set()
    # max_pending bounds the backlog: the soak looks for leaks in a steady state, not for
    # the high-water mark of 100,000 queued tasks (which Python keeps as RSS once freed)
    ex = Executor(procs=2, result_ttl=1, max_pending=2000)

    def consume(records: tuple[TaskResult, ...]) -> None:
        for r in records:
            assert r.task_id not in seen, "a task was summarised twice"
            seen.add(r.task_id)
            i = index_of[r.task_id]
            check(r, i, kinds[i])

    try:
        for f in [ex.submit(soak_task, -1, "ok") for _ in range(200)]:
            f.result(timeout=30)
        ex.run()
        rss_warm = me.memory_info().rss

        def submit_share(k: int) -> None:
            for i in range(k, TASKS, THREADS):
                view = ex.options(timeout=0.2) if kinds[i] == "hang" else ex
                index_of[view.submit(soak_task, i, kinds[i]).task_id] = i

        submitters = [threading.Thread(target=submit_share, args=(k,)) for k in range(THREADS)]
        for t in submitters:
            t.start()
        while any(t.is_alive() for t in submitters):  # summarise in batches meanwhile
            time.sleep(0.5)
            consume(ex.run().results)
        for t in submitters:
            t.join()
        consume(ex.run().results)
        rss_end = me.memory_info().rss
    finally:
        ex.shutdown(kill=True)

    assert len(index_of) == TASKS
    assert seen == set(index_of), "every task has exactly one record"
    # ids kept by this test: about 120 bytes each
    grown = rss_end - rss_warm - 120 * TASKS
    assert grown < 50 * 2**20, f"the executor grew {grown >> 20} MiB after warm-up"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        open_fds() > fds_before or threading.active_count() > threads_before
    ):
        time.sleep(0.05)
    assert open_fds() <= fds_before, "descriptors leaked"
    assert threading.active_count() <= threads_before, "threads leaked"


@pytest.mark.soak
@pytest.mark.timeout(max(120, TASKS // 200))
def test_soak_map_chunks_with_injected_faults() -> None:
    # map sends its elements in chunks: five times as many elements as the submit soak,
    # with 1% raising and 0.1% ending their worker mid-chunk (no hangs: a chunk has no
    # per-element timeout); every element must still get its own matching record
    n = TASKS * 5
    kinds = ["ok" if k == "hang" else k for k in plan(n, seed=20261123)]
    with Executor(procs=2, result_ttl=0) as ex:
        for f in [ex.submit(soak_task, -1, "ok") for _ in range(200)]:
            f.result(timeout=30)
        ex.run()
        ex.map(soak_task, range(n), kinds)  # submitted at once; the values are not read
        summary = ex.run()
    assert summary.total_submitted == n
    assert len({r.task_id for r in summary.results}) == n, "one record per element"
    for i, (record, kind) in enumerate(zip(summary.results, kinds, strict=True)):
        check(record, i, kind)
    assert summary.failed == kinds.count("raise") + kinds.count("exit")
    assert summary.respawns >= kinds.count("exit")
