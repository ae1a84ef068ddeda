"""The floors under osiiso_mp's per-task path on this machine, beside the path itself.

    python benchmarks/bench_floors.py [--calls 3000] [--repeats 5]

What the design of one task at a time cannot go below, measured in one run:

- **thread hop**: a caller thread hands a call to a uvloop loop running in another thread
  (``call_soon_threadsafe``), which resolves a ``concurrent.futures.Future`` the caller
  waits on: the two GIL hand-overs every submit-and-wait through a supervisor thread costs.
- **process hop**: 100 bytes to a forked child over a socket pair and back, the caller
  blocking on the socket (no thread in between).
- **two process hops**: the caller blocking on a relay process that forwards to an echo
  process and back: the shape a supervisor in a process of its own would have.
- **the supervisor's shape**: a thread hop and a process hop together, as osiiso_mp's
  round trip has them (caller -> loop thread -> worker process -> loop thread -> caller),
  with nothing else done.
- **osiiso_mp**: the round trip of one no-op task (``submit(noop).result()``), records on.
- **start-up imports**: a fresh interpreter (``python -c pass``), the same importing
  ``asyncio`` and ``uvloop`` (what every worker runs on: the fork server imports them before
  it can fork the first worker), and the same importing what a
  ``ProcessPoolExecutor`` with forkserver imports (``concurrent.futures.process``).

Every figure is the median (p50) over ``--calls`` calls (the first 10% dropped), and the
median of ``--repeats`` such runs. Nothing here is asserted: it prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _p50(samples: list[float]) -> float:
    kept = sorted(samples[len(samples) // 10 :])
    return kept[len(kept) // 2] * 1e6


def _timed(calls: int, once: Callable[[], object]) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        once()
        samples.append(time.perf_counter() - start)
    return _p50(samples)


def _echo_child(sock: socket.socket) -> None:  # pragma: no cover - runs in the child
    while True:
        data = sock.recv(65536)
        if not data:
            os._exit(0)
        sock.sendall(data)


def _relay_child(up: socket.socket, down: socket.socket) -> None:  # pragma: no cover
    while True:
        data = up.recv(65536)
        if not data:
            os._exit(0)
        down.sendall(data)
        up.sendall(down.recv(65536))


def _relayed(calls: int, payload: bytes) -> float:
    """Caller -> relay process -> echo process -> relay -> caller, all blocking, in µs."""
    ours, relay_up = socket.socketpair()
    relay_down, echo_end = socket.socketpair()
    echo = os.fork()
    if echo == 0:  # pragma: no cover - the child
        for s in (ours, relay_up, relay_down):
            s.close()
        _echo_child(echo_end)
    relay = os.fork()
    if relay == 0:  # pragma: no cover - the child
        ours.close()
        echo_end.close()
        _relay_child(relay_up, relay_down)
    for s in (relay_up, relay_down, echo_end):
        s.close()

    def once() -> None:
        ours.sendall(payload)
        ours.recv(65536)

    try:
        return _timed(calls, once)
    finally:
        ours.close()
        os.waitpid(relay, 0)
        os.waitpid(echo, 0)


def hops(calls: int) -> dict[str, float]:
    """The thread hop, the process hop and both together, in µs (p50)."""
    import uvloop

    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def thread_hop() -> None:
        fut: cf.Future[None] = cf.Future()
        loop.call_soon_threadsafe(fut.set_result, None)
        fut.result()

    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ours.close()
        _echo_child(theirs)
    theirs.close()
    payload = b"x" * 100

    def process_hop() -> None:
        ours.sendall(payload)
        ours.recv(65536)

    out = {"thread hop": _timed(calls, thread_hop), "process hop": _timed(calls, process_hop)}
    out["two process hops (a relay process between, as a supervisor process would be)"] = _relayed(
        calls, payload
    )
    ours.setblocking(False)

    async def through_process() -> None:
        await loop.sock_sendall(ours, payload)
        await loop.sock_recv(ours, 65536)

    def both() -> None:
        asyncio.run_coroutine_threadsafe(through_process(), loop).result()

    out["thread + process hop (the supervisor's shape)"] = _timed(calls, both)
    ours.close()
    os.waitpid(pid, 0)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    return out


def osiiso_round_trip(calls: int) -> float:
    """p50 of ``submit(noop).result()`` on 2 workers, in µs."""
    import bench_tasks

    import osiiso_mp

    with osiiso_mp.Executor(procs=2) as ex:
        for _ in range(50):
            ex.submit(bench_tasks.noop).result()
        return _timed(calls, lambda: ex.submit(bench_tasks.noop).result())


def interpreter(code: str, runs: int = 9) -> float:
    """Median wall time of a fresh interpreter running ``code``, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per figure")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure")
    args = parser.parse_args(argv)
    if args.calls < 10 or args.repeats < 1:
        parser.error("--calls must be at least 10 and --repeats at least 1")

    rounds: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, value in hops(args.calls).items():
            rounds.setdefault(name, []).append(value)
        rounds.setdefault("osiiso_mp round trip (no-op task, records on)", []).append(
            osiiso_round_trip(min(args.calls, 2000))
        )
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; p50 in µs, ", end="")
    print(f"median of {args.repeats} runs (min-max)")
    print("| round trip | p50 (µs) |")
    print("|---|---|")
    for name, values in rounds.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"| {name} | {mid:,.0f} ({low:,.0f}-{high:,.0f}) |")

    bare = interpreter("pass")
    loops = interpreter("import asyncio, uvloop")
    ppe = interpreter("import concurrent.futures.process")
    print()
    print("| fresh interpreter | ms (median of 9) |")
    print("|---|---|")
    print(f"| `python -c pass` | {bare:,.1f} |")
    for what, ms in (
        ("importing asyncio and uvloop (a worker's event loop)", loops),
        ("importing concurrent.futures.process (ProcessPoolExecutor's)", ppe),
    ):
        print(f"| {what} | {ms:,.1f} (+{ms - bare:,.1f}) |")


if __name__ == "__main__":
    main()
