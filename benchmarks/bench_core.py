"""First benchmark: no-op throughput, round-trip latency and start-up, osiiso_mp vs
ProcessPoolExecutor (forkserver), side by side in one run.

    python benchmarks/bench_core.py [--procs 2] [--tasks 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse

from osiiso_mp._bench import run_bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run_bench(procs=args.procs, tasks=args.tasks, repeats=args.repeats)
