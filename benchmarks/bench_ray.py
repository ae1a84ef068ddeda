"""osiiso_mp on Ray beside Ray's own pools, on one local Ray, in one run.

Three ways to run many small tasks on the same Ray actors' worth of CPUs:

- ``osiiso_mp``: ``Executor(procs=P, transport="ray")``: P worker actors, every task
  a frame on the executor's own TCP connection, a ``TaskResult`` per task;
- ``ActorPool``: ``ray.util.ActorPool`` over P actors, one actor call per task;
- ``ray Pool``: ``ray.util.multiprocessing.Pool(P)``, ``apply_async`` per task.

Two figures each: no-op ``submit`` throughput (N tasks submitted, then all waited for),
and the round trip of one task at a time (p50 over M tasks, after a warm-up). Ratios are
osiiso_mp's against each peer (> 1: osiiso_mp is better). A last row, for reference,
runs the same executor on local workers in the same run.

    python benchmarks/bench_ray.py [--procs 2] [--tasks 5000] [--trips 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def noop(x: int) -> int:
    return x


def _p50(call: Callable[[], Any], trips: int) -> float:
    for _ in range(min(50, trips)):
        call()
    times = []
    for _ in range(trips):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_osiiso(procs: int, tasks: int, trips: int, transport: str = "ray") -> tuple[float, float]:
    from osiiso_mp import Executor

    with Executor(procs=procs, transport=transport) as ex:
        ex.submit(noop, 0).result(timeout=120)
        start = time.perf_counter()
        futs = [ex.submit(noop, i) for i in range(tasks)]
        for fut in futs:
            fut.result()
        rate = tasks / (time.perf_counter() - start)
        trip = _p50(lambda: ex.submit(noop, 1).result(), trips)
    return rate, trip


def bench_actor_pool(procs: int, tasks: int, trips: int) -> tuple[float, float]:
    import ray
    from ray.util import ActorPool

    @ray.remote(num_cpus=1)
    class Runner:
        def run(self, x: int) -> int:
            return noop(x)

    actors = [Runner.remote() for _ in range(procs)]  # type: ignore[attr-defined]
    ray.get([a.run.remote(0) for a in actors])
    pool = ActorPool(actors)
    start = time.perf_counter()
    for i in range(tasks):
        pool.submit(lambda a, v: a.run.remote(v), i)
    while pool.has_next():
        pool.get_next_unordered()
    rate = tasks / (time.perf_counter() - start)
    trip = _p50(lambda: ray.get(actors[0].run.remote(1)), trips)
    for actor in actors:
        ray.kill(actor)
    return rate, trip


def bench_ray_pool(procs: int, tasks: int, trips: int) -> tuple[float, float]:
    from ray.util.multiprocessing import Pool

    pool = Pool(procs)
    try:
        pool.apply(noop, (0,))
        start = time.perf_counter()
        results = [pool.apply_async(noop, (i,)) for i in range(tasks)]
        for r in results:
            r.get()
        rate = tasks / (time.perf_counter() - start)
        trip = _p50(lambda: pool.apply(noop, (1,)), trips)
    finally:
        pool.terminate()
    return rate, trip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--trips", type=int, default=500)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=args.procs, include_dashboard=False, logging_level="ERROR")
    try:
        print(
            f"one local Ray (num_cpus={args.procs}), {args.procs} workers each; "
            f"{args.tasks} no-op tasks submitted then waited for; round trip p50 over "
            f"{args.trips} one-at-a-time tasks; Python {sys.version.split()[0]}, "
            f"Ray {ray.__version__}"
        )
        rows = {
            "osiiso_mp": bench_osiiso(args.procs, args.tasks, args.trips),
            "ActorPool": bench_actor_pool(args.procs, args.tasks, args.trips),
            "ray Pool": bench_ray_pool(args.procs, args.tasks, args.trips),
            # for reference, not a peer: the same executor's local workers, Ray still up
            "(local)": bench_osiiso(args.procs, args.tasks, args.trips, "local"),
        }
    finally:
        ray.shutdown()
    ours_rate, ours_trip = rows["osiiso_mp"]
    head = f"{'':12} {'submit (tasks/s)':>17} {'round trip p50 (µs)':>20}"
    print(f"{head}  ratios (osiiso_mp / peer)")
    for name, (rate, trip) in rows.items():
        ratio = (
            ""
            if name in ("osiiso_mp", "(local)")
            else (f"  submit {ours_rate / rate:.1f}x, round trip {trip / ours_trip:.1f}x faster")
        )
        print(f"{name:12} {rate:>17,.0f} {trip * 1e6:>20,.0f}{ratio}")


if __name__ == "__main__":
    main()
