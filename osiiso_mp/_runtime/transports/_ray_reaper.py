"""A Ray started by the executor dies with the user's process, even a SIGKILLed one.

Ray's own fate-sharing ends the actors, the raylet and the GCS when the driver that
started them dies, but two of its agents linger for about a minute. So, once a Ray of the
executor's own is up, a small reaper process watches the user's process: it polls its own
parent pid from its first instruction, and once the parent is gone (the reaper is
reparented) it kills every process Ray started for us (matched by pid and start time, so
that a reused pid is never hit) and exits. A clean shutdown stops the reaper first.
"""

from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["Reaper", "ray_processes"]

# the reaper's program: bound to its parent before anything else, then watching it
_PROGRAM = """
import os, sys, time
parent = int(sys.argv[1])
while os.getppid() == parent:  # (a parent that died while we started: at once)
    time.sleep(0.25)
import json, signal
import psutil
for pid, started in json.loads(sys.argv[2]):
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) < 0.01:
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()
    except psutil.Error:
        pass
"""


def ray_processes(before: set[int]) -> list[tuple[int, float]]:
    """``(pid, start time)`` of this process's descendants not in ``before``: what
    ``ray.init`` started."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in before:
            continue
        try:
            found.append((proc.pid, proc.create_time()))
        except psutil.Error:
            pass
    return found


class Reaper:
    """Kills ``targets`` (``(pid, start time)`` pairs) once this process is gone."""

    def __init__(self, targets: list[tuple[int, float]]) -> None:
        import os

        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROGRAM, str(os.getpid()), json.dumps(targets)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the user's process group: Ctrl-C is not ours
        )

    def stop(self) -> None:
        """Ray was shut down cleanly: the reaper has nothing left to do."""
        self._proc.kill()
        self._proc.wait()
