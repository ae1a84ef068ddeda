"""Benchmark harness: osiiso_mp beside its peers, every scenario in a fresh process.

    python benchmarks/harness.py [--procs 2] [--repeats 3] [--quick] [--peers a,b,...]

Peers: osiiso_mp, ProcessPoolExecutor (forkserver), multiprocessing.Pool (forkserver),
loky, pebble, mpire, joblib, and a bare pipe pool written here (no records: the floor).
Scenarios: no-op ``submit`` throughput, ``map`` throughput with per-item results,
round-trip p50, start-up (pool + one task + shutdown), 1 MiB in / out and 8 MiB numpy
arrays in / out.

Every (peer, scenario, repeat) runs in its own ``python harness.py --one ...`` process that
prints one JSON line; a failure or timeout is recorded as an error and the run goes on.
Repeats go round robin (repeat k of every peer, then repeat k + 1), so that a machine whose
speed drifts during the run slows every peer alike.
osiiso_mp runs with its telemetry on (a record per task), as always.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

MIB = 1 << 20


# --------------------------------------------------------------------------- tasks
def _tasks() -> Any:
    """The module of the task callables (pickles name ``bench_tasks.noop`` etc.)."""
    import bench_tasks

    return bench_tasks


def _harness() -> Any:
    """This module imported as ``harness``: what a forkserver child can name."""
    import harness

    return harness


# --------------------------------------------------------------------------- peers
Call = tuple[Callable[..., Any], tuple[Any, ...]]


class Peer:
    """One pool under test: start, run calls, stop."""

    name = "?"
    notes = ""

    def __init__(self, procs: int) -> None:
        self.procs = procs

    def start(self) -> None:
        raise NotImplementedError

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        """One task (one future / async result) per call, all submitted, then waited on."""
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.submit_all(fn, [args])[0]

    def stop(self) -> None:
        raise NotImplementedError


class FuturesPeer(Peer):
    """Anything with concurrent.futures-style ``submit`` and ``map``."""

    ex: Any

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        futures = [self.ex.submit(fn, *a) for a in argslist]
        return [f.result() for f in futures]

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return list(self.ex.map(fn, data))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args).result()

    def stop(self) -> None:
        self.ex.shutdown(wait=True)


class Osiiso(FuturesPeer):
    name = "osiiso_mp"
    notes = "Executor(procs=P), ex.submit / ex.map (default chunking), telemetry on"

    def start(self) -> None:
        import osiiso_mp

        self.ex = osiiso_mp.Executor(procs=self.procs)


class PPE(FuturesPeer):
    name = "ProcessPoolExecutor"
    notes = "forkserver context; map with the default chunksize=1"

    def start(self) -> None:
        import concurrent.futures as cf
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        self.ex = cf.ProcessPoolExecutor(self.procs, mp_context=ctx)


class Loky(FuturesPeer):
    name = "loky"
    notes = "get_reusable_executor(max_workers=P); map with the default chunksize=1"

    def start(self) -> None:
        import loky

        self.ex = loky.get_reusable_executor(max_workers=self.procs)


class MPPool(Peer):
    name = "mp.Pool"
    notes = "multiprocessing.Pool, forkserver; apply_async per task, map with its default chunksize"
    method = "forkserver"

    pool: Any

    def start(self) -> None:
        import multiprocessing

        self.pool = multiprocessing.get_context(self.method).Pool(self.procs)

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        results = [self.pool.apply_async(fn, a) for a in argslist]
        return [r.get() for r in results]

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return list(self.pool.map(fn, data))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.apply(fn, args)

    def stop(self) -> None:
        self.pool.close()
        self.pool.join()


class MPPoolFork(MPPool):
    """``multiprocessing.Pool`` with ``fork`` (the default on Linux before Python 3.14).

    With ``forkserver`` its worker-handler thread wakes on every result left unread in its
    queue and polls each worker's forkserver sentinel, once per wake-up: on a busy 2-core
    machine that thread takes most of the parent's CPU (an ``apply_async`` loop ran 10x slower here,
    seen with py-spy). With ``fork`` the same poll is a ``waitpid``. Both are measured, so
    that the best of ``mp.Pool`` is the peer compared."""

    name = "mp.Pool (fork)"
    notes = "multiprocessing.Pool, fork; apply_async per task, map with its default chunksize"
    method = "fork"


class Pebble(Peer):
    name = "pebble"
    notes = "ProcessPool(max_workers=P) (default context: fork); schedule / map chunksize=1"

    pool: Any

    def start(self) -> None:
        import pebble

        self.pool = pebble.ProcessPool(max_workers=self.procs)

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        futures = [self.pool.schedule(fn, args=a) for a in argslist]
        return [f.result() for f in futures]

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return list(self.pool.map(fn, data).result())

    def stop(self) -> None:
        self.pool.close()
        self.pool.join()


class Mpire(Peer):
    name = "mpire"
    notes = "WorkerPool(n_jobs=P) (default start method: fork); apply_async / map"

    pool: Any

    def start(self) -> None:
        import mpire

        self.pool = mpire.WorkerPool(n_jobs=self.procs)
        self.pool.__enter__()

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        results = [self.pool.apply_async(fn, args=a) for a in argslist]
        return [r.get() for r in results]

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return list(self.pool.map(fn, data, progress_bar=False))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.apply(fn, args=args)

    def stop(self) -> None:
        self.pool.__exit__(None, None, None)


class Joblib(Peer):
    name = "joblib"
    notes = (
        "Parallel(n_jobs=P) (loky backend); submit = batch_size=1, map = auto batching; "
        "start-up stops after the task (loky's reusable workers are not shut down)"
    )

    def start(self) -> None:
        """joblib starts its workers lazily, on the first Parallel call."""

    def _run(self, calls: Iterable[Call], batch_size: int | str) -> list[Any]:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=self.procs, batch_size=batch_size)
        return list(par(delayed(fn)(*a) for fn, a in calls))

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._run(((fn, a) for a in argslist), 1)

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return self._run(((fn, (x,)) for x in data), "auto")

    def stop(self) -> None:
        """See notes: joblib keeps loky's reusable executor alive."""


