"""The record of one task: :class:`TaskResult`, with its :class:`Attempt` log.

* :class:`Attempt` -- one try at running a task on one worker, with its telemetry.
* :class:`TaskResult` -- the one final record of a task (``attempt_log`` holds its attempts).

A record's ``value`` may be held in another form than the object itself (a
:class:`DeferredValue`): the serialized form the executor keeps of a value it has handed
out, or the marker of a value released under ``retain_bytes``. Reading ``value`` then makes
the object (or raises :class:`~osiiso_mp.ValueReleasedError`); equality, hashing,
``repr``, pickling and ``to_dict()`` see the value as reading it would, and never raise for
a released one. :func:`make_attempt`, :func:`make_result` and :func:`with_value` make
records without the dataclass's ``__init__`` (:mod:`._slots`): records are made per task.

The records of a whole run are in :mod:`._summary`, the figures derived from them in
:mod:`._run_telemetry`, and the snapshots of unfinished work in :mod:`._snapshots`. Pure,
immutable data: nothing here does I/O.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from ._errors import ValueReleasedError
from ._slots import slot_builder, values_getter

__all__ = [
    "Attempt",
    "DeferredValue",
    "Outcome",
    "RESULT_FIELDS",
    "ReleasedValue",
    "Status",
    "TaskResult",
    "make_attempt",
    "make_result",
    "raw_value",
    "record_of",
    "run_span",
    "safe_repr",
    "set_raw_value",
    "value_repr",
    "with_value",
]

Outcome = Literal["succeeded", "failed", "timed_out", "crashed", "cancelled", "memory_exceeded"]
"""How one attempt ended."""

Status = Literal["succeeded", "failed", "cancelled"]
"""How a task ended (the status of its :class:`TaskResult`)."""


_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6


def safe_repr(obj: Any, short: bool = False) -> str:
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
        node: where the worker ran: this host's name for a local worker, the node's
            address and id for one on a cluster (``"10.0.0.5:6b1f04e2"``).
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
    node: str = ""


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
            f"name={safe_repr(self.name, short=True)}",
            f"status={self.status!r}",
            f"attempts={self.attempts}",
            f"duration={self.duration:.3f}s",
        ]
        if self.status == "succeeded":
            parts.append(f"value={value_repr(self, short=True)}")
        elif self.exception is not None:
            parts.append(f"exception={safe_repr(self.exception, short=True)}")
        elif self.message:
            parts.append(f"message={safe_repr(self.message, short=True)}")
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


RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TaskResult))
"""The names of :class:`TaskResult`'s fields, in order."""
_VALUE_SLOT: Any = TaskResult.__dict__["value"]  # the slot's own descriptor
raw_value: Callable[[TaskResult], Any] = _VALUE_SLOT.__get__
"""What a record's ``value`` slot holds, as it is (a :class:`DeferredValue`, say)."""
set_raw_value: Callable[[TaskResult, Any], None] = _VALUE_SLOT.__set__
"""Put something in a record's ``value`` slot (internal: records are frozen)."""
_OTHER_FIELDS = values_getter([n for n in RESULT_FIELDS if n != "value"])
_SETTERS = [TaskResult.__dict__[n].__set__ for n in RESULT_FIELDS]  # the slots' own, value's too
_BEFORE_VALUE = values_getter(RESULT_FIELDS[: RESULT_FIELDS.index("value")])
_AFTER_VALUE = values_getter(RESULT_FIELDS[RESULT_FIELDS.index("value") + 1 :])


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


def value_repr(record: TaskResult, short: bool = False) -> str:
    """``repr`` of a record's value, never raising (a released one says so)."""
    try:
        value = _plain_value(record)
    except Exception as exc:  # a stored value that no longer unpickles, say
        return f"<value unreadable: {type(exc).__qualname__}>"
    if isinstance(value, ReleasedValue):
        return repr(value)
    return safe_repr(value, short)


# The slot stays where dataclasses put it; reads and writes of ``value`` go through it.
setattr(  # noqa: B010 - type checkers see the dataclass field; this is how it reads
    TaskResult,
    "value",
    property(_read_value, set_raw_value, doc="The return value (succeeded tasks only)."),
)


make_attempt: Callable[..., Attempt] = slot_builder(Attempt, [f.name for f in fields(Attempt)])
"""``Attempt(...)`` with every field given, several times faster (records made per task)."""
make_result: Callable[..., TaskResult] = slot_builder(TaskResult, RESULT_FIELDS)
"""``TaskResult(...)`` with every field given, several times faster."""


def with_value(record: TaskResult, value: Any) -> TaskResult:
    """A copy of ``record`` whose ``value`` slot holds ``value`` (the other fields are the
    same objects)."""
    return make_result(*_BEFORE_VALUE(record), value, *_AFTER_VALUE(record))


# -- records packed as plain tuples (what a finished task keeps) -----------------------------

Packed = tuple[Any, ...]
"""A record as one flat tuple: its fields in order but ``attempt_log`` (the ``value`` slot as
it is), then each attempt's fields in order (see :func:`pack`)."""

