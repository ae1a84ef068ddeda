"""The exception tree of osiiso_mp.

::

    Exception
     +-- OsiisoError                    root of everything osiiso_mp raises
          +-- ExecutionError            a run, group or summary holds failed tasks (.results)
          +-- ClosedError               submit after shutdown (also a RuntimeError)
          +-- QueueFullError            a non-blocking submit found max_pending reached
          +-- TaskTimeoutError          an attempt ran past its timeout (also a TimeoutError)
          +-- WorkerCrashedError        the worker running the attempt died (.exit_code)
          +-- MemoryLimitError          the worker went above max_rss (.limit, .rss)
          +-- ValueReleasedError        a finished task's value was let go under retain_bytes
          +-- SerializationError        a callable, argument or result could not be pickled
          +-- RemoteError               stand-in for a remote exception that cannot be rebuilt
          +-- InternalError             osiiso_mp's own code failed in a worker handling the task
          +-- Retry                     raised *by a task* to ask for another attempt

A failed task's exception is its own original type whenever it can be rebuilt in the parent;
the remote traceback is attached as ``__cause__`` (a :class:`RemoteTraceback`). Every message
says what happened and, where known, to which task.

So that code written for ``ProcessPoolExecutor`` catches them: ``WorkerCrashedError`` is also
a ``concurrent.futures.process.BrokenProcessPool``, ``RemoteTraceback`` a
``concurrent.futures.process._RemoteTraceback``, and ``SerializationError`` a
``pickle.PicklingError`` at a pickling stage (``pickle.UnpicklingError`` at ``"unpickling"``).
The first two live in ``_pool_errors`` and load on first use (that module imports
``concurrent.futures.process``, which workers never need).

Every error here pickles and unpickles to an equal error, because several of them are raised
in a worker and travel back to the parent.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._pool_errors import RemoteTraceback, WorkerCrashedError
    from ._results import TaskResult

__all__ = [
    "ClosedError",
    "ExecutionError",
    "InternalError",
    "MemoryLimitError",
    "OsiisoError",
    "QueueFullError",
    "RemoteError",
    "RemoteTraceback",
    "Retry",
    "SerializationError",
    "TaskTimeoutError",
    "ValueReleasedError",
    "WorkerCrashedError",
]


def _for_task(name: str | None, task_id: str | None) -> str:
    """Phrase naming a task for an error message: `` (task 'name', id abc)`` or ``""``."""
    if name is None and task_id is None:
        return ""
    if task_id is None:
        return f" (task {name!r})"
    if name is None:
        return f" (task id {task_id})"
    return f" (task {name!r}, id {task_id})"


class OsiisoError(Exception):
    """Root of every exception osiiso_mp raises on its own account."""


class ExecutionError(OsiisoError):
    """One or more tasks failed (or were cancelled, where that was asked to raise).

    ``results`` holds the :class:`~osiiso_mp.TaskResult` records that caused it.
    """

    def __init__(self, message: str, results: Sequence[TaskResult] = ()) -> None:
        super().__init__(message)
        self.results: tuple[TaskResult, ...] = tuple(results)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.results))


class ClosedError(OsiisoError, RuntimeError):
    """The executor is shut down (or shutting down) and takes no new tasks.

    Also a :class:`RuntimeError`, which is what ``ProcessPoolExecutor`` raises in this case.
    """


class QueueFullError(OsiisoError):
    """A non-blocking submit found the executor's ``max_pending`` bound reached."""