def _bare_worker(conn: Any) -> None:
    """Bare pipe pool worker: read a pickled batch of (fn, args), write the results back."""
    loads, dumps = pickle.loads, pickle.dumps
    recv, send = conn.recv_bytes, conn.send_bytes
    while True:
        batch = loads(recv())
        if batch is None:
            return
        send(dumps([fn(*a) for fn, a in batch], protocol=pickle.HIGHEST_PROTOCOL))


class BarePipe(Peer):
    name = "bare pipe"
    notes = (
        "the floor: P forkserver processes, one duplex pipe each, pickled (fn, args) batches; "
        "no records, no futures; submit/round trip/1 MiB one task per message (pipelined, "
        "window 64 per worker), map 512 tasks per message"
    )

    window = 64
    map_batch = 512

    def start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        self.conns: list[Any] = []
        self.workers: list[Any] = []
        for _ in range(self.procs):
            parent, child = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_harness()._bare_worker, args=(child,), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.workers.append(p)

    def _run(self, calls: Sequence[Call], batch: int) -> list[Any]:
        from multiprocessing.connection import wait

        dumps, loads = pickle.dumps, pickle.loads
        batches = [calls[i : i + batch] for i in range(0, len(calls), batch)]
        results: list[list[Any] | None] = [None] * len(batches)
        pending: dict[Any, list[int]] = {c: [] for c in self.conns}  # FIFO of batch indices
        nxt = 0
        done = 0
        while done < len(batches):
            for c in self.conns:
                while nxt < len(batches) and len(pending[c]) < self.window:
                    c.send_bytes(dumps(list(batches[nxt]), protocol=pickle.HIGHEST_PROTOCOL))
                    pending[c].append(nxt)
                    nxt += 1
            for c in wait([c for c in self.conns if pending[c]]):
                results[pending[c].pop(0)] = loads(c.recv_bytes())  # type: ignore[union-attr]
                done += 1
        return [r for b in results for r in b or ()]

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._run([(fn, a) for a in argslist], 1)

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return self._run([(fn, (x,)) for x in data], self.map_batch)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        c = self.conns[0]
        c.send_bytes(pickle.dumps([(fn, args)], protocol=pickle.HIGHEST_PROTOCOL))
        return pickle.loads(c.recv_bytes())[0]

    def stop(self) -> None:
        for c in self.conns:
            c.send_bytes(pickle.dumps(None))
        for p in self.workers:
            p.join()
        for c in self.conns:
            c.close()


