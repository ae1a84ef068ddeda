"""Does the pool stay busy while the caller's own thread works? osiiso_mp beside
``ProcessPoolExecutor``, in one run.

The supervisor (osiiso_mp's) or the feeder and result threads (``ProcessPoolExecutor``'s)
share the caller's GIL: while the caller runs pure-Python code, they get the GIL only at
its switch interval (``sys.getswitchinterval()``, 5 ms by default), and a worker that has
finished what it held waits for its next task meanwhile.

Each pool gets ``--tasks`` tasks of ``--task-ms`` milliseconds (the worker sleeps, so that
the workers take no CPU from the caller: what is measured is the parent's GIL), submitted
at once; then the caller either waits (idle) or runs a pure-Python loop until every task
has finished (busy). The figure is the time from the first submit to the last task's
end; the ratio busy / idle says how much the caller's work slowed the pool (1.0: not at
all). Medians of ``--repeats`` runs, each pool and mode interleaved.

    python benchmarks/bench_busy_caller.py [--procs 2] [--tasks 1000] [--task-ms 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def nap(seconds: float) -> None:
    time.sleep(seconds)


def _one(make: Callable[[], Any], tasks: int, seconds: float, busy: bool) -> float:
    with make() as ex:
        for fut in [ex.submit(nap, 0.0) for _ in range(8)]:  # workers up, estimates made
            fut.result()
        left = [tasks]
        lock = threading.Lock()
        finished = threading.Event()
        last = [0.0]

        def done(_: Any) -> None:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    last[0] = time.perf_counter()
                    finished.set()

        start = time.perf_counter()
        futures = [ex.submit(nap, seconds) for _ in range(tasks)]
        for fut in futures:
            fut.add_done_callback(done)
        if busy:
            x = 0
            while not finished.is_set():  # pure Python: the GIL is let go only at switches
                for i in range(2000):
                    x += i * i
        finished.wait()
        return last[0] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--task-ms", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from osiiso_mp import Executor

    seconds = args.task_ms / 1000
    pools: dict[str, Callable[[], Any]] = {
        "osiiso_mp": lambda: Executor(procs=args.procs),
        "ProcessPoolExecutor": lambda: cf.ProcessPoolExecutor(args.procs),
    }
    times: dict[tuple[str, bool], list[float]] = {(p, b): [] for p in pools for b in (0, 1)}
    for _ in range(args.repeats):
        for name, make in pools.items():
            for busy in (False, True):
                times[name, busy].append(_one(make, args.tasks, seconds, busy))
    ideal = args.tasks * seconds / args.procs
    print(
        f"{args.tasks} tasks of {args.task_ms:g} ms on {args.procs} workers (ideal "
        f"{ideal:.2f} s); caller idle vs running pure Python; switch interval "
        f"{sys.getswitchinterval() * 1000:g} ms; medians of {args.repeats}; "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'':22} {'idle (s)':>9} {'busy (s)':>9} {'busy / idle':>12}")
    for name in pools:
        idle = statistics.median(times[name, False])
        busy = statistics.median(times[name, True])
        print(f"{name:22} {idle:>9.3f} {busy:>9.3f} {busy / idle:>11.2f}x")


if __name__ == "__main__":
    main()
