"""osiiso_mp: an actor-model multiprocess executor.

A supervisor actor in your process dispatches cloudpickled callables over pipes to
persistent uvloop worker processes, records every attempt, and hands back immutable
:class:`TaskResult` records and :class:`RunSummary` objects::

    from osiiso_mp import Executor

    with Executor(procs=4) as ex:
        squares = list(ex.map(lambda x: x * x, range(10)))
        summary = ex.run()

This module only re-exports the public names.
"""

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
from ._records import Attempt, RunSummary, RunTelemetry, TaskInfo, TaskResult, WorkerStats
from ._resources import cpu_budget
from ._version import __version__

__all__ = [
    "Attempt",
    "ClosedError",
    "ExecutionError",
    "Executor",
    "MemoryLimitError",
    "OptionsView",
    "OsiisoError",
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
    "WorkerStats",
    "__version__",
    "cpu_budget",
    "pmap",
]