PEERS: dict[str, type[Peer]] = {
    p.name: p for p in (Osiiso, PPE, MPPool, MPPoolFork, Loky, Pebble, Mpire, Joblib, BarePipe)
}
PEER_ORDER = list(PEERS)
FLOOR = BarePipe.name


def _shapes() -> dict[str, Any]:
    """The skeletons of ``proto_shapes.py``: run only when named (``--peers``), and never
    counted as the best peer (they are ceilings of a design, not pools)."""
    import proto_shapes

    return {s.name: s for s in proto_shapes.SHAPES}


# --------------------------------------------------------------------------- scenarios
# Each scenario returns {metric: value}; SIZES gives (full, quick) sizes.
SIZES: dict[str, tuple[int, int]] = {
    "submit": (20_000, 2_000),
    "map": (200_000, 20_000),
    "rtt": (400, 100),
    "bytes": (100, 20),
    "numpy": (40, 10),
}
# Peers whose map sends one message per item (chunksize=1): 200,000 items would take
# ~45 s per repeat at their ~5,000 items/s, so they map over this many items instead
# (the figure is a rate, items/s; the table says so).
SLOW_MAP_PEERS = {"ProcessPoolExecutor", "loky", "pebble"}
SLOW_MAP_CAP = 20_000


def _warm(peer: Peer) -> None:
    t = _tasks()
    peer.submit_all(t.noop, [()] * (peer.procs * 4))


def sc_submit(peer: Peer, n: int) -> dict[str, float]:
    t = _tasks()
    peer.start()
    try:
        _warm(peer)
        start = time.perf_counter()
        out = peer.submit_all(t.noop, [()] * n)
        elapsed = time.perf_counter() - start
        assert len(out) == n
    finally:
        peer.stop()
    return {"submit_per_s": n / elapsed}