class TaskTimeoutError(OsiisoError, TimeoutError):
    """An attempt ran longer than its ``timeout``.

    A sync attempt is stopped by killing its worker, which is replaced (``killed=True``);
    an ``async def`` attempt is cancelled inside its worker, which carries on.
    """

    def __init__(
        self,
        timeout: float,
        *,
        name: str | None = None,
        task_id: str | None = None,
        killed: bool = True,
    ) -> None:
        how = (
            "its worker was killed and replaced" if killed else "it was cancelled inside its worker"
        )
        super().__init__(f"attempt timed out after {timeout:g}s{_for_task(name, task_id)}; {how}")
        self.timeout = timeout
        self.name = name
        self.task_id = task_id
        self.killed = killed

    def __reduce__(self) -> tuple[Any, ...]:
        kw = {"name": self.name, "task_id": self.task_id, "killed": self.killed}
        return (_rebuild, (type(self), (self.timeout,), kw))


# The status a worker exits with when its own machinery failed beyond reporting it to the
# supervisor (EX_SOFTWARE in sysexits.h); the worker prints the traceback to its stderr first.
INTERNAL_ERROR_EXIT = 70


def describe_exit(exit_code: int | None) -> str:
    """Human text for a worker's exit code (negative numbers are signals)."""
    if exit_code is None:
        return "exit status unknown"
    if exit_code == INTERNAL_ERROR_EXIT:
        return (
            f"exit code {exit_code} (an internal error in osiiso_mp's worker, or os._exit"
            f"({exit_code}) in the task; the worker's stderr has the traceback)"
        )
    if exit_code < 0:
        import signal

        try:
            signame = signal.Signals(-exit_code).name
        except ValueError:
            signame = f"signal {-exit_code}"
        return f"killed by {signame}"
    return f"exit code {exit_code}"


def format_bytes(n: float) -> str:
    """Bytes as a short human figure (``"1.50 GiB"``)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class MemoryLimitError(OsiisoError):
    """The worker running the attempt went above ``max_rss`` and was killed and replaced."""

    def __init__(
        self,
        limit: int,
        rss: int,
        *,
        name: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(
            f"worker memory {format_bytes(rss)} exceeded max_rss {format_bytes(limit)}"
            f"{_for_task(name, task_id)}; the worker was killed and replaced"
        )
        self.limit = limit
        self.rss = rss
        self.name = name
        self.task_id = task_id

    def __reduce__(self) -> tuple[Any, ...]:
        kw = {"name": self.name, "task_id": self.task_id}
        return (_rebuild, (type(self), (self.limit, self.rss), kw))


class ValueReleasedError(OsiisoError):
    """The value of a finished task was released: the executor keeps finished tasks' values
    (for ``run()`` and lookups by id) within its ``retain_bytes`` budget, and lets the oldest
    go past it. The task's record stays, with its status and telemetry; only its ``value``
    cannot be read.

    ``limit`` is the budget in bytes. Read values as tasks finish (``fut.result()``,
    ``map``), or give the executor a larger ``retain_bytes`` (``None``: no budget).
    """

    def __init__(
        self, limit: int | None, *, name: str | None = None, task_id: str | None = None
    ) -> None:
        budget = "no budget" if limit is None else format_bytes(limit)
        super().__init__(
            f"value released{_for_task(name, task_id)}: finished tasks' values are kept for "
            f"run() and lookups by id within retain_bytes ({budget}), and this one was among "
            "the oldest past it; its record stays. Read values as tasks finish "
            "(fut.result(), map) or raise retain_bytes (None keeps every value)"
        )
        self.limit = limit
        self.name = name
        self.task_id = task_id

    def __reduce__(self) -> tuple[Any, ...]:
        kw = {"name": self.name, "task_id": self.task_id}
        return (_rebuild, (type(self), (self.limit,), kw))


class _StagedError(OsiisoError):
    """An error at a named stage of a task's path, about an exception of another type:
    ``stage``, ``type_name`` and ``detail``, and the task's ``name`` and ``task_id`` when
    known. Subclasses say what went wrong in ``_what(stage)``."""

    def __init__(
        self,
        stage: str,
        type_name: str,
        detail: str,
        *,
        name: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(f"{self._what(stage)}{_for_task(name, task_id)}: {type_name}: {detail}")
        self.stage = stage
        self.type_name = type_name
        self.detail = detail
        self.name = name
        self.task_id = task_id

    @staticmethod
    def _what(stage: str) -> str:
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        kw = {"name": self.name, "task_id": self.task_id}
        return (_rebuild, (type(self), (self.stage, self.type_name, self.detail), kw))


class SerializationError(_StagedError):
    """A callable, an argument, a result or an exception could not be (un)pickled.

    ``stage`` says where: ``"callable"``, ``"arguments"``, ``"result"``, ``"unpickling"``;
    ``type_name`` names the offending type where it is known. At a pickling stage it is also
    a ``pickle.PicklingError``, at ``"unpickling"`` a ``pickle.UnpicklingError``, so that
    code written for ``ProcessPoolExecutor`` catches it.
    """

    def __new__(cls, stage: str, *args: Any, **kwargs: Any) -> SerializationError:
        if cls is SerializationError:  # the pickle module's error for the stage, too
            cls = _UnpicklingStageError if stage == "unpickling" else _PicklingStageError
        return super().__new__(cls, stage, *args, **kwargs)

    @staticmethod
    def _what(stage: str) -> str:
        return f"cannot serialize the {stage}"

    def __reduce__(self) -> tuple[Any, ...]:
        kw = {"name": self.name, "task_id": self.task_id}
        return (_rebuild, (SerializationError, (self.stage, self.type_name, self.detail), kw))


class _PicklingStageError(SerializationError, pickle.PicklingError):
    """A :class:`SerializationError` at a pickling stage (``"callable"``, ``"arguments"``,
    ``"result"``): also a ``pickle.PicklingError``. Named ``SerializationError`` wherever
    a type name is shown; ``SerializationError(...)`` builds it."""


class _UnpicklingStageError(SerializationError, pickle.UnpicklingError):
    """A :class:`SerializationError` at stage ``"unpickling"``: also a
    ``pickle.UnpicklingError``. Named ``SerializationError`` wherever a type name is shown."""


for _cls in (_PicklingStageError, _UnpicklingStageError):
    _cls.__name__ = _cls.__qualname__ = "SerializationError"


class RemoteError(OsiisoError):
    """Stand-in for an exception raised in a worker that could not be rebuilt in the parent.

    Keeps the original ``type_name`` (qualified), ``message`` and ``traceback`` text.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback))


