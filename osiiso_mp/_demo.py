"""``python -m osiiso_mp demo``: a small batch that shows what a run records, in seconds.

Sixteen CPU-bound tasks, one flaky task that needs a retry, one that fails, one that times
out and one whose worker crashes. The demo says what it is about to do, runs the batch,
prints the run's summary (:meth:`RunSummary.display`), a line of outcomes, a one-line
telemetry digest, and where to look next. The task functions live in this module so that
workers import them by name.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import Counter

from . import Executor, Retry, RunSummary
from ._errors import format_bytes
from ._resources import cpu_budget

__all__ = ["burn", "crash", "digest", "flaky_fetch", "outcomes", "parse_data", "run_demo"]

BURNS = 16
"""How many CPU-bound tasks the demo batch has."""

SLOW_TIMEOUT = 0.5
"""The ``timeout`` of the demo's slow task, in seconds."""

NEXT_STEPS = (
    ("docs/quickstart.md", "submit, map, run() and the summary, step by step"),
    ("examples/quickstart.ipynb", "a notebook: the live view, HTML summary, SVG timeline"),
    ("python -m osiiso_mp info", "what this machine gives the pool: CPU budget, cgroup limits"),
)
"""The "where to look next" lines: (what, why)."""


def burn(n: int) -> int:
    """CPU-bound work: a sum of squares."""
    return sum(i * i for i in range(n))


def flaky_fetch(marker: str) -> str:
    """Fails on its first attempt (asking for a retry), succeeds on the next."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise Retry(delay=0.1, reason="connection reset by peer")
    return "fetched"


def parse_data() -> None:
    """Always fails."""
    raise ValueError("Invalid JSON at line 42")


def crash() -> None:
    """Kills its own worker process, as a segfaulting extension would."""
    os._exit(139)


def outcomes(summary: RunSummary) -> str:
    """One line counting how the tasks ended: succeeded (and how many needed a retry), and
    the failures by cause: raised, timed out, crashed, memory cap."""
    retried = sum(r.attempts > 1 for r in summary.successes())
    causes: Counter[str] = Counter(
        r.attempt_log[-1].outcome if r.attempt_log else "failed" for r in summary.errors
    )
    parts = [f"{summary.succeeded} succeeded ({retried} after a retry)"]
    failed = [
        f"{causes[outcome]} {label}"
        for outcome, label in (
            ("failed", "raised"),
            ("timed_out", "timed out"),
            ("crashed", "crashed"),
            ("memory_exceeded", "over max_rss"),
        )
        if causes[outcome]
    ]
    parts.append(f"{summary.failed} failed" + (f": {', '.join(failed)}" if failed else ""))
    parts.append(f"{summary.cancelled} cancelled")
    return "outcomes: " + "; ".join(parts)


def _percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def digest(summary: RunSummary) -> str:
    """A one-line telemetry digest: attempts, mean and 95th-percentile attempt duration,
    total CPU time and parallel efficiency, peak RSS of an attempt, slowest task."""
    t = summary.telemetry
    durations = [
        a.duration for r in summary.results for a in r.attempt_log if a.started_at is not None
    ]
    mean = sum(durations) / len(durations) if durations else 0.0
    slowest = f"; slowest {t.slowest[0].name} {t.slowest[0].duration:.2f}s" if t.slowest else ""
    return (
        f"telemetry: {t.attempts} attempts ({t.retries} retried); attempt duration mean "
        f"{mean:.3f}s, p95 {_percentile(durations, 95):.3f}s; {t.cpu_seconds:.2f} CPU s "
        f"on {summary.procs} workers (efficiency {t.efficiency:.0%}); "
        f"peak RSS {format_bytes(t.peak_rss)}{slowest}"
    )


def run_demo(procs: int | None = None) -> RunSummary:
    """Run the demo batch on ``procs`` workers (``None``: the CPU budget, at most 4) and
    print its story; return the summary."""
    if procs is None:
        procs = min(4, cpu_budget())
    started = time.perf_counter()
    total = BURNS + 4
    print(f"osiiso_mp demo: {total} tasks on {procs} worker processes")
    print(f"  {BURNS} x burn     CPU-bound sums of squares; they succeed")
    print("  fetch-api     fails once (connection reset) and asks for a retry: retries=2")
    print("  parse-data    raises ValueError every time")
    print(f"  slow-report   sleeps 30 s with timeout={SLOW_TIMEOUT}: killed, worker replaced")
    print("  native-ext    kills its own worker with os._exit(139): worker replaced")
    print()
    with tempfile.TemporaryDirectory() as tmp, Executor(procs=procs) as ex:
        for i in range(BURNS):
            ex.options(name=f"burn-{i}").submit(burn, 400_000)
        ex.options(name="fetch-api", retries=2).submit(flaky_fetch, os.path.join(tmp, "m"))
        ex.options(name="parse-data").submit(parse_data)
        ex.options(name="slow-report", timeout=SLOW_TIMEOUT).submit(time.sleep, 30)
        ex.options(name="native-ext").submit(crash)
        summary = ex.run()
    print("summary.display():")
    summary.display()
    print(outcomes(summary))
    print(digest(summary))
    print(f"the whole demo took {time.perf_counter() - started:.2f}s, pool start-up included")
    print()
    print("where to look next:")
    width = max(len(what) for what, _ in NEXT_STEPS)
    for what, why in NEXT_STEPS:
        print(f"  {what:<{width}}  {why}")
    print(f"  {'in code':<{width}}  summary.errors, summary.to_json(), summary.timeline()")
    return summary
