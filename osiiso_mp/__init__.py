"""osiiso_mp: an actor-model multiprocess executor.

A supervisor actor in your process dispatches cloudpickled callables over pipes to
persistent uvloop worker processes, records every attempt, and hands back immutable
:class:`TaskResult` records and :class:`RunSummary` objects::

    from osiiso_mp import Executor

    with Executor(procs=4) as ex:
        squares = list(ex.map(lambda x: x * x, range(10)))
        summary = ex.run()

This module only re-exports the public names (and gives the ``osiiso_mp`` logger a
``NullHandler``, as a library should: logging configuration is the application's).
"""

import logging

from ._async import AsyncExecutor, AsyncOptionsView, AsyncTaskGroup
from ._errors import (
    ClosedError,
    ExecutionError,
    MemoryLimitError,
    OsiisoError,
    QueueFullError,
    RemoteError,
    Retry,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from ._executor import Executor, OptionsView
from ._future import TaskFuture
from ._group import TaskGroup, pmap
from ._options import TaskOptions
from ._progress import ProgressEvent
from ._records import (
    Attempt,
    PoolStats,
    RunSummary,
    RunTelemetry,
    TaskInfo,
    TaskResult,
    WorkerSnapshot,
    WorkerStats,
)
from ._resources import cpu_budget
from ._version import __version__

logging.getLogger("osiiso_mp").addHandler(logging.NullHandler())

__all__ = [
    "AsyncExecutor",
    "AsyncOptionsView",
    "AsyncTaskGroup",
    "Attempt",
    "ClosedError",
    "ExecutionError",
    "Executor",
    "MemoryLimitError",
    "OptionsView",
    "OsiisoError",
    "PoolStats",
    "ProgressEvent",
    "QueueFullError",
    "RemoteError",
    "Retry",
    "RunSummary",
    "RunTelemetry",
    "SerializationError",
    "TaskFuture",
    "TaskGroup",
    "TaskInfo",
    "TaskOptions",
    "TaskResult",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerSnapshot",
    "WorkerStats",
    "__version__",
    "cpu_budget",
    "pmap",
]
