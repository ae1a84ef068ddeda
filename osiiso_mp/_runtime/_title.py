"""Process titles: what each of our processes says it is in ``ps`` and ``top``.

Two names per process, in a stable format (documented in ``docs/guides/cli.md``):

====================  ==================================================  ==================
process               command line (``ps -ef``, ``/proc/<pid>/cmdline``)  name (``top``, comm)
====================  ==================================================  ==================
a local worker        ``osiiso_mp worker 3 (executor 1, parent 12345)``   ``osiiso-w3``
the fork server       ``osiiso_mp fork server (parent 12345)``            ``osiiso-forksrv``
a worker on Ray       ``ray::WorkerHost.serve osiiso_mp worker 3 (...)``  Ray's, unchanged
====================  ==================================================  ==================

``worker 3`` is the worker's slot (0 to ``procs - 1``: a replacement keeps its slot),
``executor 1`` the first executor the parent made, ``parent`` the pid of the user's process
(the one that made the executor; ``parent 12345 on host`` when the worker runs on another
host). The name (comm) holds 15 bytes at most: slots up to 9,999,999 fit.

The command line is set with the ``setproctitle`` package (a runtime dependency), imported
only here, in the fork server and the workers: never in the user's process. Without it, only
the name is set (``prctl(PR_SET_NAME)``). A title is cosmetic: nothing here ever raises.
The environment block is left as it was (``SPT_NOENV``), so ``/proc/<pid>/environ`` stays
readable; the title then has the room of the original command line, which is long for our
processes (``python -c "..."``).
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "SERVER_COMM",
    "server_title",
    "set_title",
    "worker_comm",
    "worker_title",
]

SERVER_COMM = "osiiso-forksrv"
"""The fork server's name (comm), as ``top`` shows it."""

_PR_SET_NAME = 15


def worker_title(slot: int, executor: int, parent: int, host: str | None = None) -> str:
    """A worker's command line: ``osiiso_mp worker 3 (executor 1, parent 12345)``, with
    ``on HOST`` after the parent's pid when the worker runs on another host."""
    where = f"parent {parent}" if host is None else f"parent {parent} on {host}"
    return f"osiiso_mp worker {slot} (executor {executor}, {where})"


def worker_comm(slot: int) -> str:
    """A worker's name (comm, 15 bytes at most): ``osiiso-w3``."""
    return f"osiiso-w{slot}"[:15]


def server_title(parent: int) -> str:
    """The fork server's command line: ``osiiso_mp fork server (parent 12345)``."""
    return f"osiiso_mp fork server (parent {parent})"


def set_title(title: str, comm: str) -> None:
    """Show ``title`` as this process's command line and ``comm`` as its name, as far as
    this platform allows; never raises."""
    try:
        import setproctitle
    except ImportError:
        _set_comm(comm)
        return
    try:
        added = "SPT_NOENV" not in os.environ
        if added:  # read once, at the first title: keep the environment block readable
            os.environ["SPT_NOENV"] = "1"
        try:
            setproctitle.setproctitle(title)
        finally:
            if added:
                del os.environ["SPT_NOENV"]
        setproctitle.setthreadtitle(comm)  # the main thread's name is the process's name
    except Exception:
        _set_comm(comm)


def _set_comm(comm: str) -> None:
    """Set this thread's name (the process's, from the main thread) with prctl (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_NAME, comm.encode()[:15], 0, 0, 0)
    except Exception:
        pass
