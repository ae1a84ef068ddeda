"""What one finished task costs the parent's memory, measured with tracemalloc.

Runs N no-op tasks, then measures the Python memory held by what the executor retains for
them: the batch's futures (with their TaskResult and Attempt records), and the records kept
for lookups by id (``result_ttl``). Reported as bytes per task; ``run()`` then releases the
batch, and a ``result_ttl=0`` executor keeps nothing else. The same is then measured for
N items of one ``map(abs, ...)`` (chunked: values and timings kept compactly, records built
on demand).

    python benchmarks/bench_memory.py [--tasks 20000]
    python benchmarks/bench_memory.py --stream 10000000   # a streamed map's RSS over time
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from osiiso_mp import Executor
from osiiso_mp._bench import noop


def held_per_task(tasks: int, result_ttl: float, use_map: bool = False) -> tuple[float, float]:
    """Bytes per finished task held before run(), and after run() released the batch."""
    with Executor(procs=2, result_ttl=result_ttl) as ex:
        for f in [ex.submit(noop) for _ in range(200)]:
            f.result()
        list(ex.map(abs, range(1000)))
        ex.run()
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        if use_map:
            for _ in ex.map(abs, range(10**6, 10**6 + tasks)):  # ints not cached by CPython
                pass
        else:
            futures = [ex.submit(noop) for _ in range(tasks)]
            for f in futures:
                f.result()
            del futures  # only what the executor itself keeps
        time.sleep(0.2)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        ex.run()
        gc.collect()
        after_run = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    return held / tasks, after_run / tasks


def stream(items: int, buffersize: int = 4096) -> None:
    """Stream ``map(abs, ...)`` over ``items`` ints with ``result_ttl=0`` and print the
    parent's resident memory every tenth of the way (it must level off, not grow)."""
    import psutil

    me = psutil.Process()
    step = max(1, items // 10)
    start = time.perf_counter()
    with Executor(procs=2, result_ttl=0) as ex:
        for i, value in enumerate(ex.map(abs, range(-items, 0), buffersize=buffersize)):
            if value != items - i:
                raise AssertionError(f"item {i}: {value}")
            if (i + 1) % step == 0:
                elapsed = time.perf_counter() - start
                print(
                    f"{i + 1:>12,} items  {elapsed:6.1f} s  {(i + 1) / elapsed:>9,.0f} items/s  "
                    f"RSS {me.memory_info().rss / 2**20:7.1f} MiB",
                    flush=True,
                )


def main() -> None:
    """Print bytes per task for the default retention and for result_ttl=0."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--stream", type=int, default=0, help="stream a map of this many items")
    args = parser.parse_args()
    if args.stream:
        stream(args.stream)
        return
    for use_map in (False, True):
        what = "items of map(abs, ...)" if use_map else "no-op tasks"
        for ttl in (300.0, 0.0):
            before, after = held_per_task(args.tasks, ttl, use_map)
            print(
                f"result_ttl={ttl:g}: {before:,.0f} bytes/task held until run(); "
                f"{after:,.0f} bytes/task after run() ({args.tasks:,} {what})"
            )


if __name__ == "__main__":
    main()
