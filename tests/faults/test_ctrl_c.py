"""Ctrl-C in the parent, delivered as a terminal does: SIGINT to the whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from fault_support import gone

SCRIPT = Path(__file__).parent / "scripts" / "ctrl_c.py"


def read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> str:
    """The next stdout line starting with ``prefix``."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    err = ""
    try:  # at end of file the script is exiting: wait for it, then read why
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc.poll() is not None and proc.stderr is not None:
        err = proc.stderr.read()  # a stalled script's stacks (faulthandler), or its traceback
    raise AssertionError(f"no {prefix!r} line from the script (exit {proc.poll()})\n{err}")


@pytest.mark.timeout(90)
def test_ctrl_c_cancels_kills_and_leaves_nothing(start_method: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), start_method],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        pids = [int(p) for p in read_line(proc, "pids").split()[1:]]
        tree = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        read_line(proc, "ready")
        time.sleep(0.3)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        line = read_line(proc, "interrupted")
        assert time.monotonic() - started < 5
        assert line.split()[1:] == ["cancelled"] * 5  # running ones killed, queued cancelled
        assert read_line(proc, "after") == "after 1024"  # still usable
        read_line(proc, "ready-again")
        os.killpg(proc.pid, signal.SIGINT)  # a second Ctrl-C
        _, err = proc.communicate(timeout=20)
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in err
        assert err.count("Traceback") == 1, err  # one clean traceback, no noise from threads
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(gone(p) for p in pids + tree):
            time.sleep(0.05)
        assert all(gone(p) for p in pids + tree), "a process outlived the interrupted script"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


MAP_SCRIPT = Path(__file__).parent / "scripts" / "map_ctrl_c.py"


@pytest.mark.timeout(60)
def test_ctrl_c_inside_map_cancels_the_task_being_waited_on(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(MAP_SCRIPT), "forkserver"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        read_line(proc, "ready")
        os.killpg(proc.pid, signal.SIGINT)
        words = read_line(proc, "interrupted").split()[1:]
        assert words[:3] == ["cancelled"] * 3
        assert float(words[3]) < 5  # nothing was left running to its 60 s end
        proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
