"""The errors that are also ``concurrent.futures.process``'s, for code written for
``ProcessPoolExecutor``.

They live apart from :mod:`osiiso_mp._errors` because their bases come from
``concurrent.futures.process``, whose import (multiprocessing's queues and connections, about
7 ms) workers and the fork server never need: ``_errors`` loads this module on first use of
either name.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool, _RemoteTraceback
from typing import Any

from ._errors import OsiisoError, _for_task, _rebuild, describe_exit

__all__ = ["RemoteTraceback", "WorkerCrashedError"]


class RemoteTraceback(_RemoteTraceback):
    """The traceback text of an exception raised in a worker.

    Attached as the ``__cause__`` of the exception a failed task re-raises in the parent, so
    that the worker's traceback prints below the parent's. A subclass of
    ``concurrent.futures.process._RemoteTraceback``, so that tools which recognise
    ``ProcessPoolExecutor``'s remote tracebacks recognise this one.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)  # type: ignore[arg-type]  # typeshed says TracebackType: it is str
        self.args = (tb,)

    def __str__(self) -> str:
        return self.tb


class WorkerCrashedError(OsiisoError, BrokenProcessPool):
    """The worker process running the attempt died (``os._exit``, a segfault, SIGKILL, OOM).

    ``exit_code`` is the process exit code, or minus the signal number that killed it.

    Also a ``concurrent.futures.process.BrokenProcessPool`` (hence a ``RuntimeError``), so
    that ``except BrokenProcessPool:`` written for ``ProcessPoolExecutor`` catches it. Unlike
    there, the pool is not broken: the worker is replaced and only this task failed.
    """

    def __init__(
        self,
        exit_code: int | None,
        *,
        pid: int | None = None,
        name: str | None = None,
        task_id: str | None = None,
    ) -> None:
        who = f"worker {pid}" if pid is not None else "worker"
        super().__init__(
            f"{who} died while running the task{_for_task(name, task_id)}: "
            f"{describe_exit(exit_code)}"
        )
        self.exit_code = exit_code
        self.pid = pid
        self.name = name
        self.task_id = task_id

    def __reduce__(self) -> tuple[Any, ...]:
        kw = {"pid": self.pid, "name": self.name, "task_id": self.task_id}
        return (_rebuild, (type(self), (self.exit_code,), kw))
