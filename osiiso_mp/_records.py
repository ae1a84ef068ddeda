"""The records a run leaves behind: pure, immutable data.

* :class:`Attempt` -- one try at running a task on one worker, with its telemetry.
* :class:`TaskResult` -- the one final record of a task (``attempt_log`` holds its attempts).
* :class:`TaskInfo` -- a snapshot of an unfinished task (``TaskFuture.info()``).
* :class:`RunSummary` -- every record of a run, with counters, lookups, ``display()``,
  ``to_json()``, and (through :mod:`osiiso_mp._render`) an HTML table and an SVG timeline.
* :class:`RunTelemetry` / :class:`WorkerStats` -- figures derived from a summary's attempts.

A record's ``value`` may be held in another form than the object itself (a
:class:`DeferredValue`): the serialized form the executor keeps of a value it has handed
out, or the marker of a value released under ``retain_bytes``. Reading ``value`` then makes
the object (or raises :class:`~osiiso_mp.ValueReleasedError`); equality, hashing,
``repr``, pickling and ``to_dict()`` see the value as reading it would, and never raise for
a released one.

Nothing here does I/O except :meth:`RunSummary.display`, which prints.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from ._errors import ExecutionError, ValueReleasedError
from ._slots import slot_builder, values_getter

if TYPE_CHECKING:
    from ._render import SVG

K = TypeVar("K")

__all__ = [
    "Attempt",
    "DeferredValue",
    "Outcome",
    "PoolStats",
    "ReleasedValue",
    "RunSummary",
    "RunTelemetry",
    "Status",
    "TaskInfo",
    "TaskResult",
    "WorkerSnapshot",
    "WorkerStats",
    "raw_value",
    "set_raw_value",
    "with_value",
]

Outcome = Literal["succeeded", "failed", "timed_out", "crashed", "cancelled", "memory_exceeded"]
"""How one attempt ended."""

Status = Literal["succeeded", "failed", "cancelled"]
"""How a task ended (the status of its :class:`TaskResult`)."""

SCHEMA_VERSION = 1
_BAR = "-" * 40
_SLOWEST = 5

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6


def _safe_repr(obj: Any, short: bool = False) -> str:
    """``repr(obj)`` (shortened when ``short``), never raising."""
    try:
        return _short.repr(obj) if short else repr(obj)
    except Exception:
        return f"<{type(obj).__qualname__} object (repr failed)>"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at running a task, and what it cost.

    Timestamps are ``time.perf_counter()`` seconds, one monotonic clock shared by the pool's
    processes on Linux, so attempts of different workers can be placed on one time line.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry, and so on.
        worker: id of the worker slot the attempt was dispatched to (stable across respawns).
        pid: process id of the worker, or None when unknown.
        queued_for: seconds the task waited before this attempt was dispatched.
        started_at: when the attempt began running, or None when it never started (its
            worker died, or it was cancelled, before it began).
        finished_at: when the attempt ended (or was given up on).
        duration: wall seconds the attempt ran (0.0 when it never started).
        cpu_time: user + system CPU seconds the attempt used.
        peak_rss: the worker's peak resident memory during the attempt, in bytes.
        rss_delta: resident memory after the attempt minus before it, in bytes.
        outcome: how the attempt ended.
        error: short text of what went wrong; empty when it succeeded.
        exit_code: for a dead worker, its exit code, or minus the signal that killed it.
    """

    number: int
    worker: int
    pid: int | None
    queued_for: float
    started_at: float | None
    finished_at: float
    duration: float
    cpu_time: float
    peak_rss: int
    rss_delta: int
    outcome: Outcome
    error: str = ""
    exit_code: int | None = None


class DeferredValue:
    """A task's value held in another form than the object itself (internal).

    A :class:`TaskResult` whose ``value`` slot holds one of these makes the value when
    ``value`` is read, with :meth:`load`. When ``cache`` is true the record keeps what was
    loaded in place of this object (a record handed to the caller); otherwise every read
    loads anew (a record the executor keeps, which must not hold a value it handed out).
    """

    __slots__ = ()

    cache: ClassVar[bool] = False

    def load(self, record: TaskResult) -> Any:
        """The value of ``record`` (whose ``value`` slot holds this object)."""
        raise NotImplementedError


