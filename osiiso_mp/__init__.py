"""osiiso_mp: an actor-model multiprocess executor.

A supervisor actor in your process dispatches cloudpickled callables over pipes to
persistent uvloop worker processes, records every attempt, and hands back immutable
:class:`TaskResult` records and :class:`RunSummary` objects::

    from osiiso_mp import Executor

    with Executor(procs=4) as ex:
        squares = list(ex.map(lambda x: x * x, range(10)))
        summary = ex.run()

This module only re-exports the public names, loading each on first use (and gives the
``osiiso_mp`` logger a ``NullHandler``, as a library should: logging configuration is the
application's).
"""

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._async import AsyncExecutor, AsyncOptionsView
    from ._async_group import AsyncTaskGroup
    from ._callables import LargeCallableWarning
    from ._checkpoint import Checkpoint, CheckpointRecord
    from ._checkpoint_schema import CheckpointError
    from ._errors import (
        ClosedError,
        ExecutionError,
        InternalError,
        MemoryLimitError,
        OsiisoError,
        QueueFullError,
        RemoteError,
        Retry,
        SerializationError,
        TaskTimeoutError,
        ValueReleasedError,
        WorkerCrashedError,
    )
    from ._executor import Executor, OptionsView
    from ._future import TaskFuture
    from ._group import TaskGroup, pmap
    from ._progress import ProgressEvent
    from ._resources import cpu_budget
    from ._results import Attempt, TaskResult
    from ._run_telemetry import RunTelemetry, WorkerStats
    from ._runtime.transports._ray import RayTransport
    from ._snapshots import PoolStats, TaskInfo, WorkerSnapshot
    from ._summary import RunSummary
    from ._task_options import TaskOptions

logging.getLogger("osiiso_mp").addHandler(logging.NullHandler())

# Public names load on first use (PEP 562): importing a worker module (osiiso_mp._runtime)
# runs this file first, and workers and the fork server need none of the facades: loading
# them all made every fresh interpreter spend ~150 ms importing what it never uses.
_LAZY: dict[str, str] = {
    "AsyncExecutor": "._async",
    "AsyncOptionsView": "._async",
    "AsyncTaskGroup": "._async_group",
    "Attempt": "._results",
    "Checkpoint": "._checkpoint",
    "CheckpointError": "._checkpoint_schema",
    "CheckpointRecord": "._checkpoint",
    "ClosedError": "._errors",
    "ExecutionError": "._errors",
    "Executor": "._executor",
    "InternalError": "._errors",
    "LargeCallableWarning": "._callables",
    "MemoryLimitError": "._errors",
    "OptionsView": "._executor",
    "OsiisoError": "._errors",
    "PoolStats": "._snapshots",
    "ProgressEvent": "._progress",
    "QueueFullError": "._errors",
    "RayTransport": "._runtime.transports._ray",
    "RemoteError": "._errors",
    "Retry": "._errors",
    "RunSummary": "._summary",
    "RunTelemetry": "._run_telemetry",
    "SerializationError": "._errors",
    "TaskFuture": "._future",
    "TaskGroup": "._group",
    "TaskInfo": "._snapshots",
    "TaskOptions": "._task_options",
    "TaskResult": "._results",
    "TaskTimeoutError": "._errors",
    "ValueReleasedError": "._errors",
    "WorkerCrashedError": "._errors",
    "WorkerSnapshot": "._snapshots",
    "WorkerStats": "._run_telemetry",
    "cpu_budget": "._resources",
    "pmap": "._group",
}


if not TYPE_CHECKING:  # type checkers see the imports above, and flag unknown names

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'osiiso_mp' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncExecutor",
    "AsyncOptionsView",
    "AsyncTaskGroup",
    "Attempt",
    "Checkpoint",
    "CheckpointError",
    "CheckpointRecord",
    "ClosedError",
    "ExecutionError",
    "Executor",
    "InternalError",
    "LargeCallableWarning",
    "MemoryLimitError",
    "OptionsView",
    "OsiisoError",
    "PoolStats",
    "ProgressEvent",
    "QueueFullError",
    "RayTransport",
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
    "ValueReleasedError",
    "WorkerCrashedError",
    "WorkerSnapshot",
    "WorkerStats",
    "__version__",
    "cpu_budget",
    "pmap",
]
