"""osiiso_mp against another checkout of itself: one task at a time and bulk submits,
interleaved, each run in a fresh process.

    python benchmarks/ab_trees.py [--rounds 6] base=/path/to/old/checkout new=.

For each ``name=path`` (the root of a checkout: ``path/osiiso_mp`` is imported), every round
runs, in a fresh process each, with 2 workers:

- ``rtt``: 2,000 ``submit(noop).result()`` one at a time; the p50, and the CPU per round trip
  of the caller's process (all its threads) and of its children (the workers);
- ``submit``: 20,000 ``submit(noop)``, then their results; tasks per second, and the CPU per
  task of the caller's process and of its children.

CPU is read per thread from ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds, Linux). The
order of the trees alternates from round to round, so that a machine whose speed drifts
slows each alike. Latency on a small VM depends on its load more than on anything else:
the CPU figures are the steadier ones. Nothing is asserted; it prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _cpu_ns(pid: int | str) -> int:
    """CPU nanoseconds of every thread of process ``pid`` so far (Linux)."""
    from bench_shapes import threads_ns

    ns = threads_ns(pid)
    if ns is None:
        raise SystemExit("needs /proc/<pid>/task/<tid>/schedstat (Linux)")
    return ns


def one(what: str) -> list[float]:
    """Child mode: ``[figure, parent CPU µs, children CPU µs]`` per task of ``what``."""
    sys.path.insert(0, HERE)
    import bench_tasks
    import psutil

    import osiiso_mp

    with osiiso_mp.Executor(procs=2) as ex:
        for _ in range(300):
            ex.submit(bench_tasks.noop).result()
        kids = [c.pid for c in psutil.Process().children(recursive=True)]
        parent0, kids0 = _cpu_ns("self"), sum(_cpu_ns(p) for p in kids)
        if what == "rtt":
            n, lat = 2000, []
            for _ in range(n):
                start = time.perf_counter()
                ex.submit(bench_tasks.noop).result()
                lat.append(time.perf_counter() - start)
            figure = statistics.median(lat) * 1e6
        else:
            n = 20_000
            start = time.perf_counter()
            futures = [ex.submit(bench_tasks.noop) for _ in range(n)]
            for fut in futures:
                fut.result()
            figure = n / (time.perf_counter() - start)
        parent1, kids1 = _cpu_ns("self"), sum(_cpu_ns(p) for p in kids)
    return [figure, (parent1 - parent0) / n / 1e3, (kids1 - kids0) / n / 1e3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--one", choices=("rtt", "submit"), help=argparse.SUPPRESS)
    parser.add_argument("trees", nargs="*", metavar="name=path")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)), flush=True)
        return 0
    trees = dict(t.split("=", 1) for t in args.trees)
    if len(trees) < 2 or args.rounds < 1:
        parser.error("give at least two name=path trees, and --rounds of at least 1")
    runs: dict[str, dict[str, list[list[float]]]] = {n: {"rtt": [], "submit": []} for n in trees}
    for r in range(args.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
        for what in ("rtt", "submit"):
            for name, path in order:
                env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
                cmd = [sys.executable, __file__, "--one", what]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith("[")]
                if out.returncode or not lines:
                    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"  {name} {what}: run failed: {tail[:200]}")
                    continue
                runs[name][what].append(json.loads(lines[-1]))
    print(f"medians of {args.rounds} rounds, each run in a fresh process, 2 workers")
    print(
        "| tree | round trip p50 (µs) | its CPU: caller's process (µs) | workers (µs) "
        "| submit (tasks/s) | CPU per task: caller's process (µs) | workers (µs) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, by in runs.items():
        if not by["rtt"] or not by["submit"]:
            print(f"| {name} | error | | | | | |")
            continue
        rtt = [statistics.median(r[i] for r in by["rtt"]) for i in range(3)]
        sub = [statistics.median(r[i] for r in by["submit"]) for i in range(3)]
        print(
            f"| {name} | {rtt[0]:.0f} | {rtt[1]:.1f} | {rtt[2]:.1f} "
            f"| {sub[0]:,.0f} | {sub[1]:.1f} | {sub[2]:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