class ReleasedValue(DeferredValue):
    """Stands for a value released under the executor's ``retain_bytes`` budget (``limit``
    bytes): reading it raises :class:`~osiiso_mp.ValueReleasedError`. Released values
    compare equal to each other and to nothing else."""

    __slots__ = ("limit",)

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def load(self, record: TaskResult) -> Any:
        raise ValueReleasedError(self.limit, name=record.name, task_id=record.task_id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReleasedValue):
            return True
        return NotImplemented

    def __hash__(self) -> int:
        return hash(ReleasedValue)

    def __repr__(self) -> str:
        return "<value released under retain_bytes>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReleasedValue, (self.limit,))


@dataclass(frozen=True, slots=True, repr=False)
class TaskResult:
    """The final record of one task: exactly one per submitted task.

    Attributes:
        task_id: the task's unique id.
        name: the task's name (its callable's name unless one was given).
        status: ``"succeeded"``, ``"failed"`` or ``"cancelled"``.
        value: the return value (succeeded tasks only). A record the executor kept after
            handing the value out (a summary's, a lookup's) holds it serialized and makes
            it on first read; one whose value was released under the executor's
            ``retain_bytes`` budget raises :class:`~osiiso_mp.ValueReleasedError`.
        exception: the exception (failed tasks only): the original type where it can be
            rebuilt, with the remote traceback as ``__cause__``; a ``RemoteError`` otherwise.
        attempts: how many attempts were made; always ``len(attempt_log)``.
        priority, must_complete, group_id, detached, metadata: as submitted.
        created_at: when the task was submitted (``time.perf_counter()`` seconds).
        started_at: when its first attempt started, or None when none did.
        finished_at: when the record was made.
        duration: wall seconds from the first start to the finish (0.0 if it never started).
        message: short outcome text: ``str(exception)`` for failures, why for cancellations.
        attempt_log: every :class:`Attempt`, in order.
    """

    task_id: str
    name: str
    status: Status
    value: Any = None
    exception: BaseException | None = None
    attempts: int = 0
    priority: int = 3
    must_complete: bool = False
    group_id: Hashable | None = None
    detached: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float = 0.0
    duration: float = 0.0
    message: str = ""
    metadata: Any = None
    attempt_log: tuple[Attempt, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the task succeeded."""
        return self.status == "succeeded"

    def __repr__(self) -> str:
        parts = [
            f"task_id={self.task_id!r}",
            f"name={_safe_repr(self.name, short=True)}",
            f"status={self.status!r}",
            f"attempts={self.attempts}",
            f"duration={self.duration:.3f}s",
        ]
        if self.status == "succeeded":
            parts.append(f"value={_value_repr(self, short=True)}")
        elif self.exception is not None:
            parts.append(f"exception={_safe_repr(self.exception, short=True)}")
        elif self.message:
            parts.append(f"message={_safe_repr(self.message, short=True)}")
        return f"TaskResult({', '.join(parts)})"

    # Equality, hashing and pickling see the value as reading it gives it, except that a
    # released value is its marker (so that none of them raises).

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _key(self) == _key(other)

    def __hash__(self) -> int:
        return hash(_key(self))

    def __getstate__(self) -> list[Any]:
        # the fields in order, as dataclasses pickles a frozen slotted class
        return [*_BEFORE_VALUE(self), _plain_value(self), *_AFTER_VALUE(self)]

    def __setstate__(self, state: list[Any]) -> None:
        for setter, value in zip(_SETTERS, state, strict=True):
            setter(self, value)


_NAMES = [f.name for f in fields(TaskResult)]
_VALUE_SLOT: Any = TaskResult.__dict__["value"]  # the slot's own descriptor
raw_value: Callable[[TaskResult], Any] = _VALUE_SLOT.__get__
"""What a record's ``value`` slot holds, as it is (a :class:`DeferredValue`, say)."""
set_raw_value: Callable[[TaskResult, Any], None] = _VALUE_SLOT.__set__
"""Put something in a record's ``value`` slot (internal: records are frozen)."""
_OTHER_FIELDS = values_getter([n for n in _NAMES if n != "value"])
_SETTERS = [TaskResult.__dict__[n].__set__ for n in _NAMES]  # the slots' own, value's too
_BEFORE_VALUE = values_getter(_NAMES[: _NAMES.index("value")])
_AFTER_VALUE = values_getter(_NAMES[_NAMES.index("value") + 1 :])


def _read_value(record: TaskResult) -> Any:
    value = raw_value(record)
    if isinstance(value, DeferredValue):
        loaded = value.load(record)
        # a benign race: two threads reading at once may both load; one of them is kept
        if value.cache and raw_value(record) is value:
            set_raw_value(record, loaded)
        return loaded
    return value


def _plain_value(record: TaskResult) -> Any:
    """The value as reading it gives it, or the marker of a released one."""
    value = raw_value(record)
    if isinstance(value, DeferredValue) and not isinstance(value, ReleasedValue):
        return _read_value(record)
    return value


def _key(record: TaskResult) -> tuple[Any, ...]:
    return (_plain_value(record), *_OTHER_FIELDS(record))


def _value_repr(record: TaskResult, short: bool = False) -> str:
    """``repr`` of a record's value, never raising (a released one says so)."""
    try:
        value = _plain_value(record)
    except Exception as exc:  # a stored value that no longer unpickles, say
        return f"<value unreadable: {type(exc).__qualname__}>"
    if isinstance(value, ReleasedValue):
        return repr(value)
    return _safe_repr(value, short)


# The slot stays where dataclasses put it; reads and writes of ``value`` go through it.
setattr(  # noqa: B010 - type checkers see the dataclass field; this is how it reads
    TaskResult,
    "value",
    property(_read_value, set_raw_value, doc="The return value (succeeded tasks only)."),
)


make_attempt: Callable[..., Attempt] = slot_builder(Attempt, [f.name for f in fields(Attempt)])
"""``Attempt(...)`` with every field given, several times faster (records made per task)."""
make_result: Callable[..., TaskResult] = slot_builder(TaskResult, _NAMES)
"""``TaskResult(...)`` with every field given, several times faster."""


def with_value(record: TaskResult, value: Any) -> TaskResult:
    """A copy of ``record`` whose ``value`` slot holds ``value`` (the other fields are the
    same objects)."""
    return make_result(*_BEFORE_VALUE(record), value, *_AFTER_VALUE(record))


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of an unfinished task, as ``TaskFuture.info()`` returns it.

    Attributes:
        task_id: the task's unique id.
        name: the task's name.
        fn_name: the qualified name of the task's callable.
        args, kwargs: the arguments it was submitted with.
        enqueue_time: when it was submitted, in epoch milliseconds.
        tries: attempts picked up so far, the running one included (as in ArdiQ: 1 while
            the first attempt runs, 1 while the task waits for its retry, 2 during the
            second attempt).
        status: ``"queued"``, ``"scheduled"`` or ``"running"``.
        scheduled_at: when a scheduled task becomes due (epoch milliseconds), else None.
        worker_pid: the pid of the worker running it, else None.
    """

    task_id: str
    name: str
    fn_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueue_time: int
    tries: int
    status: str
    scheduled_at: int | None
    worker_pid: int | None


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """One worker slot in a live :class:`PoolStats` snapshot.

    Attributes:
        worker: the slot's id (stable across respawns).
        pid: the current process, or None while none is running in the slot.
        state: ``"starting"``, ``"idle"``, ``"busy"``, ``"retiring"`` (finishing its last
            tasks before recycling) or ``"stopping"`` (killed or exiting).
        current: ids of the tasks it is running now.
        tasks_done: attempts the current process has finished.
        rss: its resident memory in bytes (0 when it could not be read).
        cpu_percent: its CPU use since the previous ``stats()`` call (0.0 on the first).
        restarts: how many times the slot's process was replaced.
    """

    worker: int
    pid: int | None
    state: str
    current: tuple[str, ...]
    tasks_done: int
    rss: int
    cpu_percent: float
    restarts: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A live snapshot of an executor, as ``Executor.stats()`` returns it.

    Attributes:
        workers: one :class:`WorkerSnapshot` per worker slot.
        pending: tasks queued to start (including those sent ahead to a busy worker).
        running: tasks running now.
        scheduled: tasks waiting for a delay, a start time or a retry backoff.
        completed: tasks finished since the executor started.
    """

    workers: tuple[WorkerSnapshot, ...]
    pending: int
    running: int
    scheduled: int
    completed: int


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What one worker slot did during a run.

    Attributes:
        worker: the worker id.
        pids: the process ids that served this slot, in order of first use (several when
            the worker was respawned).
        attempts: attempts dispatched to it (started or not).
        busy_time: summed duration of its attempts that started, in seconds.
        utilisation: ``busy_time`` / run duration (0.0 when the duration is 0).
    """

    worker: int
    pids: tuple[int, ...]
    attempts: int
    busy_time: float
    utilisation: float


@dataclass(frozen=True, slots=True)
class RunTelemetry:
    """Figures computed from the attempts of a run (:attr:`RunSummary.telemetry`).

    Attributes:
        cpu_seconds: CPU seconds of every attempt, summed.
        efficiency: ``cpu_seconds / (duration * procs)``; 0.0 when that denominator is 0.
        attempts: attempts made, all tasks together.
        retries: attempts beyond each task's first, summed.
        crashes, timeouts, memory_exceeded: attempts with outcome ``crashed``,
            ``timed_out`` and ``memory_exceeded``.
        respawns: workers started to replace others during the run.
        peak_rss: the highest ``peak_rss`` of any attempt, in bytes (0 when none).
        workers: per-worker figures, sorted by worker id.
        slowest: up to five tasks that started, by duration, slowest first.
    """

    cpu_seconds: float
    efficiency: float
    attempts: int
    retries: int
    crashes: int
    timeouts: int
    memory_exceeded: int
    respawns: int
    peak_rss: int
    workers: tuple[WorkerStats, ...]
    slowest: tuple[TaskResult, ...]

    @classmethod
    def build(
        cls, results: Iterable[TaskResult], duration: float, procs: int, respawns: int
    ) -> RunTelemetry:
        """Compute the telemetry of ``results``, a run of ``duration`` seconds on ``procs``."""
        results = tuple(results)
        log = [a for r in results for a in r.attempt_log]
        cpu = sum(a.cpu_time for a in log)
        capacity = duration * procs
        # Chronological order, so that each worker's pids come out in order of first use.
        log.sort(key=lambda a: a.finished_at if a.started_at is None else a.started_at)
        per_worker: dict[int, list[Attempt]] = {}
        for a in log:
            per_worker.setdefault(a.worker, []).append(a)
        workers = []
        for wid in sorted(per_worker):
            mine = per_worker[wid]
            busy = sum(a.duration for a in mine if a.started_at is not None)
            pids = tuple(dict.fromkeys(a.pid for a in mine if a.pid is not None))
            util = busy / duration if duration > 0 else 0.0
            workers.append(WorkerStats(wid, pids, len(mine), busy, util))
        started = [r for r in results if r.started_at is not None]
        slowest = sorted(started, key=lambda r: r.duration, reverse=True)[:_SLOWEST]
        return cls(
            cpu_seconds=cpu,
            efficiency=cpu / capacity if capacity > 0 else 0.0,
            attempts=sum(r.attempts for r in results),
            retries=sum(max(r.attempts - 1, 0) for r in results),
            crashes=sum(a.outcome == "crashed" for a in log),
            timeouts=sum(a.outcome == "timed_out" for a in log),
            memory_exceeded=sum(a.outcome == "memory_exceeded" for a in log),
            respawns=respawns,
            peak_rss=max((a.peak_rss for a in log), default=0),
            workers=tuple(workers),
            slowest=tuple(slowest),
        )


@dataclass(frozen=True, slots=True, repr=False)
class RunSummary:
    """Every record of one run (``Executor.run()`` / ``wait()``), with counters and views.

    ``results`` are in submission order; detached tasks are not in it. ``ok`` is True when no
    task failed or was cancelled and the run did not time out. The summary is frozen, and
    so are its views: ``values``, ``errors``, ``successes()``, ``cancellations()`` and the
    groups of ``by_name()`` and ``by_group()`` are tuples.
    """

    results: tuple[TaskResult, ...]
    duration: float
    timed_out: bool = False
    procs: int = 1
    respawns: int = 0
    total_submitted: int = field(init=False, compare=False)
    succeeded: int = field(init=False, compare=False)
    failed: int = field(init=False, compare=False)
    cancelled: int = field(init=False, compare=False)
    _telemetry: RunTelemetry | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        results = tuple(self.results)
        statuses = [r.status for r in results]
        object.__setattr__(self, "results", results)
        object.__setattr__(self, "total_submitted", len(results))
        object.__setattr__(self, "succeeded", statuses.count("succeeded"))
        object.__setattr__(self, "failed", statuses.count("failed"))
        object.__setattr__(self, "cancelled", statuses.count("cancelled"))

    # -- views ---------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True if no task failed or was cancelled and the run did not time out."""
        return self.failed == 0 and self.cancelled == 0 and not self.timed_out

    @property
    def status_word(self) -> str:
        """``"TIMED OUT"``, else ``"PASSED"`` when :attr:`ok`, else ``"COMPLETED WITH ERRORS"``."""
        if self.timed_out:
            return "TIMED OUT"
        return "PASSED" if self.ok else "COMPLETED WITH ERRORS"

    @property
    def values(self) -> tuple[Any, ...]:
        """The values of the succeeded tasks, in submission order."""
        return tuple(r.value for r in self.results if r.status == "succeeded")

    @property
    def errors(self) -> tuple[TaskResult, ...]:
        """The failed records, in submission order."""
        return self._with_status("failed")

    @property
    def telemetry(self) -> RunTelemetry:
        """CPU, efficiency, per-worker and attempt figures of the run (computed once)."""
        if self._telemetry is None:
            built = RunTelemetry.build(self.results, self.duration, self.procs, self.respawns)
            object.__setattr__(self, "_telemetry", built)
            return built
        return self._telemetry

    def successes(self) -> tuple[TaskResult, ...]:
        """The succeeded records, in submission order."""
        return self._with_status("succeeded")

    def cancellations(self) -> tuple[TaskResult, ...]:
        """The cancelled records, in submission order."""
        return self._with_status("cancelled")

    def _with_status(self, status: str) -> tuple[TaskResult, ...]:
        return tuple(r for r in self.results if r.status == status)

    def by_task_id(self) -> dict[str, TaskResult]:
        """The records keyed by task id."""
        return {r.task_id: r for r in self.results}

    def by_name(self) -> dict[str, tuple[TaskResult, ...]]:
        """The records grouped by task name (tuples), names in order of first appearance."""
        return _grouped(self.results, lambda r: r.name)

    def by_group(self) -> dict[Hashable | None, tuple[TaskResult, ...]]:
        """The records grouped by ``group_id`` (tuples; ungrouped ones under None), in order
        of first appearance."""
        return _grouped(self.results, lambda r: r.group_id)

    def raise_for_errors(self, *, include_cancelled: bool = False) -> None:
        """Raise :class:`ExecutionError` when a task failed (or, if asked, was cancelled).

        The message counts them (``"2 task(s) failed"``, ``"2 task(s) failed, 1 task(s)
        cancelled"``); ``.results`` holds those records in submission order.
        """
        bad = {"failed", "cancelled"} if include_cancelled else {"failed"}
        culprits = [r for r in self.results if r.status in bad]
        if not culprits:
            return
        parts = []
        if self.failed:
            parts.append(f"{self.failed} task(s) failed")
        if include_cancelled and self.cancelled:
            parts.append(f"{self.cancelled} task(s) cancelled")
        raise ExecutionError(", ".join(parts), culprits)

    # -- text ----------------------------------------------------------------------------

    def report(self) -> str:
        """The text :meth:`display` prints (no trailing newline)."""
        lines = [_BAR, f"  Run Summary: {self.status_word}", _BAR]
        for label, value in (
            ("Total tasks", str(self.total_submitted)),
            ("Succeeded", str(self.succeeded)),
            ("Failed", str(self.failed)),
            ("Cancelled", str(self.cancelled)),
            ("Duration", f"{self.duration:.3f}s"),
        ):
            lines.append(f"  {label:<12}: {value}")
        lines.append(_BAR)
        failures = self.errors  # cancelled tasks are counted above, not listed
        if failures:
            lines.append("  Failures:")
            for r in failures:
                tries = f" ({r.attempts} attempts)" if r.attempts > 1 else ""
                lines.append(f"    - {r.name or r.task_id}{tries}")
                lines.extend(f"      {ln.rstrip()}" for ln in r.message.splitlines() if ln.strip())
            lines.append(_BAR)
        return "\n".join(lines)

    def display(self) -> None:
        """Print :meth:`report`."""
        print(self.report())

    def __repr__(self) -> str:
        return (
            f"RunSummary({self.status_word}, total={self.total_submitted}, "
            f"succeeded={self.succeeded}, failed={self.failed}, cancelled={self.cancelled}, "
            f"duration={self.duration:.3f}s)"
        )

    # -- machine-readable ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (schema version 1).

        ::

            {"schema_version": 1, "status": "PASSED" | "TIMED OUT" | "COMPLETED WITH ERRORS",
             "ok": bool, "total_submitted": int, "succeeded": int, "failed": int,
             "cancelled": int, "timed_out": bool, "duration": float, "procs": int,
             "respawns": int,
             "telemetry": {"cpu_seconds", "efficiency", "attempts", "retries", "crashes",
                           "timeouts", "memory_exceeded", "respawns", "peak_rss",
                           "workers": [{"worker", "pids": [int], "attempts", "busy_time",
                                        "utilisation"}],
                           "slowest": [task_id, ...]},
             "results": [{"task_id", "name", "status",
                          "value_repr": repr(value) for succeeded tasks (a marker
                                        text once released), else null,
                          "exception": {"type": qualified name, "message": str} | null,
                          "attempts", "priority", "must_complete",
                          "group_id": a JSON scalar, else its repr,
                          "detached", "created_at", "started_at", "finished_at",
                          "duration", "message",
                          "metadata": as JSON if it converts (tuples become lists), else
                                      its repr,
                          "attempt_log": [{every Attempt field}]}]}

        Times are ``time.perf_counter()`` seconds, memory figures bytes. Every value is
        JSON-native, so ``json.loads(s.to_json()) == s.to_dict()``.
        """
        t = self.telemetry
        telemetry = _fields_dict(t)
        telemetry["workers"] = [_fields_dict(w) | {"pids": list(w.pids)} for w in t.workers]
        telemetry["slowest"] = [r.task_id for r in t.slowest]
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status_word,
            "ok": self.ok,
            "total_submitted": self.total_submitted,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "timed_out": self.timed_out,
            "duration": self.duration,
            "procs": self.procs,
            "respawns": self.respawns,
            "telemetry": telemetry,
            "results": [_result_dict(r) for r in self.results],
        }

    def to_json(self, **json_kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text; ``json_kwargs`` go to :func:`json.dumps`."""
        import json  # here: importing it costs start-up time

        return json.dumps(self.to_dict(), **json_kwargs)

    # -- notebooks (rendering lives in _render, imported on first use) --------------------

    def _repr_html_(self) -> str:
        """An HTML table of the summary, for Jupyter."""
        from ._render import summary_html

        return summary_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's pretty printer: the :meth:`report` text."""
        from ._render import pretty

        pretty(self, p, cycle)

    def timeline(self, width: int = 900) -> SVG:
        """An SVG Gantt chart of the attempts, one row per worker (a ``str`` that Jupyter
        renders as an image)."""
        from ._render import timeline_svg

        return timeline_svg(self, width=width)


def _fields_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a dict (shallow, unlike ``dataclasses.asdict``)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _type_name(exc: BaseException) -> str:
    """``module.QualName`` of an exception's type (bare for builtins)."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(obj: Any) -> Any:
    """``obj`` as JSON-native data when it converts, else its repr."""
    try:
        import json

        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return _safe_repr(obj)


def _result_dict(r: TaskResult) -> dict[str, Any]:
    """One :class:`TaskResult` as JSON-ready data (see :meth:`RunSummary.to_dict`)."""
    exc: dict[str, str] | None = None
    if r.exception is not None:
        try:
            message = str(r.exception)
        except Exception:
            message = _safe_repr(r.exception)
        exc = {"type": _type_name(r.exception), "message": message}
    group = r.group_id
    if not (group is None or isinstance(group, str | int | float | bool)):
        group = _safe_repr(group)
    out = {
        ("value_repr" if k == "value" else k): (None if k == "value" else getattr(r, k))
        for k in _NAMES
    }
    out.update(  # same keys, so the field order is kept
        value_repr=_value_repr(r) if r.status == "succeeded" else None,
        exception=exc,
        group_id=group,
        metadata=_jsonable(r.metadata),
        attempt_log=[_fields_dict(a) for a in r.attempt_log],
    )
    return out


def _grouped(
    results: Iterable[TaskResult], key: Callable[[TaskResult], K]
) -> dict[K, tuple[TaskResult, ...]]:
    """``results`` grouped by ``key``, keys in order of first appearance, groups as tuples."""
    out: dict[K, list[TaskResult]] = {}
    for r in results:
        out.setdefault(key(r), []).append(r)
    return {k: tuple(group) for k, group in out.items()}
