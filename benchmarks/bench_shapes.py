"""One task at a time: osiiso_mp beside its best peers and beside the skeletons of the two
shapes its supervisor can take (``proto_shapes.py``), in one run.

    python benchmarks/bench_shapes.py [--repeats 3] [--tasks 20000]

Two tables:

1. ``harness.py --scenarios submit,rtt`` over osiiso_mp, ``multiprocessing.Pool``,
   ``ProcessPoolExecutor``, pebble, mpire, the bare pipe and the three skeletons: the no-op
   ``submit`` rate and the round-trip p50, each run in a fresh process, repeats round robin.
2. Where the CPU goes: for ``--tasks`` no-op submits then their results, the CPU time of
   the caller's process and of all its children (workers, fork server, a supervisor
   process) per task, read with psutil around the batch, each run in a fresh process.
   On a 2-core machine both shares compete for the same two cores; the caller's share is
   also bounded by one GIL.
3. The same for one task at a time (``--round-trips`` of them, each waited for): CPU per
   round trip of the caller's own thread, of the other threads of its process (a
   supervisor thread, a pool's handler threads) and of its children. Per thread it is
   read from ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds; psutil's tick-based times
   where that is missing). Nearly all of it lies on the round trip's path: the caller
   waits while the others work, so what a pool spends here is its latency's floor.

The skeletons keep only what every task must have (a future, a pickled call, a record of
five times, workers on an asyncio loop): each is the ceiling of its shape, the most that
shape can give on this machine. Nothing is asserted; it prints what it measured.
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
if HERE not in sys.path:
    sys.path.insert(0, HERE)

PEERS = [
    "osiiso_mp",
    "mp.Pool",
    "mp.Pool (fork)",
    "ProcessPoolExecutor",
    "pebble",
    "mpire",
    "bare pipe",
    "shape: thread",
    "shape: thread + records",
    "shape: process",
    "shape: process (waiter reads)",
]
CPU_PEERS = [
    "osiiso_mp",
    "mp.Pool",
    "mp.Pool (fork)",
    "shape: thread",
    "shape: thread + records",
    "shape: process",
]


def cpu_one(peer_name: str, tasks: int) -> dict[str, float]:
    """Child mode: CPU per task of the caller's process and of its children."""
    import bench_tasks
    import harness
    import psutil

    peer = {**harness.PEERS, **harness._shapes()}[peer_name](2)
    peer.start()
    try:
        peer.submit_all(bench_tasks.noop, [()] * 2000)
        me = psutil.Process()

        def split() -> tuple[float, float]:
            kids = 0.0
            for child in me.children(recursive=True):
                try:
                    kids += sum(child.cpu_times()[:2])
                except psutil.NoSuchProcess:
                    pass
            return sum(me.cpu_times()[:2]), kids

        before, start = split(), time.perf_counter()
        peer.submit_all(bench_tasks.noop, [()] * tasks)
        elapsed, after = time.perf_counter() - start, split()
    finally:
        peer.stop()
    return {
        "per_s": tasks / elapsed,
        "caller_us": (after[0] - before[0]) / tasks * 1e6,
        "children_us": (after[1] - before[1]) / tasks * 1e6,
    }


