"""Workers and the fork server say what they are in ``ps`` and ``top``: the titles are read
back from ``/proc/<pid>/cmdline`` (what ``ps -ef`` shows) and ``/proc/<pid>/comm`` (what
``top`` shows) of real processes.

- a worker: ``osiiso_mp worker 3 (executor 1, parent 12345)``, named ``osiiso-w3``;
- the fork server: ``osiiso_mp fork server (parent 12345)``, named ``osiiso-forksrv``;
- a replacement keeps its slot's title; each executor of a process has its own number;
- the environment block stays readable (``/proc/<pid>/environ``);
- without setproctitle, the name is still set (prctl) and the command line left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from process_support import wait_until

from osiiso_mp import Executor, WorkerCrashedError
from osiiso_mp._runtime.transports._boot import ROLE_ENV
from osiiso_mp._runtime.transports._forkserver import ForkServer

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

WORKER = re.compile(r"osiiso_mp worker (\d+) \(executor (\d+), parent (\d+)\)")


def cmdline(pid: int) -> str:
    """The command line as ps shows it (arguments joined by spaces, padding dropped)."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return " ".join(part.decode() for part in raw.split(b"\0") if part)


def comm(pid: int) -> str:
    """The process's name, as top shows it."""
    return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")


def ready_pids(ex: Executor) -> dict[int, int]:
    """slot -> pid of every worker, once each has started (and so taken its title)."""

    def all_ready() -> bool:
        return all(w.pid is not None and w.state == "idle" for w in ex.stats().workers)

    wait_until(all_ready, "every worker to be ready")
    return {w.worker: w.pid for w in ex.stats().workers if w.pid is not None}


def executor_number(ex: Executor) -> int:
    """The executor's number, read from its first worker's title."""
    match = WORKER.fullmatch(cmdline(ready_pids(ex)[0]))
    assert match, cmdline(ready_pids(ex)[0])
    return int(match.group(2))


def test_workers_say_which_slot_executor_and_parent_they_serve(start_method: str) -> None:
    with Executor(procs=2, start_method=start_method) as ex:
        pids = ready_pids(ex)
        assert sorted(pids) == [0, 1]
        number = executor_number(ex)
        for slot, pid in pids.items():
            assert cmdline(pid) == (
                f"osiiso_mp worker {slot} (executor {number}, parent {os.getpid()})"
            )
            assert comm(pid) == f"osiiso-w{slot}"
        # the pid a task reports is one of these titled processes
        fut = ex.submit(os.getpid)
        worker_pid = fut.result(timeout=30)
        assert WORKER.fullmatch(cmdline(worker_pid))


def test_the_fork_server_says_what_it_is() -> None:
    with Executor(procs=1) as ex:
        ex.submit(abs, 1).result(timeout=30)
        server = ForkServer._instance
        assert server is not None and server.alive
        assert cmdline(server.pid) == f"osiiso_mp fork server (parent {os.getpid()})"
        assert comm(server.pid) == "osiiso-forksrv"


def test_each_executor_has_its_own_number() -> None:
    with Executor(procs=1) as first, Executor(procs=1) as second:
        a, b = executor_number(first), executor_number(second)
    assert a != b and a >= 1 and b >= 1


def test_a_replacement_worker_keeps_its_slots_title() -> None:
    with Executor(procs=1) as ex:
        before = ready_pids(ex)[0]
        number = executor_number(ex)
        crashed = ex.submit(os._exit, 3).exception(timeout=30)
        assert isinstance(crashed, WorkerCrashedError)
        wait_until(lambda: ready_pids(ex)[0] != before, "a replacement worker")
        after = ready_pids(ex)[0]
        assert cmdline(after) == f"osiiso_mp worker 0 (executor {number}, parent {os.getpid()})"
        assert comm(after) == "osiiso-w0"


def test_the_environment_block_stays_readable(start_method: str) -> None:
    """setproctitle may take the environment block's memory for a long title: ours does
    not (SPT_NOENV), so /proc/<pid>/environ still shows the environment a worker began
    with (the fork server's, which is marked)."""
    with Executor(procs=1, start_method=start_method) as ex:
        pid = ready_pids(ex)[0]
        assert WORKER.fullmatch(cmdline(pid))
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"{ROLE_ENV}=1".encode() in environ
        # and the worker's own environment is the parent's (Configure replaced it)
        assert ex.submit(os.environ.get, ROLE_ENV).result(timeout=30) is None
        assert ex.submit(os.environ.get, "SPT_NOENV").result(timeout=30) is None


FALLBACK = """
import os, sys
from pathlib import Path
from osiiso_mp import Executor
from osiiso_mp._runtime.transports._forkserver import ForkServer

def read(pid):
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    title = " ".join(p.decode() for p in raw.split(b"\\0") if p)
    return title, Path(f"/proc/{pid}/comm").read_text().strip()

with Executor(procs=1, start_method=sys.argv[1]) as ex:
    pid = ex.submit(os.getpid).result(timeout=30)
    print(*read(pid), sep="|")
    print(*read(ForkServer._instance.pid), sep="|")
"""


def test_without_setproctitle_the_names_are_still_set(tmp_path: Path, start_method: str) -> None:
    """A ``setproctitle`` that cannot be imported (first on the path of the processes
    started) leaves the command lines as they were; the names are set all the same."""
    (tmp_path / "setproctitle.py").write_text('raise ImportError("no setproctitle here")\n')
    script = tmp_path / "fallback.py"
    script.write_text(textwrap.dedent(FALLBACK))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.run(
        [sys.executable, str(script), start_method],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    worker, server = (line.split("|") for line in proc.stdout.splitlines())
    assert worker[1] == "osiiso-w0"
    assert server[1] == "osiiso-forksrv"
    assert "osiiso_mp worker" not in worker[0] and " -c " in worker[0]
    assert "osiiso_mp fork server" not in server[0] and " -c " in server[0]
