"""``python -m osiiso_mp demo``: a small batch that shows what a run records.

Fifteen CPU-bound tasks, one flaky task that needs a retry, one that fails, one that times
out and one whose worker crashes; then the run's summary and a telemetry digest. The task
functions live in this module so that workers import them by name.
"""

from __future__ import annotations

import os
import tempfile
import time

from . import Executor, Retry, RunSummary
from ._resources import cpu_budget

__all__ = ["burn", "crash", "flaky_fetch", "parse_data", "run_demo"]


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


def run_demo(procs: int | None = None) -> RunSummary:
    """Run the demo batch and print its summary; return the summary."""
    procs = procs or min(4, cpu_budget())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Executor(procs=procs) as ex:
        for i in range(15):
            ex.options(name=f"burn-{i}").submit(burn, 400_000)
        ex.options(name="fetch-api", retries=2).submit(flaky_fetch, os.path.join(tmp, "m"))
        ex.options(name="parse-data").submit(parse_data)
        ex.options(name="slow-report", timeout=0.5).submit(time.sleep, 30)
        ex.options(name="native-ext").submit(crash)
        summary = ex.run()
    summary.display()
    t = summary.telemetry
    print(
        f"telemetry: {t.attempts} attempts on {procs} workers, {t.retries} retried, "
        f"{t.timeouts} timed out, {t.crashes} crashed, {t.respawns} respawned; "
        f"{t.cpu_seconds:.2f} CPU s, parallel efficiency {t.efficiency:.0%}; "
        f"wall {time.perf_counter() - started:.2f}s"
    )
    print("next: summary.errors, summary.to_json(), summary.timeline(), help(osiiso_mp)")
    return summary
