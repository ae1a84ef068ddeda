"""Bulk ``submit`` sustained: several rounds of no-op tasks through one pool, beside peers.

    python benchmarks/bench_sustained.py [--rounds 6] [--tasks 20000] [--procs 2]
                                         [--peers osiiso_mp,mp.Pool,pebble,ProcessPoolExecutor]

The harness's ``submit`` scenario measures one round in a fresh process. A pipeline or a
notebook submits round after round into the same executor, and osiiso_mp keeps what
finished: every record for lookups by id for ``result_ttl`` (300 s by default), and for the
next ``run()``. Those records are objects that Python's cyclic garbage collector walks at
each full collection, so the cost of a task may depend on how many came before it. Here
each peer runs, in a fresh process of its own, ``--rounds`` rounds of ``--tasks`` no-op
``submit`` calls (one future each, all submitted, then every result read) through one pool
(the harness's peers, started once), and prints per round: tasks per second, and the time
its process spent in the cyclic collector (``gc.callbacks``), per task. Peers that keep no
records show what a round costs without them.

Nothing is asserted; it prints what it measured, and per peer the last round's throughput
over the first's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


class _GcClock:
    """Seconds this process spends in the cyclic collector, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.total = 0.0
        self.full = 0  # collections of the oldest generation
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start
            self.full += info["generation"] == 2


def one(peer_name: str, procs: int, rounds: int, n: int) -> list[dict[str, float]]:
    """Child mode: ``rounds`` rounds of ``n`` no-op submits through one pool of
    ``peer_name``; per round, tasks/s and the collector's time per task (µs)."""
    import bench_tasks
    import harness

    peer = harness.PEERS[peer_name](procs)
    peer.start()
    out = []
    try:
        harness._warm(peer)
        clock = _GcClock()
        for _ in range(rounds):
            spent, full = clock.total, clock.full
            start = time.perf_counter()
            got = peer.submit_all(bench_tasks.noop, [()] * n)
            elapsed = time.perf_counter() - start
            assert len(got) == n
            del got
            out.append(
                {
                    "per_s": n / elapsed,
                    "gc_us": (clock.total - spent) / n * 1e6,
                    "full_gcs": float(clock.full - full),
                }
            )
    finally:
        peer.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--peers", default="osiiso_mp,mp.Pool,pebble,ProcessPoolExecutor")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.procs, args.rounds, args.tasks)))
        return 0
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; procs={args.procs}, "
        f"{args.rounds} rounds of {args.tasks:,} no-op submits per pool, a fresh process "
        "per peer"
    )
    for name in args.peers.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--procs", str(args.procs)]
        cmd += ["--rounds", str(args.rounds), "--tasks", str(args.tasks)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            print(f"{name:>20}: timed out")
            continue
        if done.returncode != 0:
            print(f"{name:>20}: failed\n{done.stderr[-2000:]}")
            continue
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        rates = " ".join(f"{r['per_s']:>7,.0f}" for r in rows)
        gcs = " ".join(f"{r['gc_us']:>7.1f}" for r in rows)
        fulls = sum(int(r["full_gcs"]) for r in rows)
        ratio = rows[-1]["per_s"] / rows[0]["per_s"]
        print(f"{name:>20}: tasks/s per round  {rates}   last/first {ratio:.2f}x")
        print(
            f"{'':>20}  collector µs/task  {gcs}   median "
            f"{statistics.median(r['gc_us'] for r in rows):.1f}, {fulls} full collections"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
