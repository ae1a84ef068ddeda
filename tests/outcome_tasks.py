"""Task functions with each outcome, for the tests that count outcomes (``stats()``'s
counters, the exports of a summary). Module-level, so workers import them by reference."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["die", "fail", "fail_once", "nap"]


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
