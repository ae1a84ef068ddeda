"""The public names in a fresh interpreter: what importing them loads, and what the first
executor starts (moved from tests/unit: these start processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from osiiso_mp._runtime.transports import _boot


def _printed_by(code: str) -> list[str]:
    """The words ``code`` prints, run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.split()


def test_worker_modules_do_not_load_the_facades() -> None:
    # workers and the fork server import osiiso_mp._runtime (and so osiiso_mp itself):
    # the executors, records, psutil and cloudpickle (needed only for what plain pickle
    # cannot do) must not come with it (fresh interpreters start faster), while
    # `from osiiso_mp import Executor` still works as before
    code = (
        "import sys; from osiiso_mp._runtime.worker import _entry; "
        "from osiiso_mp._runtime.transports import _forkserver; "
        "heavy = [m for m in ('osiiso_mp._executor', 'osiiso_mp._async', "
        "'osiiso_mp._results', 'osiiso_mp._summary', "
        "'psutil', 'cloudpickle') if m in sys.modules]; "
        "print(heavy); from osiiso_mp import Executor, TaskResult; print(Executor.__name__)"
    )
    assert _printed_by(code) == ["[]", "Executor"]


def test_nothing_starts_before_the_first_executor() -> None:
    # `import osiiso_mp` and looking up every public name start no process and no thread;
    # the first executor starts the process's fork server, and the next one uses it too
    code = (
        "import threading, psutil, osiiso_mp; me = psutil.Process(); "
        "names = [getattr(osiiso_mp, n) for n in osiiso_mp.__all__]; "
        "print(len(me.children()), threading.active_count()); "
        "from osiiso_mp import Executor; "
        "ex = Executor(procs=1); print(ex.submit(abs, -3).result(timeout=30)); "
        "server = ex._core.sup.transport._server.pid; ex.shutdown(); "
        "ex = Executor(procs=1); print(ex.submit(abs, -4).result(timeout=30)); "
        "print(ex._core.sup.transport._server.pid == server); ex.shutdown()"
    )
    assert _printed_by(code) == ["0", "1", "3", "4", "True"]


def test_the_fork_server_keeps_no_inheritable_descriptor_of_the_user_process() -> None:
    # the server is started with posix_spawn, which passes on every inheritable descriptor:
    # it closes them, so a pipe's reader here still sees end-of-file when we close our
    # write end (and neither the server nor its workers hold it open)
    code = (
        "import os, select; r, w = os.pipe(); os.set_inheritable(w, True); "
        "from osiiso_mp import Executor; ex = Executor(procs=1); "
        "print(ex.submit(abs, -2).result(timeout=30)); os.close(w); "
        "ready, _, _ = select.select([r], [], [], 10); "
        "print(bool(ready) and os.read(r, 1) == b''); ex.shutdown()"
    )
    assert _printed_by(code) == ["2", "True"]


@pytest.mark.timeout(60)
def test_the_server_starts_through_subprocess_where_posix_spawn_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a platform whose posix_spawn cannot start a session: the server is started through
    # subprocess instead, still in a session of its own, and still exits at end-of-file
    def no_setsid(*args: object, **kwargs: object) -> int:
        raise NotImplementedError("no POSIX_SPAWN_SETSID here")

    monkeypatch.setattr(os, "posix_spawn", no_setsid)
    pid, ours = _boot.launch()
    try:
        assert os.getsid(pid) == pid
    finally:
        ours.close()
    popen: Any = _boot._popens.pop(pid)  # reaped through its Popen, which then knows it
    assert popen.wait(timeout=30) == 0


def test_looking_up_the_executor_loads_no_runtime() -> None:
    # the executor's class comes without asyncio, the supervisor or the protocol: the
    # constructor launches the fork server first, and imports those while it boots
    code = (
        "import sys, osiiso_mp; osiiso_mp.Executor; "
        "print([m for m in ('asyncio', 'uvloop', 'osiiso_mp._core', "
        "'osiiso_mp._runtime.supervisor', 'osiiso_mp._runtime.protocol._framing', "
        "'multiprocessing', 'osiiso_mp._future') "
        "if m in sys.modules])"
    )
    assert _printed_by(code) == ["[]"]


# the modules loaded when the fork server is launched, printed by the launch itself
_LAUNCH_PROBE = (
    "import sys; from osiiso_mp._runtime.transports import _forkserver as fs; "
    "real = fs.launch\n"
    "def launch():\n"
    "    print(sorted(m for m in ('asyncio', 'uvloop', 'osiiso_mp._core', "
    "'osiiso_mp._runtime.supervisor') if m in sys.modules))\n"
    "    return real()\n"
    "fs.launch = launch\n"
)


@pytest.mark.timeout(60)
def test_the_fork_server_boots_while_the_executor_imports_its_runtime() -> None:
    code = _LAUNCH_PROBE + (
        "from osiiso_mp import Executor\n"
        "with Executor(procs=1) as ex: print(ex.submit(abs, -5).result(timeout=30))\n"
        "import psutil; print(len(psutil.Process().children()))\n"  # only the server
    )
    assert _printed_by(code) == ["[]", "5", "1"]


@pytest.mark.timeout(60)
def test_the_async_executor_launches_the_server_before_its_runtime_too() -> None:
    code = _LAUNCH_PROBE + (
        "import asyncio\n"
        "from osiiso_mp import AsyncExecutor\n"
        "async def main():\n"
        "    async with AsyncExecutor(procs=1) as ex: print(await ex.submit(abs, -6))\n"
        "asyncio.run(main())\n"
    )
    assert _printed_by(code) == ["['asyncio']", "6"]


@pytest.mark.timeout(60)
def test_an_executor_that_fails_after_the_launch_leaves_the_server_to_the_next() -> None:
    # the server is launched before the runtime is built: if building fails, the server
    # is the process's one all the same (one, and used by the next executor)
    code = (
        "import psutil, osiiso_mp\n"
        "from osiiso_mp._runtime.transports import _local\n"
        "real = _local.LocalTransport.__init__\n"
        "def broken(self, **kw): raise OSError('no transport today')\n"
        "_local.LocalTransport.__init__ = broken\n"
        "try: osiiso_mp.Executor(procs=1)\n"
        "except OSError as exc: print('refused')\n"
        "me = psutil.Process(); first = [p.pid for p in me.children()]; print(len(first))\n"
        "_local.LocalTransport.__init__ = real\n"
        "with osiiso_mp.Executor(procs=1) as ex: print(ex.submit(abs, -7).result(timeout=30))\n"
        "print([p.pid for p in me.children()] == first)\n"
    )
    assert _printed_by(code) == ["refused", "1", "7", "True"]


@pytest.mark.timeout(60)
def test_sqlite3_loads_only_with_a_checkpoint() -> None:
    code = (
        "import sys\n"
        "from osiiso_mp import Executor\n"
        "with Executor(procs=1) as ex:\n"
        "    print(list(ex.map(abs, [-1, -2])), ex.group(abs, [-3]).values())\n"
        "    print('sqlite3' in sys.modules)\n"
        "    from osiiso_mp import Checkpoint\n"
        "    with Checkpoint() as ck: print(list(ex.map(abs, [-4], checkpoint=ck)))\n"
        "    print('sqlite3' in sys.modules)\n"
    )
    assert _printed_by(code) == ["[1,", "2]", "[3]", "False", "[4]", "True"]
