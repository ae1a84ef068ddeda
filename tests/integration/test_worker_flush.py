"""What a worker sends outside its scheduling turn goes out without waiting for more.

The worker writes what a turn of its scheduler sends with one flush at the end of that turn
(``Channel.will_flush``); what is sent elsewhere (an async task's log record or result, in
a later turn of the loop) must still be written on its own, with nothing sent after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from osiiso_mp import Executor


async def log_then_wait(gate: str) -> str:
    """Log from an async task, then wait (sending nothing) until ``gate`` exists."""
    await asyncio.sleep(0.01)
    logging.getLogger("osiiso_test.flush").warning("logged while running")
    while not os.path.exists(gate):
        await asyncio.sleep(0.01)
    return "done"


async def answer_later(value: int) -> int:
    """Return ``value`` after a short sleep, in a later turn of the worker's loop."""
    await asyncio.sleep(0.05)
    return value


@pytest.mark.timeout(30)
def test_an_async_tasks_log_record_arrives_while_it_runs(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING)
    gate = tmp_path / "gate"
    with Executor(procs=1) as ex:
        fut = ex.submit(log_then_wait, str(gate))
        deadline = time.monotonic() + 10
        while not any(r.name == "osiiso_test.flush" for r in caplog.records):
            assert time.monotonic() < deadline, "the log record never arrived"
            time.sleep(0.01)
        assert not fut.done()
        gate.touch()
        assert fut.result(timeout=10) == "done"


@pytest.mark.timeout(30)
def test_async_results_arrive_between_sync_tasks() -> None:
    with Executor(procs=1, concurrency=2) as ex:
        late = [ex.submit(answer_later, i) for i in range(3)]
        assert ex.submit(abs, -1).result(timeout=10) == 1
        assert [f.result(timeout=10) for f in late] == [0, 1, 2]
