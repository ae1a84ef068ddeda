"""What per-attempt telemetry costs on the no-op hot path.

Telemetry is always on, so it is measured by its parts, each timed over many repetitions:

- worker side: the two snapshots around each attempt (``getrusage`` + ``pread`` of
  ``/proc/self/statm``) and turning them into figures (``Meter.snapshot``/``Meter.measure``);
- supervisor side: building the ``Attempt`` and the ``TaskResult`` for each task;

and set against the measured cost of one no-op task (1 / throughput, on a warm pool). The
ratio is the share of the no-op budget telemetry takes.

    python benchmarks/bench_telemetry.py [--procs 2] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import time
import timeit

from osiiso_mp import Executor
from osiiso_mp._bench import noop
from osiiso_mp._results import make_attempt, make_result
from osiiso_mp._runtime.worker._telemetry import Meter


def per_call_us(stmt: object, number: int = 200_000) -> float:
    """Microseconds per call of ``stmt`` (best of 5)."""
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def worker_side_us() -> float:
    """The two snapshots and the measurement around one attempt."""
    meter = Meter()

    def attempt() -> None:
        start = meter.snapshot()
        meter.measure(start)

    return per_call_us(attempt)


def supervisor_side_us() -> float:
    """Building one Attempt and one TaskResult, as the supervisor does per task."""

    def records() -> None:  # the constructors the supervisor uses, with keywords as there
        a = make_attempt(
            number=1, worker=0, pid=123, queued_for=0.001, started_at=1.0, finished_at=1.1,
            duration=0.1, cpu_time=0.05, peak_rss=1 << 20, rss_delta=0, outcome="succeeded",
            error="", exit_code=None,
        )  # fmt: skip
        make_result(
            task_id="0" * 32, name="noop", status="succeeded", value=None, exception=None,
            attempts=1, priority=3, must_complete=False, group_id=None, detached=False,
            created_at=0.9, started_at=1.0, finished_at=1.1, duration=0.1, message="",
            metadata=None, attempt_log=(a,),
        )  # fmt: skip

    return per_call_us(records)


def noop_task_us(procs: int, tasks: int) -> float:
    """Wall microseconds per no-op task, submit-all-then-wait, on a warm pool (best of 3)."""
    best = float("inf")
    with Executor(procs=procs) as ex:
        for f in [ex.submit(noop) for _ in range(1000)]:
            f.result()
        for _ in range(3):
            start = time.perf_counter()
            for f in [ex.submit(noop) for _ in range(tasks)]:
                f.result()
            best = min(best, (time.perf_counter() - start) / tasks * 1e6)
    return best


def main() -> None:
    """Print the parts, the per-task budget and the share."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    worker = worker_side_us()
    supervisor = supervisor_side_us()
    task = noop_task_us(args.procs, args.tasks)
    # worker-side work runs on procs workers in parallel; the supervisor's is serial
    share = (worker / args.procs + supervisor) / task
    print(f"worker side, per attempt:      {worker:6.2f} us (Meter.snapshot + measure)")
    print(f"supervisor side, per task:     {supervisor:6.2f} us (Attempt + TaskResult)")
    print(f"one no-op task, procs={args.procs}:     {task:6.2f} us ({1e6 / task:,.0f} tasks/s)")
    print(f"telemetry share of the no-op budget: {share:.1%}")


if __name__ == "__main__":
    main()
