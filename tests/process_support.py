"""Helpers shared by every test suite that watches real processes (tests/ is on the
import path: pytest puts the directory of tests/conftest.py there)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psutil


def gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie counts as exited)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll ``cond`` every 20 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """:func:`wait_for` ``cond``, failing the test with ``what`` when it never holds."""
    if not wait_for(cond, timeout):
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_written(path: Path, timeout: float = 10.0) -> str:
    """The text of ``path`` once a task has written some: it may exist empty for a moment,
    between the writer's open and its write (a reader that only waits for it to exist may
    read ''); fail the test if none comes within ``timeout`` seconds."""
    wait_until(lambda: path.exists() and path.read_text() != "", f"{path} to be written", timeout)
    return path.read_text()
