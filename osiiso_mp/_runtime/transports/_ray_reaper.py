"""What a Ray started by the executor leaves behind, undone.

:class:`Residue`: what ``ray.init`` and ``ray.shutdown`` change in the user's process:
the SIGTERM handler, put back as soon as Ray is up (Ray's turns SIGTERM into
``SystemExit``; the user's process keeps the disposition it had), and ``print`` and the
environment, put back after the shutdown.

:class:`Reaper`: that Ray dies with the user's process, even a SIGKILLed one.

Ray's own fate-sharing ends the actors, the raylet and the GCS when the driver that
started them dies, but two of its agents linger for about a minute. So, once a Ray of the
executor's own is up, a small reaper process watches the user's process: it polls its own
parent pid from its first instruction, and once the parent is gone (the reaper is
reparented) it kills every process Ray started for us (matched by pid and start time, so
that a reused pid is never hit) and exits. A clean shutdown stops the reaper first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

__all__ = ["Reaper", "Residue", "ray_processes"]

# the reaper's program: bound to its parent before anything else, then watching it
_PROGRAM = """
import os, sys, time

parent = int(sys.argv[1])
while os.getppid() == parent:  # (a parent that died while we started: at once)
    time.sleep(0.25)
import json

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


class Residue:
    """What ``ray.init`` and ``ray.shutdown`` change in the driver's process, taken before
    a Ray this transport starts: the SIGTERM handler (:meth:`keep_signals`, right after
    ``ray.init``, from the main thread), then the builtin ``print`` (replaced at shutdown)
    and the environment variables Ray sets (:meth:`restore`, after the shutdown)."""

    def __init__(self) -> None:
        import builtins

        self._print = builtins.print
        self._environ = dict(os.environ)
        main = threading.current_thread() is threading.main_thread()
        self._sigterm = signal.getsignal(signal.SIGTERM) if main else None

    def keep_signals(self) -> None:
        """Put back the SIGTERM handler ``ray.init`` replaced (where it could: it installs
        one only from the main thread). Ray's raises ``SystemExit`` and is left installed
        after ``ray.shutdown``; without it a SIGTERM does what it did before, and what Ray
        started still dies with this process (its fate-sharing, and the :class:`Reaper`)."""
        if self._sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._sigterm)

    def restore(self) -> None:
        """Put back ``print`` and the environment (after ``ray.shutdown``, any thread)."""
        import builtins

        builtins.print = self._print
        for name in set(os.environ) - set(self._environ):
            del os.environ[name]
        for name, value in self._environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
