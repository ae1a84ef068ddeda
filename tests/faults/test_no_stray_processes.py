"""Nothing starts behind the user's back, and nothing outlives the user's process.

Every process here runs with a marker of its own in its environment (workers get the user
process's environment, the fork server a copy of it), so the tests can find every process a
script started, wherever it was reparented.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

MARK = "OSIISO_MP_TEST_MARK"


def marked(mark: str) -> list[psutil.Process]:
    """Live processes, anywhere on the machine, whose environment carries ``mark``."""
    found = []
    for proc in psutil.process_iter(["environ", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if (proc.info["environ"] or {}).get(MARK) == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_none_marked(mark: str, seconds: float) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    left = marked(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked(mark)
    return left


def run_env(tmp_path: Path, mark: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])  # the checkout, for osiiso_mp
    return {**os.environ, MARK: mark, "PYTHONPATH": os.pathsep.join([str(tmp_path), root])}


COUNT_SERVERS = textwrap.dedent(
    """
    import os, sys, time
    import psutil
    from osiiso_mp import Executor

    with Executor(procs=2, start_method=sys.argv[1]) as ex:
        print(sum(ex.submit(abs, -i).result(timeout=30) for i in range(6)), flush=True)
        with Executor(procs=1, start_method=sys.argv[1]) as other:
            print(other.submit(abs, -7).result(timeout=30), flush=True)
        time.sleep(1.0)  # a chain of servers would grow meanwhile
        mark = os.environ["OSIISO_MP_TEST_MARK"]
        ours = [
            p for p in psutil.process_iter(["environ"])
            if (p.info["environ"] or {}).get("OSIISO_MP_TEST_MARK") == mark
            and p.pid != os.getpid() and p.status() != psutil.STATUS_ZOMBIE
        ]
        servers = [p for p in ours if p.ppid() == os.getpid()]
        workers = [p for p in ours if p.ppid() in {s.pid for s in servers}]
        # one fork server, our child; every other process of ours is one of its workers
        print(len(servers), len(ours) == len(servers) + len(workers) <= 4, flush=True)
    """
)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("hook", ["touch", "create"])
def test_a_sitecustomize_using_osiiso_mp_leaves_one_fork_server_per_process(
    tmp_path: Path, start_method: str, hook: str
) -> None:
    """A sitecustomize.py (run by every interpreter: the user's, the fork server's, spawned
    workers') that imports osiiso_mp and touches Executor, or even makes one: exactly one
    fork server, the user process's, and nothing left once it ends."""
    body = {
        "touch": "import osiiso_mp\nosiiso_mp.Executor\n",
        "create": "import osiiso_mp\n_ex = osiiso_mp.Executor(procs=1)\n",
    }[hook]
    (tmp_path / "sitecustomize.py").write_text(body)
    script = tmp_path / "count_servers.py"
    script.write_text(COUNT_SERVERS)
    mark = uuid.uuid4().hex
    proc = subprocess.run(
        [sys.executable, str(script), start_method],
        env=run_env(tmp_path, mark),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["15", "7", "1 True"], proc.stderr
    left = wait_none_marked(mark, 5.0)
    assert not left, [(p.pid, p.cmdline()) for p in left]


PARENT = textwrap.dedent(
    """
    import sys, time
    from osiiso_mp import Executor

    ex = Executor(procs=2)
    print("made", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("delay", [0.01, 0.05, 0.1])
def test_a_parent_killed_while_its_fork_server_boots_leaves_nothing(
    tmp_path: Path, delay: float
) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=run_env(tmp_path, mark),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "made\n"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    left = wait_none_marked(mark, 2.0)
    assert not left, [(p.pid, p.cmdline()) for p in left]
