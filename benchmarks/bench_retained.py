"""A pipeline of large results that never calls ``run()``: the parent's memory stays bounded.

Streams 200,000 tasks, each returning 1 MiB of ``bytes``, through ``Executor.map`` with the
executor's default options and map's (no ``buffersize``: every task is submitted at once,
as in the standard library), reads every value and drops it (``for out in ex.map(...):``),
and never calls ``run()``. The parent's peak resident size must stay under 1 GiB however
many tasks go through: what the executor keeps of the values for ``run()`` and lookups by
id is bounded by ``retain_bytes`` (256 MiB by default), and so are the values waiting for
a reader slower than the workers (past that, the map's next tasks wait for the reader;
before, on a machine where the parent's threads and the workers share few cores, that
backlog grew past 1 GiB within 20,000 tasks).

    python benchmarks/bench_retained.py [--tasks 200000] [--size 1048576] [--procs P]
                                        [--buffersize N]

``--buffersize N`` is ``map``'s: at most N tasks outstanding, the other way ``map``
streams (the default, 0, leaves it out).

Prints the parent's resident size every tenth of the way and its peak
(``getrusage(RUSAGE_SELF).ru_maxrss``), with the throughput.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

from osiiso_mp import Executor

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the workers import the task, bench_tasks.make_bytes, from here
    sys.path.insert(0, HERE)

MIB = 1 << 20


def peak_rss() -> int:
    """The parent's peak resident size so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def stream(tasks: int, size: int, procs: int | None, buffersize: int | None) -> float:
    """Map ``make_bytes(size)`` over ``tasks`` items and drop every value; the peak RSS."""
    import psutil
    from bench_tasks import make_bytes

    me = psutil.Process()
    step = max(1, tasks // 10)
    start = time.perf_counter()
    done = 0
    with Executor(procs=procs) as ex:
        print(
            f"{tasks:,} tasks of {size:,} bytes, procs={ex.procs}, buffersize={buffersize}, "
            f"retain_bytes={ex.config.retain_bytes}",
            flush=True,
        )
        for out in ex.map(make_bytes, [size] * tasks, buffersize=buffersize):
            if len(out) != size:
                raise AssertionError(f"task {done}: {len(out)} bytes")
            done += 1
            if done % step == 0:
                elapsed = time.perf_counter() - start
                print(
                    f"{done:>9,} tasks  {elapsed:7.1f} s  {done * size / MIB / elapsed:7.0f} MiB/s"
                    f"  RSS {me.memory_info().rss / MIB:7.1f} MiB"
                    f"  peak {peak_rss() / MIB:7.1f} MiB",
                    flush=True,
                )
    elapsed = time.perf_counter() - start
    peak = peak_rss() / MIB
    print(
        f"done: {tasks:,} tasks in {elapsed:.1f} s ({tasks / elapsed:,.0f} tasks/s); "
        f"parent peak RSS {peak:.1f} MiB ({'under' if peak < 1024 else 'OVER'} 1 GiB)",
        flush=True,
    )
    return peak


def main() -> None:
    """Parse the options and stream."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=MIB, help="bytes each task returns")
    parser.add_argument("--procs", type=int, default=None, help="workers (default: the CPUs)")
    parser.add_argument(
        "--buffersize", type=int, default=0, help="map's buffersize (0, the default: none)"
    )
    args = parser.parse_args()
    stream(args.tasks, args.size, args.procs, args.buffersize or None)


if __name__ == "__main__":
    main()