assert RESULT_FIELDS[-1] == "attempt_log"
_ATTEMPT_FIELDS = [f.name for f in fields(Attempt)]
_ATTEMPT_VALUES = values_getter(_ATTEMPT_FIELDS)
_AFTER_VALUE_BUT_LOG = values_getter(RESULT_FIELDS[RESULT_FIELDS.index("value") + 1 : -1])
_HEAD = len(RESULT_FIELDS) - 1  # the record's own fields, ahead of its attempts'
_WIDTH = len(_ATTEMPT_FIELDS)  # each attempt's
_ONE_ATTEMPT = _HEAD + _WIDTH  # the length of a record of one attempt, packed
_VALUE = RESULT_FIELDS.index("value")
_STATUS = RESULT_FIELDS.index("status")
_FINISHED_AT = RESULT_FIELDS.index("finished_at")
_AS_GIVEN: Any = object()  # (pack_fields: the value as head holds it)


def pack(record: TaskResult, value: Any = None, *, replace: bool = False) -> Packed:
    """``record`` as one flat tuple of its fields and its attempts' (with ``value`` in place
    of its own when ``replace``). Made of strings, numbers and ``None`` for a plain outcome,
    such a tuple is left alone by the cyclic garbage collector after one pass (it untracks
    a tuple whose items it does not track, and nested ones one level a pass), where a
    record and its attempts are objects it walks at every full collection for as long as
    they are kept."""
    head = (
        *_BEFORE_VALUE(record),
        value if replace else raw_value(record),
        *_AFTER_VALUE_BUT_LOG(record),
    )
    return pack_fields(head, record.attempt_log)


def pack_fields(
    head: tuple[Any, ...], attempts: tuple[Attempt, ...], *, value: Any = _AS_GIVEN
) -> Packed:
    """The record of fields ``head`` (in order, ``attempt_log`` left out) and ``attempts``
    packed, as :func:`pack` packs it, without making it first; with ``value``, when
    given, in place of the value ``head`` holds."""
    if value is not _AS_GIVEN:
        head = (*head[:_VALUE], value, *head[_VALUE + 1 :])
    if len(attempts) == 1:  # the commonest (made per finished task)
        return (*head, *_ATTEMPT_VALUES(attempts[0]))
    return (*head, *[x for a in attempts for x in _ATTEMPT_VALUES(a)])


def unpack(packed: Packed) -> TaskResult:
    """The record ``packed`` holds: a new object each call, equal each time."""
    return make_result(*packed[:_HEAD], _log(packed))


def unpack_with_value(packed: Packed, value: Any) -> TaskResult:
    """The record ``packed`` holds, with ``value`` in its ``value`` slot."""
    return make_result(*packed[:_VALUE], value, *packed[_VALUE + 1 : _HEAD], _log(packed))


def _log(packed: Packed) -> tuple[Attempt, ...]:
    if len(packed) == _ONE_ATTEMPT:  # the commonest
        return (make_attempt(*packed[_HEAD:]),)
    return tuple([make_attempt(*packed[i : i + _WIDTH]) for i in range(_HEAD, len(packed), _WIDTH)])


def packed_status(packed: Packed) -> str:
    """The ``status`` of the record ``packed`` holds."""
    status: str = packed[_STATUS]
    return status


def packed_finished_at(packed: Packed) -> float:
    """The ``finished_at`` of the record ``packed`` holds."""
    finished: float = packed[_FINISHED_AT]
    return finished


def packed_value(packed: Packed) -> Any:
    """What the ``value`` slot of the record ``packed`` holds, as it is."""
    return packed[_VALUE]


def packed_with_value(packed: Packed, value: Any) -> Packed:
    """``packed`` with ``value`` in its ``value`` slot."""
    return (*packed[:_VALUE], value, *packed[_VALUE + 1 :])


def run_span(records: Iterable[TaskResult]) -> float:
    """Seconds from the first record's creation to the last one's finish (0.0 for none).

    Inputs restored from a checkpoint (``succeeded`` with no attempt) finished in an earlier
    run, perhaps days ago: they are left out, so that the span is this run's.
    """
    ran = [r for r in records if r.attempts or r.status != "succeeded"]
    if not ran:
        return 0.0
    return max(0.0, max(r.finished_at for r in ran) - min(r.created_at for r in ran))


def record_of(fut: Any) -> TaskResult:
    """The record of a finished future: its own (a ``TaskFuture``'s, made on first read;
    or a ``_record`` it carries), else a stand-in made from its outcome (any
    ``concurrent.futures.Future``)."""
    own = getattr(fut, "_own_record", None)
    record = own() if own is not None else getattr(fut, "_record", None)
    if isinstance(record, TaskResult):
        return record
    task_id = getattr(fut, "task_id", "")
    name = getattr(fut, "name", "")
    task_id = task_id if isinstance(task_id, str) else ""
    name = name if isinstance(name, str) else ""
    if fut.cancelled():
        return TaskResult(task_id=task_id, name=name, status="cancelled", message="cancelled")
    exc = fut.exception(0)
    if exc is not None:
        try:
            message = str(exc)
        except Exception:
            message = type(exc).__qualname__
        return TaskResult(
            task_id=task_id, name=name, status="failed", exception=exc, message=message
        )
    return TaskResult(task_id=task_id, name=name, status="succeeded", value=fut.result(0))