def threads_ns(pid: int | str) -> int | None:
    """CPU nanoseconds of every thread of process ``pid`` so far (None: not readable)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def rtt_cpu_one(peer_name: str, trips: int) -> dict[str, float]:
    """Child mode: CPU per round trip (one no-op task at a time) of the caller's thread,
    of the other threads of its process, and of its children."""
    import bench_tasks
    import harness
    import psutil

    peer = {**harness.PEERS, **harness._shapes()}[peer_name](2)
    peer.start()
    try:
        for _ in range(300):
            peer.call(bench_tasks.noop)
        me = psutil.Process()
        kids = [c.pid for c in me.children(recursive=True)]

        def split() -> tuple[float, float, float]:
            ours = threads_ns("self")
            theirs = [threads_ns(pid) for pid in kids]
            if ours is None or None in theirs:  # no schedstat here: psutil's ticks
                ours_s = sum(me.cpu_times()[:2])
                kids_s = 0.0
                for pid in kids:
                    try:
                        kids_s += sum(psutil.Process(pid).cpu_times()[:2])
                    except psutil.NoSuchProcess:
                        pass
                return time.thread_time(), ours_s, kids_s
            return time.thread_time(), ours / 1e9, sum(t or 0 for t in theirs) / 1e9

        before, start = split(), time.perf_counter()
        for _ in range(trips):
            peer.call(bench_tasks.noop)
        elapsed, after = time.perf_counter() - start, split()
    finally:
        peer.stop()
    caller = after[0] - before[0]
    return {
        "wall_us": elapsed / trips * 1e6,
        "caller_us": caller / trips * 1e6,
        "others_us": max(0.0, after[1] - before[1] - caller) / trips * 1e6,
        "children_us": (after[2] - before[2]) / trips * 1e6,
    }


def _runs(
    mode: str, count: int, repeats: int, env: dict[str, str]
) -> dict[str, list[dict[str, float]]]:
    """``repeats`` runs of ``--cpu-one PEER --mode MODE`` per peer of CPU_PEERS, round
    robin, each in a fresh process."""
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in CPU_PEERS}
    for _ in range(repeats):
        for peer in CPU_PEERS:
            cmd = [sys.executable, __file__, "--cpu-one", peer, "--mode", mode]
            cmd += ["--tasks", str(count)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode == 0 and lines:
                runs[peer].append(json.loads(lines[-1]))
            else:
                tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"  {peer}: run failed: {tail[:200]}")
    return runs


def _medians(values: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(v[k] for v in values) for k in values[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per CPU figure")
    parser.add_argument("--round-trips", type=int, default=3000, help="per round-trip figure")
    parser.add_argument("--cpu-one", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("bulk", "rtt"), default="bulk", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.tasks < 100 or args.round_trips < 100:
        parser.error("--repeats must be at least 1, --tasks and --round-trips at least 100")
    if args.cpu_one:
        one = rtt_cpu_one if args.mode == "rtt" else cpu_one
        print(json.dumps(one(args.cpu_one, args.tasks)), flush=True)
        return 0

    import harness

    harness.main(
        ["--scenarios", "submit,rtt", "--peers", ",".join(PEERS), "--repeats", str(args.repeats)]
    )

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
    runs = _runs("bulk", args.tasks, args.repeats, env)
    print()
    print(f"CPU per no-op task, {args.tasks:,} submits then their results, 2 workers;")
    print(f"medians of {args.repeats} runs, each in a fresh process")
    print("| pool | tasks/s | caller's process (µs/task) | its children (µs/task) |")
    print("|---|---|---|---|")
    for peer, values in runs.items():
        if not values:
            print(f"| {peer} | error | error | error |")
            continue
        med = _medians(values)
        print(
            f"| {peer} | {med['per_s']:,.0f} | {med['caller_us']:.1f} | {med['children_us']:.1f} |"
        )

    runs = _runs("rtt", args.round_trips, args.repeats, env)
    print()
    print(f"CPU per round trip, {args.round_trips:,} no-op tasks one at a time, 2 workers;")
    print(f"medians of {args.repeats} runs, each in a fresh process")
    print(
        "| pool | wall (µs/trip) | caller's thread (µs) | its process's other threads (µs) "
        "| its children (µs) |"
    )
    print("|---|---|---|---|---|")
    for peer, values in runs.items():
        if not values:
            print(f"| {peer} | error | error | error | error |")
            continue
        med = _medians(values)
        print(
            f"| {peer} | {med['wall_us']:.0f} | {med['caller_us']:.1f} | "
            f"{med['others_us']:.1f} | {med['children_us']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
