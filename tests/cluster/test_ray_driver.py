"""However the driver's executor ends, no worker actor outlives it, nor the Ray it
started: a clean exit, a forced shutdown (``kill=True``), a SIGTERM and a SIGKILL of the
driver. Each driver runs in a process of its own, with a Ray of its own. The driver's
process keeps what it had before Ray: its SIGTERM disposition, ``print``, its environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from process_support import gone, wait_for

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent(
    """
    import builtins, json, os, signal, sys, time
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import psutil
    from osiiso_mp import Executor

    how = sys.argv[1]
    before = (builtins.print, dict(os.environ))
    ex = Executor(procs=2, transport="ray")
    ex.submit(sum, (1, 2)).result(timeout=120)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # not Ray's
    running = [ex.submit(time.sleep, 60) for _ in range(2)]
    time.sleep(1.0)
    me = psutil.Process()
    pids = [p.pid for p in me.children(recursive=True)]
    print(json.dumps(pids), flush=True)
    if how == "clean":
        for fut in running:
            fut.cancel()
        ex.shutdown()
    elif how == "kill":
        ex.shutdown(kill=True)
    else:
        time.sleep(600)  # waiting for the signal
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert (builtins.print, dict(os.environ)) == before
    print("done", flush=True)
    """
)


def _run_driver(how: str) -> tuple[list[int], subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "RAY_ADDRESS": "local"},  # a Ray of its own
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return json.loads(line), proc


def _alive(pids: list[int]) -> list[str]:
    left = []
    for pid in pids:
        if not gone(pid):
            try:
                left.append(" ".join(psutil.Process(pid).cmdline())[:80])
            except psutil.Error:
                pass
    return left


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["clean", "kill", "sigterm", "sigkill"])
def test_no_actor_and_no_ray_process_outlives_the_driver(how: str) -> None:
    pids, proc = _run_driver(how)
    try:
        assert len(pids) >= 5  # Ray's processes, its workers, our actors, the reaper
        if how in ("sigterm", "sigkill"):
            sig = signal.SIGTERM if how == "sigterm" else signal.SIGKILL
            os.kill(proc.pid, sig)
            proc.wait(30)
            assert proc.returncode == -sig  # Ray's handler would exit with 15
        else:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and "done" in out, err[-3000:]
        assert wait_for(lambda: not _alive(pids), 20), _alive(pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
