"""CPU-bound scaling: N tasks of a fixed CPU cost, osiiso_mp beside ProcessPoolExecutor.

Parallel efficiency = (sum of the tasks' CPU seconds) / (wall seconds x procs); 1.0 is
perfect. Each task burns ``--ms`` milliseconds of its own CPU time (thread_time, so the
figure does not depend on how busy the machine is).

    python benchmarks/bench_scaling.py --procs 2 --tasks 64 --ms 20 [--repeats 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import statistics
import time
from collections.abc import Callable

from osiiso_mp import Executor


def burn(ms: float) -> float:
    """Spin until this thread has used ``ms`` milliseconds of CPU; return the CPU used."""
    start = time.thread_time()
    end = start + ms / 1000
    x = 0
    while time.thread_time() < end:
        for i in range(1000):
            x += i
    return time.thread_time() - start


def _warm(ex: cf.Executor, procs: int) -> None:
    for f in [ex.submit(burn, 1) for _ in range(procs * 2)]:
        f.result()


def efficiency(make: Callable[[], cf.Executor], procs: int, tasks: int, ms: float) -> float:
    """One measurement on a warm pool."""
    with make() as ex:
        _warm(ex, procs)
        start = time.perf_counter()
        cpu = sum(f.result() for f in [ex.submit(burn, ms) for _ in range(tasks)])
        wall = time.perf_counter() - start
    return cpu / (wall * procs)


def main() -> None:
    """Print efficiency for both pools and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    ctx = multiprocessing.get_context("forkserver")
    pools: dict[str, Callable[[], cf.Executor]] = {
        "osiiso_mp": lambda: Executor(procs=a.procs),
        "ProcessPoolExecutor": lambda: cf.ProcessPoolExecutor(a.procs, mp_context=ctx),
    }
    got = {}
    for name, make in pools.items():
        runs = [efficiency(make, a.procs, a.tasks, a.ms) for _ in range(a.repeats)]
        got[name] = statistics.median(runs)
        print(
            f"{name:<22} efficiency {got[name]:.3f}  (runs: {', '.join(f'{r:.3f}' for r in runs)})"
        )
    print(
        f"procs={a.procs} tasks={a.tasks} x {a.ms:g} ms; "
        f"ratio osiiso_mp/ProcessPoolExecutor = {got['osiiso_mp'] / got['ProcessPoolExecutor']:.2f}"
    )


if __name__ == "__main__":
    main()
