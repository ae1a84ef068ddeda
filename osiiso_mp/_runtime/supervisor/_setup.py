"""Setting a worker up, and what comes back from it that is not about a task: the
:class:`.._messages.Configure` it starts from, the initializer pickled once for all, and
the log records it forwards."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from .._title import worker_title
from ..protocol._messages import Configure, LogRecorded
from ._common import USAGE_EVERY

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..._config import ExecutorConfig
    from ..protocol._buffers import PassedFd
    from ..transports import Capabilities, WorkerLink
    from ._view import WorkerView

__all__ = ["configure", "dumps_initializer", "executor_number", "forward_log"]

_executors = itertools.count(1)


def executor_number() -> int:
    """The next executor's number in this process (1, 2, ...), as its workers' titles show
    it: ``osiiso_mp worker 3 (executor 1, parent 12345)``."""
    return next(_executors)


def configure(
    config: ExecutorConfig,
    caps: Capabilities,
    slot: int,
    link: WorkerLink,
    initializer: bytes | None,
    inherited: tuple[PassedFd, ...],
    env: tuple[tuple[str, str], ...],
    executor: int,
) -> Configure:
    """A worker's set-up: what every worker takes, and, on our host (the transport says),
    our ``sys.path``, working directory, environment, CPUs and descriptors. ``executor``
    is the executor's number (:func:`executor_number`), for the worker's process title."""
    local = caps.same_host
    affinity = config.cpu_affinity if local else None
    return Configure(
        worker_id=slot,
        parent_pid=link.parent_pid if local else None,
        sys_path=tuple(sys.path) if local else None,
        cwd=os.getcwd() if local else None,
        concurrency=config.concurrency,
        initializer=initializer,
        log_level=logging.getLogger().getEffectiveLevel(),
        env=(*os.environ.items(), *env) if local else env,
        cpu_affinity=(None if affinity is None else tuple(sorted(affinity[slot % len(affinity)]))),
        nice=config.nice,
        max_rss=config.max_rss,
        authkey=_authkey(),
        inherited=inherited if local else (),
        whole_env=local,
        shared_memory=caps.shared_memory,
        report_usage=None if caps.local_pids else USAGE_EVERY,
        title=worker_title(slot, executor, os.getpid(), None if local else socket.gethostname()),
    )


def forward_log(w: WorkerView, msg: LogRecorded) -> None:
    """Hand a worker's log record to the parent's logger of the same name, with the
    task's id and name and the worker's id and pid attached."""
    logger = logging.getLogger(msg.name)
    if not logger.isEnabledFor(msg.levelno):
        return
    task = None if msg.seq is None else w.sent.get(msg.seq)
    task_id = None if task is None else task.task_id
    if task is not None and task.chunk is not None and msg.item is not None:
        task_id = task.chunk.item_id(msg.item)
    record = logging.makeLogRecord(
        {
            "name": msg.name,
            "levelno": msg.levelno,
            "levelname": logging.getLevelName(msg.levelno),
            "msg": msg.message,
            "created": msg.created,
            "msecs": (msg.created % 1) * 1000,
            "pathname": msg.pathname,
            "filename": os.path.basename(msg.pathname),
            "module": os.path.splitext(os.path.basename(msg.pathname))[0],
            "lineno": msg.lineno,
            "funcName": msg.func_name,
            "exc_text": msg.exc_text,
            "process": w.pid,
            "processName": f"osiiso_mp-worker-{w.id}",
            "task_id": task_id,
            "task_name": None if task is None else task.name,
            "worker": w.id,
            "worker_pid": w.pid,
        }
    )
    logger.handle(record)


def _authkey() -> bytes:
    """This process's multiprocessing authkey, which workers take (as a child process of
    ours would inherit it) so that manager proxies in tasks' arguments and results connect."""
    from multiprocessing import process

    return bytes(process.current_process().authkey)


def dumps_initializer(
    init: Callable[..., object], initargs: tuple[Any, ...]
) -> tuple[bytes, list[int]]:
    """Pickle the initializer once, every worker unpickles and calls it; with the
    descriptors that multiprocessing objects among ``initargs`` hand to each worker (see
    ``_inherit``: they travel as process arguments do for ``ProcessPoolExecutor``)."""
    from .._inherit import dumps_inherited
    from ..protocol._serialize import dumps_task

    def dumps() -> bytes:
        data, _ = dumps_task(init, initargs, {}, out_of_band=False)
        assert type(data) is bytes
        return bytes(data)

    return dumps_inherited(dumps, (init, initargs, {}))
