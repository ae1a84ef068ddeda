"""``python -m osiiso_mp bench``: osiiso_mp beside ``ProcessPoolExecutor`` in one run.

Scenarios (each repeated, medians reported, ratios against the peer):

- no-op throughput: ``submit`` N no-op tasks, then wait for all of them (tasks/s);
- round trip: one ``submit(...).result()`` at a time on a warm pool (p50 and p90, µs);
- start-up: create the executor, run one task, shut down (ms).

osiiso_mp runs with its telemetry on (a record and an attempt log per task), as always.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import statistics
import time
from collections.abc import Callable

__all__ = ["noop", "run_bench"]

Factory = Callable[[int], cf.Executor]


def noop() -> None:
    """The task: nothing at all."""


def _osiiso(procs: int) -> cf.Executor:
    from ._executor import Executor

    return Executor(procs=procs)


def _ppe(procs: int) -> cf.Executor:
    return cf.ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("forkserver"))


PEERS: dict[str, Factory] = {"osiiso_mp": _osiiso, "ProcessPoolExecutor": _ppe}


def throughput(make: Factory, procs: int, tasks: int) -> float:
    """No-op tasks per second, submit-all-then-wait, on a warm pool."""
    with make(procs) as ex:
        for f in [ex.submit(noop) for _ in range(procs * 4)]:
            f.result()
        start = time.perf_counter()
        futures = [ex.submit(noop) for _ in range(tasks)]
        for f in futures:
            f.result()
        return tasks / (time.perf_counter() - start)


def latency(make: Factory, procs: int, rounds: int = 400) -> tuple[float, float]:
    """Round-trip p50 and p90 in microseconds, one task at a time, on a warm pool."""
    with make(procs) as ex:
        for _ in range(20):
            ex.submit(noop).result()
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            ex.submit(noop).result()
            samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.9)]


def startup(make: Factory, procs: int) -> float:
    """Milliseconds to create the executor, run one task and shut down."""
    start = time.perf_counter()
    with make(procs) as ex:
        ex.submit(noop).result()
    return (time.perf_counter() - start) * 1e3


def run_bench(procs: int = 2, tasks: int = 5000, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Measure every scenario for every peer and print a table with ratios."""
    results: dict[str, dict[str, float]] = {}
    for name, make in PEERS.items():
        tp = [throughput(make, procs, tasks) for _ in range(repeats)]
        lat = [latency(make, procs) for _ in range(repeats)]
        up = [startup(make, procs) for _ in range(repeats)]
        results[name] = {
            "noop_tasks_per_s": statistics.median(tp),
            "noop_spread": (max(tp) - min(tp)) / statistics.median(tp),
            "rtt_p50_us": statistics.median(x[0] for x in lat),
            "rtt_p90_us": statistics.median(x[1] for x in lat),
            "startup_ms": statistics.median(up),
        }
    ours, peer = results["osiiso_mp"], results["ProcessPoolExecutor"]
    print(f"procs={procs} tasks={tasks} repeats={repeats} (medians; ratio = osiiso_mp vs peer)")
    print(f"{'scenario':<28}{'osiiso_mp':>14}{'ProcessPool':>14}{'ratio':>9}")
    rows = [
        ("no-op submit, tasks/s", "noop_tasks_per_s", True),
        ("round trip p50, us", "rtt_p50_us", False),
        ("round trip p90, us", "rtt_p90_us", False),
        ("start+1 task+stop, ms", "startup_ms", False),
    ]
    for label, key, higher_better in rows:
        ratio = ours[key] / peer[key] if higher_better else peer[key] / ours[key]
        print(f"{label:<28}{ours[key]:>14,.0f}{peer[key]:>14,.0f}{ratio:>8.2f}x")
    print("ratio > 1 means osiiso_mp is better (faster or more tasks/s)")
    return results