class InternalError(_StagedError):
    """osiiso_mp's own code failed inside the worker while it handled the task.

    Not the task's own exception: a bug in osiiso_mp or in what it relies on (the event loop,
    the measurement, the serializer). The attempt fails with this error instead of hanging,
    and the worker carries on. ``stage`` says where it happened (``"starting"``,
    ``"running"`` or ``"reporting"`` the task); ``type_name`` and ``detail`` give the
    original exception, whose worker traceback is attached as ``__cause__``.
    """

    @staticmethod
    def _what(stage: str) -> str:
        return f"internal error in the worker while {stage} the task"


class Retry(OsiisoError):
    """Raise inside a task to ask for another attempt, within the task's ``retries`` budget.

    ``delay`` (seconds) replaces the task's backoff delay for that retry when given. When the
    budget is spent the task fails with this exception.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        if delay is not None and delay < 0:
            raise ValueError(f"Retry delay must be >= 0, got {delay!r}")
        text = reason or "task asked for a retry"
        if delay is not None:
            text += f" (delay {delay:g}s)"
        super().__init__(text)
        self.delay = delay
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.delay, self.reason))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], kw: dict[str, Any]) -> BaseException:
    """Unpickle helper for errors with keyword-only constructor arguments."""
    return cls(*args, **kw)


_POOL_ERRORS = ("RemoteTraceback", "WorkerCrashedError")


def __getattr__(name: str) -> Any:
    """Load the errors whose bases come from ``concurrent.futures.process`` on first use."""
    if name in _POOL_ERRORS:
        from . import _pool_errors

        return getattr(_pool_errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
