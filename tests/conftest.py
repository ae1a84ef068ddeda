"""Shared fixtures: every test that starts workers must leave no process behind.

The fork server (one per test process, shared by every executor, by design) is not a leak;
its children (the workers) are. Nor is multiprocessing's resource tracker, which the standard
library starts once per process when a test makes a lock or a queue of a forkserver or spawn
context, and which lives until the process ends. Nor are the processes of the local Ray that
the Ray tests share (tests/cluster), except our worker actors' (``WorkerHost``), which are.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from osiiso_mp._runtime.transports._forkserver import ForkServer


def _leftovers() -> list[psutil.Process]:
    me = psutil.Process()
    server = ForkServer._instance
    server_pid = server.pid if server is not None and server.alive else None
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    tracker_pid = None if tracker is None else tracker._resource_tracker._pid
    out = []
    for proc in me.children(recursive=True):
        if proc.pid in (server_pid, tracker_pid):
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE or _ray_system(proc):
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(proc)
    return out


def _ray_system(proc: psutil.Process) -> bool:
    """Is ``proc`` one of Ray's own processes (not one of our worker actors)?"""
    if "ray" not in sys.modules:
        return False
    command = " ".join(proc.cmdline())
    if "WorkerHost" in command:
        return False
    return command.startswith("ray::") or "/ray/" in command or proc.name() in _RAY_NAMES


_RAY_NAMES = ("raylet", "gcs_server")


def wait_no_children(timeout: float = 5.0) -> list[psutil.Process]:
    """Wait until this process has no live descendants but the fork server."""
    deadline = time.monotonic() + timeout
    left = _leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _leftovers()
    return left


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail the test if it leaves a live descendant process (other than the fork server)."""
    yield
    left = wait_no_children()
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"processes left behind: {[p.pid for p in left]}"


@pytest.fixture(params=["forkserver", "spawn"])
def start_method(request: pytest.FixtureRequest) -> str:
    """Both start methods."""
    method: str = request.param
    return method


def _fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


@pytest.fixture(scope="session")
def process_wide_resources() -> None:
    """Create what the first executor of a process creates once and keeps: the worker
    server (a control socket and a reader thread) and libuv's global signal-lock pipe."""
    from osiiso_mp import Executor

    with Executor(procs=1) as ex:
        ex.submit(abs, 1).result(timeout=60)


@pytest.fixture(autouse=True)
def parent_resources_back_to_baseline(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fault tests (tests/faults) also fail if they leave descriptors or threads behind in
    the parent. The baseline is taken after the process-wide resources exist."""
    if "faults" not in request.node.path.parts:
        yield
        return
    request.getfixturevalue("process_wide_resources")
    fds, threads = _fds(), threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_fds() > fds or threading.active_count() > threads):
        time.sleep(0.05)
    assert _fds() <= fds, f"descriptors leaked: {_fds()} open, {fds} before the test"
    names = [t.name for t in threading.enumerate()]
    assert threading.active_count() <= threads, f"threads leaked: {names}"