def sc_map(peer: Peer, n: int) -> dict[str, float]:
    data = list(range(-n // 2, n - n // 2))
    peer.start()
    try:
        _warm(peer)
        start = time.perf_counter()
        out = peer.map(abs, data)
        elapsed = time.perf_counter() - start
        assert len(out) == n and out[0] == abs(data[0]) and out[-1] == abs(data[-1])
    finally:
        peer.stop()
    return {"map_per_s": n / elapsed, "map_items": float(n)}


def sc_rtt(peer: Peer, n: int) -> dict[str, float]:
    t = _tasks()
    peer.start()
    try:
        _warm(peer)
        for _ in range(20):
            peer.call(t.noop)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            peer.call(t.noop)
            samples.append((time.perf_counter() - start) * 1e6)
    finally:
        peer.stop()
    samples.sort()
    p50, p90 = samples[len(samples) // 2], samples[int(len(samples) * 0.9)]
    return {"rtt_p50_us": p50, "rtt_p90_us": p90}


def sc_startup(peer: Peer, n: int) -> dict[str, float]:
    t = _tasks()
    start = time.perf_counter()
    peer.start()
    peer.call(t.noop)
    peer.stop()
    return {"startup_ms": (time.perf_counter() - start) * 1e3}


def sc_bytes(peer: Peer, n: int) -> dict[str, float]:
    t = _tasks()
    payload = os.urandom(MIB)
    peer.start()
    try:
        _warm(peer)
        peer.submit_all(t.nbytes, [(payload,)] * peer.procs)
        start = time.perf_counter()
        got = peer.submit_all(t.nbytes, [(payload,)] * n)
        t_in = time.perf_counter() - start
        assert got == [MIB] * n
        start = time.perf_counter()
        back = peer.submit_all(t.make_bytes, [(MIB,)] * n)
        t_out = time.perf_counter() - start
        assert len(back) == n and all(len(b) == MIB for b in back)
    finally:
        peer.stop()
    return {"in_MBps": n * MIB / t_in / 1e6, "out_MBps": n * MIB / t_out / 1e6}


def sc_numpy(peer: Peer, n: int) -> dict[str, float]:
    import numpy as np

    t = _tasks()
    size = 8 * MIB
    array = np.ones(size // 8)
    peer.start()
    try:
        _warm(peer)
        peer.submit_all(t.array_nbytes, [(array,)] * peer.procs)
        start = time.perf_counter()
        got = peer.submit_all(t.array_nbytes, [(array,)] * n)
        t_in = time.perf_counter() - start
        assert got == [size] * n
        start = time.perf_counter()
        back = peer.submit_all(t.make_array, [(size,)] * n)
        for a in back:  # touch every page (timed), as array_nbytes does
            a[:: 4096 // a.itemsize].sum()
        t_out = time.perf_counter() - start
        assert len(back) == n and all(a.nbytes == size for a in back)
    finally:
        peer.stop()
    return {"np_in_GBps": n * size / t_in / 1e9, "np_out_GBps": n * size / t_out / 1e9}


SCENARIOS: dict[str, Callable[[Peer, int], dict[str, float]]] = {
    "submit": sc_submit,
    "map": sc_map,
    "rtt": sc_rtt,
    "startup": sc_startup,
    "bytes": sc_bytes,
    "numpy": sc_numpy,
}

# Table rows: (label, scenario, metric, higher is better, format)
ROWS: list[tuple[str, str, str, bool, str]] = [
    ("no-op submit, one future each (tasks/s)", "submit", "submit_per_s", True, "{:,.0f}"),
    ("map, per-item results (items/s)", "map", "map_per_s", True, "{:,.0f}"),
    ("round trip p50 (µs)", "rtt", "rtt_p50_us", False, "{:,.0f}"),
    ("start + one task + shutdown (ms)", "startup", "startup_ms", False, "{:,.0f}"),
    ("1 MiB argument in (MB/s)", "bytes", "in_MBps", True, "{:,.0f}"),
    ("1 MiB result out (MB/s)", "bytes", "out_MBps", True, "{:,.0f}"),
    ("8 MiB numpy array in (GB/s)", "numpy", "np_in_GBps", True, "{:,.2f}"),
    ("8 MiB numpy array out (GB/s)", "numpy", "np_out_GBps", True, "{:,.2f}"),
]


def run_one(peer_name: str, scenario: str, procs: int, n: int) -> None:
    """Child mode: run one scenario once and print one JSON line."""
    peers = {**_harness().PEERS, **_harness()._shapes()}
    peer = peers[peer_name](procs)
    values = _harness().SCENARIOS[scenario](peer, n)
    print(json.dumps({"ok": True, "values": values}), flush=True)


# --------------------------------------------------------------------------- parent
def _child(peer: str, scenario: str, procs: int, n: int, timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, os.path.abspath(__file__), "--one", peer, scenario]
    cmd += ["--procs", str(procs), "--n", str(n)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith('{"ok"'):
            result: dict[str, Any] = json.loads(line)
            return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"exit {proc.returncode}: {tail[:200]}"}


def _versions(peers: Iterable[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dists = {"osiiso_mp": "osiiso_mp", "loky": "loky", "pebble": "pebble", "mpire": "mpire"}
    dists["joblib"] = "joblib"
    out = []
    for p in peers:
        if p in dists:
            try:
                out.append(f"{p} {version(dists[p])}")
            except PackageNotFoundError:
                out.append(f"{p} (not installed)")
    return ", ".join(out)


def _fmt_cell(vals: list[float], fmt: str) -> str:
    if not vals:
        return "error"
    med = statistics.median(vals)
    cell = fmt.format(med)
    if len(vals) > 1 and med:
        cell += f" ±{(max(vals) - min(vals)) / 2 / med * 100:.0f}%"
    return cell


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast check")
    parser.add_argument("--peers", default=",".join(PEER_ORDER), help="comma-separated subset")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per child run")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--one", nargs=2, metavar=("PEER", "SCENARIO"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        run_one(args.one[0], args.one[1], args.procs, args.n)
        return 0

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    known = {**PEERS, **_shapes()}
    unknown = [p for p in peers if p not in known]
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {', '.join(known)}")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    timeout = args.timeout or (60.0 if args.quick else 180.0)

    # The peers come installed from wheels, byte-compiled; a development checkout of
    # osiiso_mp is installed editable, and PYTHONDONTWRITEBYTECODE may be set, in which
    # case every fresh process would compile it from source (~150 ms of start-up): compile
    # it as an install would.
    import compileall

    import osiiso_mp

    compileall.compile_dir(os.path.dirname(osiiso_mp.__file__), quiet=1)
    compileall.compile_file(os.path.join(HERE, "bench_tasks.py"), quiet=1)

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    print(f"command: {command}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )
    print(f"versions: {_versions(peers)}")
    print(
        f"procs={args.procs} repeats={args.repeats} quick={args.quick}; one fresh process per run"
    )

    raw: dict[str, dict[str, dict[str, Any]]] = {}
    errors: list[str] = []
    sizes: dict[tuple[str, str], int] = {}
    t_all = time.perf_counter()
    for scenario in scenarios:
        full, quick = SIZES.get(scenario, (1, 1))
        runs: dict[str, list[dict[str, float]]] = {peer: [] for peer in peers}
        errs: dict[str, list[str]] = {peer: [] for peer in peers}
        took: dict[str, float] = dict.fromkeys(peers, 0.0)
        for peer in peers:
            n = quick if args.quick else full
            if scenario == "map" and peer in SLOW_MAP_PEERS:
                n = min(n, SLOW_MAP_CAP // (10 if args.quick else 1))
            sizes[(peer, scenario)] = n
        # Round robin: repeat k of every peer, then repeat k + 1. This VM's speed drifts
        # by tens of percent over minutes; interleaving spreads the drift over every peer
        # instead of handing each peer its own stretch of it.
        for _ in range(args.repeats):
            for peer in peers:
                t0 = time.perf_counter()
                r = _child(peer, scenario, args.procs, sizes[(peer, scenario)], timeout)
                took[peer] += time.perf_counter() - t0
                if r.get("ok"):
                    runs[peer].append(r["values"])
                else:
                    errs[peer].append(str(r.get("error")))
        for peer in peers:
            n = sizes[(peer, scenario)]
            raw.setdefault(scenario, {})[peer] = {"runs": runs[peer], "errors": errs[peer], "n": n}
            status = f"{len(runs[peer])}/{args.repeats} ok" + (
                f", {errs[peer][0]}" if errs[peer] else ""
            )
            print(f"  {scenario:<8} {peer:<20} n={n:<7} {took[peer]:6.1f} s  {status}")
            if errs[peer]:
                failed = f"{len(errs[peer])} of {args.repeats} runs failed"
                errors.append(f"{peer} / {scenario}: {failed}: {errs[peer][0]}")
    print(f"total {time.perf_counter() - t_all:.0f} s\n")

    # The table: one row per figure, one column per peer, then the ratios.
    # the peers proper: not osiiso_mp, the floor, nor a skeleton (those are not in PEERS)
    others = [p for p in peers if p in PEERS and p not in ("osiiso_mp", FLOOR)]
    header = ["scenario", *peers, "osiiso_mp vs best peer", "osiiso_mp vs bare pipe"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, scenario, metric, higher, fmt in ROWS:
        if scenario not in raw:
            continue
        medians: dict[str, float] = {}
        cells = [label]
        for peer in peers:
            entry = raw[scenario].get(peer, {"runs": []})
            vals = [r[metric] for r in entry["runs"] if metric in r]
            if vals:
                medians[peer] = statistics.median(vals)
            cells.append(_fmt_cell(vals, fmt))

        def ratio(
            ref: str | None, medians: dict[str, float] = medians, higher: bool = higher
        ) -> str:
            ours = medians.get("osiiso_mp")
            if ours is None or ref is None or ref not in medians:
                return "n/a"
            other = medians[ref]
            value = ours / other if higher else other / ours
            return f"{value:.2f}x ({ref})" if value >= 0.1 else f"{value:.2g}x ({ref})"

        ranked = [p for p in others if p in medians]
        best = None
        if ranked:
            best = (max if higher else min)(ranked, key=lambda p: medians[p])
        cells += [ratio(best), ratio(FLOOR if FLOOR in peers else None)]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print(
        "\nmedians of the repeats, ± half the spread (max - min) / median; ratio > 1 means "
        "osiiso_mp is better (more per second, or less time);\n'best peer' excludes the bare "
        "pipe floor."
    )
    slow = [p for p in peers if p in SLOW_MAP_PEERS]
    if "map" in raw:
        n_map = {p: raw["map"][p]["n"] for p in peers if p in raw["map"]}
        print(f"map sizes (items): {', '.join(f'{p} {n:,}' for p, n in n_map.items())}")
        if slow:
            why = "map with chunksize=1, so over fewer items; the figure is a rate"
            print(f"  ({', '.join(slow)} {why})")
    print("peers:")
    for p in peers:
        print(f"  {p}: {known[p].notes}")
    if errors:
        print("errors:")
        for e in errors:
            print(f"  {e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": command, "procs": args.procs, "results": raw}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
