"""What a checkpoint costs a ``map``, and what a resumed run saves: one run, three variants.

    python benchmarks/bench_checkpoint.py [--items 200000] [--repeats 3] [--procs 2]

``list(ex.map(abs, data))`` over ``--items`` ints on a warm ``Executor(procs=2)``:

- *plain*: no checkpoint.
- *fresh checkpoint*: ``checkpoint=`` a new file: every item runs and is recorded (each
  value durable in the file before the iterator yields it).
- *filled checkpoint*: the same map again on the file the previous variant filled: every
  item is restored, none runs.

The checkpointed figures run from opening the ``Checkpoint`` to closing it (keys, lookups,
recording, commits). Each repeat starts a fresh pool (warmed up with a small map) and new
files under a temporary directory, and runs the three variants in turn; after each, the
pool's ``run()`` (not timed) says how many items ran and how many were restored. The table
gives medians of ``--repeats`` and the ratio of each variant's rate to the plain map's in
the same run. Nothing is asserted: it prints what it measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from osiiso_mp import Checkpoint, Executor

VARIANTS = ("plain", "fresh checkpoint", "filled checkpoint")


def _timed(ex: Executor, data: list[int], path: str | None) -> tuple[float, int, int]:
    """Seconds for ``list(ex.map(abs, data))`` (with a checkpoint at ``path`` if given, from
    its opening to its closing); then how many items ran and how many were restored."""
    ck = None
    start = time.perf_counter()
    if path is None:
        out = list(ex.map(abs, data))
    else:
        ck = Checkpoint(path)
        out = list(ex.map(abs, data, checkpoint=ck))
    elapsed = time.perf_counter() - start
    if len(out) != len(data) or out[0] != abs(data[0]) or out[-1] != abs(data[-1]):
        sys.exit(f"wrong values from the map ({'plain' if path is None else path})")
    summary = ex.run()  # not timed; before the checkpoint is closed (run() flushes it)
    if ck is not None:
        start = time.perf_counter()
        ck.close()
        elapsed += time.perf_counter() - start
    restored = sum(r.attempts == 0 for r in summary.results)
    return elapsed, summary.total_submitted - restored, restored


def one_repeat(
    data: list[int], procs: int, folder: str, repeat: int
) -> dict[str, tuple[float, int, int]]:
    """Each variant once on a fresh pool: seconds, items run, items restored."""
    path = os.path.join(folder, f"repeat{repeat}.sqlite")
    with Executor(procs=procs) as ex:
        list(ex.map(abs, range(procs * 64)))  # warm: workers up, the map path exercised
        ex.run()
        return {
            "plain": _timed(ex, data, None),
            "fresh checkpoint": _timed(ex, data, path),  # creates and fills the file
            "filled checkpoint": _timed(ex, data, path),  # finds every item in it
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000, help="items per map")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    parser.add_argument("--procs", type=int, default=2, help="worker processes")
    args = parser.parse_args(argv)
    if args.items < 1 or args.repeats < 1 or args.procs < 1:
        parser.error("--items, --repeats and --procs must be at least 1")

    n = args.items
    data = list(range(-n // 2, n - n // 2))
    runs: dict[str, list[tuple[float, int, int]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as folder:
        for repeat in range(args.repeats):
            for variant, figures in one_repeat(data, args.procs, folder, repeat).items():
                runs[variant].append(figures)

    rates = {v: [n / seconds for seconds, _, _ in runs[v]] for v in VARIANTS}
    plain = statistics.median(rates["plain"])
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, Executor(procs={args.procs}),"
        f" map(abs) over {n:,} ints; median of {args.repeats} (min-max)"
    )
    print("| map | items/s | vs plain | ran | restored |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        values = rates[variant]
        mid = statistics.median(values)
        _, ran, restored = runs[variant][-1]
        print(
            f"| {variant} | {mid:,.0f} ({min(values):,.0f}-{max(values):,.0f}) "
            f"| {mid / plain:.2f}x | {ran:,} | {restored:,} |"
        )


if __name__ == "__main__":
    main()
