"""Fault tests also check that the parent's descriptors and threads return to baseline.

Process-wide resources made once and kept by design are set up before the baseline: the
per-process worker server (a control socket and a reader thread) and libuv's global
signal-lock pipe (made when the first uvloop loop is created).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from osiiso_mp import Executor


def _fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


@pytest.fixture(scope="session")
def process_wide_resources() -> None:
    """Create what the first executor of a process creates once and keeps."""
    with Executor(procs=1) as ex:
        ex.submit(abs, 1).result(timeout=60)


@pytest.fixture(autouse=True)
def parent_resources_back_to_baseline(process_wide_resources: None) -> Iterator[None]:
    """Fail the test if it leaves descriptors or threads behind in the parent."""
    fds, threads = _fds(), threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_fds() > fds or threading.active_count() > threads):
        time.sleep(0.05)
    assert _fds() <= fds, f"descriptors leaked: {_fds()} open, {fds} before the test"
    left = [t.name for t in threading.enumerate()]
    assert threading.active_count() <= threads, f"threads leaked: {left}"
