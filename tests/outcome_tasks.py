"""Task functions with each outcome, for the tests that count outcomes (``stats()``'s
counters, the exports of a summary), and one that waits for the test to let it end.
Module-level, so workers import them by reference."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = ["die", "fail", "fail_once", "gated_return", "nap"]


def fail(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


def fail_once(marker: str) -> str:
    """Fail on the first attempt, succeed on the next."""
    if not os.path.exists(marker):
        Path(marker).touch()
        raise RuntimeError("first attempt fails")
    return "ok"


def die() -> None:
    """End the worker process, as a crash would."""
    os._exit(3)


def nap(seconds: float) -> float:
    """Sleep ``seconds``."""
    time.sleep(seconds)
    return seconds


def gated_return(gate: str, value: Any, limit: float = 10.0) -> Any:
    """Wait until the file ``gate`` exists (at most ``limit`` seconds), then return ``value``:
    a task that ends when the test says so, not after a guess at how long the test needs."""
    deadline = time.monotonic() + limit
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.005)
    return value
