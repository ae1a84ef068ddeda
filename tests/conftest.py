"""Shared fixtures: every test that starts workers must leave no process behind.

The fork server (one per test process, shared by every executor, by design) is not a leak;
its children (the workers) are. Nor is multiprocessing's resource tracker, which the standard
library starts once per process when a test makes a lock or a queue of a forkserver or spawn
context, and which lives until the process ends. Nor are the processes of the local Ray that
the tests share (``ray_session``), except our worker actors' (``WorkerHost``), which are.

One local Ray serves the whole session: started by the first test that asks for it (the
``ray`` case of the ``transport`` fixture, or ``ray_session`` itself), shut down at the end.

``make test`` runs the suite in two processes (pytest-xdist, ``--dist loadgroup``): most
tests spend their time waiting on workers, so two at once keep a 2-core machine busy.
Whatever uses Ray, and whatever looks at what the whole machine has in ``/dev/shm`` (where
Ray keeps its object store), runs in one of them, one test after the other (the ``ray``
group, see :func:`pytest_collection_modifyitems`): one local Ray for the whole run, and
no other test's Ray in the way of a ``/dev/shm`` check.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from osiiso_mp._runtime.transports._forkserver import ForkServer

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

TESTS = Path(__file__).resolve().parent
# The folders pytest imports test modules from (rootdir-relative: a folder without an
# __init__.py is put on sys.path, a package's first folder above it). A Ray worker that
# has them on its path imports a test module by name, as a forked worker does.
TEST_PATHS = (TESTS, TESTS / "integration", TESTS / "cluster")


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


# tests of these files run in the ray group too (see the module's docstring): they look at
# /dev/shm as a whole
_WITH_RAY = ("test_buffers.py", "test_door_processes.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every test that uses Ray (a ``"ray"`` parameter, the ``ray_session`` fixture,
    ``tests/cluster``) or the machine's ``/dev/shm`` in one xdist group: under
    ``--dist loadgroup`` one process runs them all."""
    ray = pytest.mark.xdist_group("ray")
    for item in items:
        params = getattr(item, "callspec", None)
        if (
            "cluster" in item.path.parts
            or item.path.name in _WITH_RAY
            or "ray.md" in item.name  # (the docs' Ray guide: a Ray of its own)
            or "ray_session" in getattr(item, "fixturenames", ())
            or (
                params is not None
                and any(v == "ray" for v in params.params.values() if type(v) is str)
            )
        ):
            item.add_marker(ray)


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


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray (``num_cpus=2``, about 3 s to start), shared by every test that asks for
    it, shut down at the end of the session; usage statistics are off.

    Its workers inherit the raylet's environment, so ``PYTHONPATH`` is extended with the
    test folders while Ray starts (then put back): task functions defined in test modules
    travel by reference, as they do to local workers.
    """
    import ray

    for folder in TEST_PATHS:  # such a module would be imported instead of Ray's own
        assert not (folder / "ray").exists() and not (folder / "ray.py").exists(), folder
    printer = builtins.print
    saved = os.environ.get("PYTHONPATH")
    paths = [*(saved.split(os.pathsep) if saved else []), *map(str, TEST_PATHS)]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.ERROR,
            object_store_memory=100 << 20,
        )
    finally:  # the raylet has its copy: ours goes back to what it was
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        yield
    finally:
        ray.shutdown()
        builtins.print = printer  # Ray leaves a print of its own in its place


@pytest.fixture(params=["local", "ray"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both transports: the local fork server's processes, and Ray actors on the session's
    Ray (at most two at once: it has two CPUs, and each actor takes one)."""
    name: str = request.param
    if name == "ray":
        request.getfixturevalue("ray_session")
    return name


@pytest.fixture(params=["forkserver", "spawn"])
def start_method(request: pytest.FixtureRequest) -> str:
    """Both start methods."""
    method: str = request.param
    return method


@pytest.fixture(params=["forkserver", "spawn", "ray"])
def launch(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Executor keywords for each way to start workers: both local start methods, and Ray
    actors (for the tests over both start methods whose behaviour is the same on Ray)."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")
        return {"transport": "ray"}
    return {"start_method": request.param}


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
