"""Task options and the executor-level configuration, both validated at construction.

:class:`TaskOptions` holds the per-task knobs (priority, timeout, retries, scheduling, labels);
:class:`ExecutorConfig` holds what an executor is built with, and :func:`build_config` turns
the keyword arguments of ``Executor(...)`` (including ``ProcessPoolExecutor``'s own keywords)
into one. Nothing here touches a process, a pipe or a clock: these are plain values.

Validation follows one rule everywhere: a value of the wrong *type* raises :class:`TypeError`,
a value of the right type that is out of range (or a bad combination of values) raises
:class:`ValueError`, an unknown option name raises :class:`TypeError`, and every message
names the option concerned.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from ._resources import parse_size

__all__ = [
    "DEFAULT_RETAIN_BYTES",
    "START_METHODS",
    "ExecutorConfig",
    "TaskOptions",
    "build_config",
    "check_choice",
    "resolve_options",
]

#: The start methods a worker can be started with. ``"fork"`` is accepted as input and
#: mapped to ``"forkserver"``: osiiso_mp never forks a (threaded) parent process.
START_METHODS: tuple[str, ...] = ("spawn", "forkserver")

_TASK_ID_MAX_LEN = 200

DEFAULT_RETAIN_BYTES = 256 << 20
"""The default ``retain_bytes``: 256 MiB of finished tasks' values kept for ``run()`` and
lookups by id.

Enough to keep every value of a typical batch (a million small results pickle to a few tens
of MiB) until ``run()`` summarises it, while a pipeline streaming large results that never
calls ``run()`` levels off at a few hundred MiB instead of growing with every result:
values the caller is given are the caller's, and what the executor keeps besides is a
convenience, which should cost a bounded slice of a machine's memory (a fixed figure, the
same on every machine, so that a program behaves alike wherever it runs)."""


# --------------------------------------------------------------------------- helpers


def check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise :class:`ValueError`.

    Used for every enum-like argument (``start_method``, ``fail_policy``, ``on_timeout``, ...)
    so that they all fail the same way::

        >>> check_choice("fail_policy", "stop", ("continue", "fail_first"))
        Traceback (most recent call last):
        ...
        ValueError: fail_policy must be one of 'continue', 'fail_first', got 'stop'
    """
    if isinstance(value, str) and value in allowed:
        return value
    choices = ", ".join(repr(a) for a in allowed)
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _describe(value: object) -> str:
    """``repr(value)`` followed by its type name, for type errors."""
    return f"{value!r} ({type(value).__name__})"


def _is_int(value: object) -> bool:
    """An integer that is not a bool (``numbers.Integral``, so numpy integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """A real number that is not a bool (int, float, Fraction, numpy scalars, ...)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _to_float(value: numbers.Real) -> float:
    """``float(value)``, with integers too large for a float mapped to +/-inf."""
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf


def _check_int(name: str, value: object, *, minimum: int | None, requirement: str) -> int:
    """Validate an integer option; ``requirement`` completes "{name} must be ..."."""
    if not _is_int(value):
        raise TypeError(f"{name} must be {requirement}, got {_describe(value)}")
    result = int(cast(numbers.Integral, value))
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return result


def _check_seconds(
    name: str,
    value: object,
    *,
    requirement: str,
    minimum: float,
    inclusive: bool,
    allow_inf: bool = False,
) -> float:
    """Validate a real-valued option (a number of seconds, a factor, an epoch time)."""
    if not _is_real(value):
        raise TypeError(f"{name} must be {requirement}, got {_describe(value)}")
    result = _to_float(cast(numbers.Real, value))
    in_range = result >= minimum if inclusive else result > minimum
    finite = math.isfinite(result) or (allow_inf and result == math.inf)
    if not (finite and in_range):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return result


def _check_bool(name: str, value: object) -> bool:
    """Validate a flag: only ``True`` and ``False`` are accepted."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return value


def _suggest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when ``name`` looks like a typo of a valid name, else ``""``."""
    import difflib  # only on the error path: it costs start-up time

    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- TaskOptions


@dataclass(frozen=True, slots=True, repr=False)
class TaskOptions:
    """The options of one task: frozen, hashable, validated at construction.

    ================  ===============  =========================================================
    option            default          meaning
    ================  ===============  =========================================================
    ``priority``      ``3``            lower runs first; FIFO within a priority (any int)
    ``must_complete`` ``False``        spared by run timeouts (``on_timeout="complete"``), by
                                       ``fail_first`` and by a graceful shutdown
    ``timeout``       ``None``         seconds per attempt (> 0); a sync attempt past it is
                                       killed with its worker, which is replaced
    ``retries``       ``0``            extra attempts after a failure (>= 0)
    ``retry_delay``   ``0.0``          delay before retry k is ``retry_delay * backoff**(k-1)``
    ``backoff``       ``1.0``          (>= 1.0); a waiting retry holds no worker
    ``delay``         ``None``         start after this many seconds (>= 0); a waiting task
                                       holds no worker; exclusive with ``run_at``
    ``run_at``        ``None``         start at this epoch time (``time.time()`` seconds);
                                       exclusive with ``delay``
    ``name``          callable's name  for records, hooks and logs (non-empty)
    ``group_id``      ``None``         hashable label for ``RunSummary.by_group()``
    ``detached``      ``False``        runs, but is left out of the ``RunSummary``
    ``metadata``      ``None``         user data carried onto the record (not hashed)
    ``task_id``       uuid4 hex        your own id (non-empty, no whitespace, <= 200 chars);
                                       submitting an id still in flight is refused
    ================  ===============  =========================================================

    A value of the wrong type raises :class:`TypeError`; an out-of-range value or a bad
    combination (``delay`` with ``run_at``) raises :class:`ValueError`; both name the option.
    Numbers are normalised (``timeout=5`` is stored as ``5.0``), so equal options compare
    and hash equal. Use :meth:`replace` to derive a changed copy.
    """

    priority: int = 3
    must_complete: bool = False
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    backoff: float = 1.0
    delay: float | None = None
    run_at: float | None = None
    name: str | None = None
    group_id: Hashable | None = None
    detached: bool = False
    metadata: Any = field(default=None, hash=False)
    task_id: str | None = None

    #: The names of all task options.
    FIELDS: ClassVar[frozenset[str]]

    def __post_init__(self) -> None:
        """Validate every option and normalise numbers to ``int``/``float``."""
        set_ = object.__setattr__
        set_(
            self,
            "priority",
            _check_int(
                "priority",
                self.priority,
                minimum=None,
                requirement="an int (lower runs first)",
            ),
        )
        _check_bool("must_complete", self.must_complete)
        _check_bool("detached", self.detached)
        if self.timeout is not None:
            set_(
                self,
                "timeout",
                _check_seconds(
                    "timeout",
                    self.timeout,
                    requirement="a positive number of seconds",
                    minimum=0.0,
                    inclusive=False,
                ),
            )
        set_(
            self,
            "retries",
            _check_int("retries", self.retries, minimum=0, requirement="an int >= 0"),
        )
        set_(
            self,
            "retry_delay",
            _check_seconds(
                "retry_delay",
                self.retry_delay,
                requirement="a finite number of seconds >= 0",
                minimum=0.0,
                inclusive=True,
            ),
        )
        set_(
            self,
            "backoff",
            _check_seconds(
                "backoff",
                self.backoff,
                requirement="a finite number >= 1.0",
                minimum=1.0,
                inclusive=True,
            ),
        )
        if self.delay is not None:
            set_(
                self,
                "delay",
                _check_seconds(
                    "delay",
                    self.delay,
                    requirement="a finite number of seconds >= 0",
                    minimum=0.0,
                    inclusive=True,
                ),
            )
        if self.run_at is not None:
            set_(
                self,
                "run_at",
                _check_seconds(
                    "run_at",
                    self.run_at,
                    requirement="a finite epoch time in seconds",
                    minimum=-math.inf,
                    inclusive=False,
                ),
            )
        if self.delay is not None and self.run_at is not None:
            raise ValueError(
                "delay and run_at are mutually exclusive, got "
                f"delay={self.delay!r} and run_at={self.run_at!r}"
            )
        if self.name is not None:
            if not isinstance(self.name, str):
                raise TypeError(f"name must be a str or None, got {_describe(self.name)}")
            if not self.name:
                raise ValueError("name must be a non-empty string, got ''")
        try:
            hash(self.group_id)
        except TypeError:
            raise TypeError(f"group_id must be hashable, got {_describe(self.group_id)}") from None
        if self.task_id is not None:
            _check_task_id(self.task_id)

    def __repr__(self) -> str:
        """``TaskOptions(...)`` listing only the options that differ from their defaults."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # compare only same-typed values: metadata may be anything (a numpy array...)
            if not (value is f.default or (type(value) is type(f.default) and value == f.default)):
                parts.append(f"{f.name}={value!r}")
        return f"TaskOptions({', '.join(parts)})"

    def replace(self, **overrides: Any) -> TaskOptions:
        """A copy with ``overrides`` applied, validated like a new instance.

        Unknown option names raise :class:`TypeError` listing the valid ones.
        """
        _check_option_names(overrides)
        if not overrides:
            return self
        return dataclasses.replace(self, **overrides)

    def retry_delay_for(self, k: int) -> float:
        """Seconds to wait before retry ``k`` (the first retry is ``k=1``).

        ``retry_delay * backoff**(k-1)``; ``math.inf`` if that overflows a float.
        """
        k = _check_int("k", k, minimum=1, requirement="a retry number >= 1")
        if self.retry_delay == 0.0:
            return 0.0
        try:
            return self.retry_delay * self.backoff ** (k - 1)
        except OverflowError:
            return math.inf

    def first_start_after(self, now_epoch: float) -> float | None:
        """Seconds to wait before the first attempt, or ``None`` to start right away.

        ``delay`` as is; for ``run_at`` the time left until it from ``now_epoch``
        (``time.time()`` seconds), ``0.0`` when it has already passed.
        """
        if self.delay is not None:
            return self.delay
        if self.run_at is not None:
            return max(0.0, self.run_at - now_epoch)
        return None


TaskOptions.FIELDS = frozenset(f.name for f in dataclasses.fields(TaskOptions))
_OPTION_ORDER: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TaskOptions))
_DEFAULT_OPTIONS = TaskOptions()


def _check_task_id(task_id: object) -> None:
    """Validate a caller-chosen task id."""
    if not isinstance(task_id, str):
        raise TypeError(f"task_id must be a str or None, got {_describe(task_id)}")
    if not task_id:
        raise ValueError("task_id must be a non-empty string, got ''")
    if any(c.isspace() for c in task_id):
        raise ValueError(f"task_id must not contain whitespace, got {task_id!r}")
    if len(task_id) > _TASK_ID_MAX_LEN:
        raise ValueError(
            f"task_id must be at most {_TASK_ID_MAX_LEN} characters, "
            f"got one of {len(task_id)} characters"
        )


def _check_option_names(names: Iterable[str]) -> None:
    """Raise :class:`TypeError` for the first name that is not a task option."""
    for name in names:
        if name not in TaskOptions.FIELDS:
            raise TypeError(
                f"unknown task option {name!r}; valid options: {', '.join(_OPTION_ORDER)}"
                f"{_suggest(name, _OPTION_ORDER)}"
            )


def resolve_options(
    base: TaskOptions, opts: TaskOptions | None = None, **overrides: Any
) -> TaskOptions:
    """The options a task submitted through ``ex.options(opts, **overrides)`` runs with.

    ``opts``, when given, replaces ``base`` (the executor's default options) entirely; the
    ``overrides`` then apply on top. Unknown option names raise :class:`TypeError`.
    """
    given_base: object = base
    given_opts: object = opts
    if not isinstance(given_base, TaskOptions):
        raise TypeError(f"base must be a TaskOptions, got {_describe(given_base)}")
    if given_opts is not None and not isinstance(given_opts, TaskOptions):
        hint = " (pass options as keywords instead)" if isinstance(given_opts, Mapping) else ""
        raise TypeError(f"opts must be a TaskOptions or None, got {_describe(given_opts)}{hint}")
    return (base if opts is None else opts).replace(**overrides)


# --------------------------------------------------------------------------- ExecutorConfig


def _default_start_method(platform: str | None = None) -> str:
    """``"forkserver"`` on Linux, ``"spawn"`` elsewhere."""
    platform = sys.platform if platform is None else platform
    return "forkserver" if platform.startswith("linux") else "spawn"


def _normalise_start_method(name: str, value: object) -> str:
    """Validate a start method, mapping ``"fork"`` to ``"forkserver"``."""
    if value == "fork":
        return "forkserver"
    return check_choice(name, value, START_METHODS)


TRANSPORT_NAMES = ("local",)


def _check_transport(value: object) -> None:
    """A transport name, or an object with what the supervisor needs of a transport."""
    if isinstance(value, str):
        check_choice("transport", value, TRANSPORT_NAMES)
        return
    if not (callable(getattr(value, "connect", None)) and hasattr(value, "capabilities")):
        raise TypeError(
            "transport must be one of "
            + ", ".join(repr(n) for n in TRANSPORT_NAMES)
            + f" or a transport (with connect() and capabilities), got {_describe(value)}"
        )


def _to_tuple(name: str, value: object) -> tuple[Any, ...]:
    """Arguments as a tuple; strings are refused (``("x")`` is a classic missing comma)."""
    if isinstance(value, str | bytes):
        raise TypeError(
            f"{name} must be an iterable of arguments, got the string {value!r}; "
            f"for a single argument write ({value!r},)"
        )
    if not isinstance(value, Iterable):
        raise TypeError(f"{name} must be an iterable of arguments, got {_describe(value)}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """The validated configuration of an executor (built by :func:`build_config`).

    ``procs``
        number of worker processes (>= 1).
    ``start_method``
        ``"forkserver"`` or ``"spawn"``. ``"fork"`` is accepted and mapped to
        ``"forkserver"``: osiiso_mp never forks a threaded parent, so workers never inherit
        the parent's memory (they import what the task needs instead).
    ``concurrency``
        most ``async def`` tasks one worker runs at once on its event loop (>= 1).
    ``initializer``, ``initargs``
        ``initializer(*initargs)`` runs once in each worker when it starts.
    ``max_tasks_per_worker``
        a worker is replaced after this many tasks (``None``: never).
    ``result_ttl``
        seconds a finished record stays available to lookups by id (>= 0; ``inf``: forever).
    ``retain_bytes``
        the memory budget for finished tasks' values kept for ``run()`` and lookups by id,
        in bytes (an int >= 0, or a string such as ``"1GiB"``; ``None``: no budget).
        Values are kept in the serialized form they arrive in, and counted at that size,
        from when their task finishes until ``run()`` has summarised it and its
        ``result_ttl`` has run out. Past the budget the oldest are released: their records
        stay, and reading such a value raises :class:`~osiiso_mp.ValueReleasedError`.
        A value the caller holds (through its future, or from ``map``) is the caller's and
        never released. Default :data:`DEFAULT_RETAIN_BYTES` (256 MiB).
    ``default_options``
        the :class:`TaskOptions` a plain ``submit`` uses (no ``task_id``).
    ``fail_policy``
        ``"continue"`` (default) or ``"fail_first"``: the first failed task cancels every
        other unfinished task (running ones included) except ``must_complete`` ones.
    ``on_timeout``
        what ``run(timeout=...)`` does when time runs out: ``"complete"`` (default) cancels
        the batch's unfinished tasks but lets ``must_complete`` ones finish; ``"cancel"``
        cancels them all.
    ``rate``, ``burst``
        at most ``rate`` attempts start per second, executor-wide (retries count), with
        bursts of up to ``burst`` attempts (a token bucket; ``burst`` >= 1, default 1).
    ``max_pending``, ``submit_timeout``
        most unfinished tasks at once. When they are reached, ``submit`` waits for room up
        to ``submit_timeout`` seconds (``None``: as long as it takes; ``0``: not at all)
        and then raises :class:`~osiiso_mp.QueueFullError`.
    ``on_start(fut)``, ``on_retry(fut, exc)``, ``on_complete(result)``, ``on_attempt(attempt)``
        hooks, run in the parent on the supervisor thread (keep them quick); one that
        raises is logged and ignored.
    ``max_rss``
        most resident memory per worker, in bytes (an int, or a string such as ``"1.5GiB"``
        or ``"512MB"``, stored as bytes; ``None``: no cap). The supervisor samples every
        worker about every 100 ms and again as each task finishes: a worker above the cap
        is killed and replaced, and the tasks it was running fail (or retry) with
        :class:`~osiiso_mp.MemoryLimitError`; one above it between tasks is recycled before
        it starts another.
    ``cpu_affinity``
        pin workers to CPUs (``None``: no pinning). A sequence of CPU ids pins worker slot
        ``i`` to CPU ``cpus[i % len(cpus)]``; a sequence of sets of CPU ids lets slot ``i``
        run on the CPUs of ``sets[i % len(sets)]`` (``[{0, 1}, {2, 3}]``). Stored as a tuple
        of frozensets. Refused where ``os.sched_setaffinity`` does not exist.
    ``nice``
        niceness increment (0 to 19) each worker applies to itself at start (``None``: none).
    ``inner_threads``
        threads per worker for BLAS/OpenMP-style libraries (>= 1): each worker sets
        ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``,
        ``VECLIB_MAXIMUM_THREADS``, ``NUMEXPR_NUM_THREADS`` and ``BLIS_NUM_THREADS`` at start,
        before the initializer and any task, except those the parent's environment already
        defines (they keep the parent's value). ``None`` (default): ``max(1, cpu_budget() //
        procs)``, so that ``procs`` workers do not oversubscribe the CPU budget.
    ``transport``
        how workers are run and reached: ``"local"`` (default), processes of this host
        started by the fork server; or an object implementing the transport interface
        (``osiiso_mp._runtime.transports.Transport``).
    """

    procs: int
    start_method: str
    concurrency: int = 100
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks_per_worker: int | None = None
    result_ttl: float = 300.0
    retain_bytes: int | None = DEFAULT_RETAIN_BYTES
    default_options: TaskOptions = _DEFAULT_OPTIONS
    fail_policy: str = "continue"
    on_timeout: str = "complete"
    rate: float | None = None
    burst: int = 1
    max_pending: int | None = None
    submit_timeout: float | None = None
    on_start: Callable[[Any], object] | None = None
    on_retry: Callable[[Any, BaseException], object] | None = None
    on_complete: Callable[[Any], object] | None = None
    on_attempt: Callable[[Any], object] | None = None
    max_rss: int | None = None
    cpu_affinity: tuple[frozenset[int], ...] | None = None
    nice: int | None = None
    inner_threads: int | None = None
    transport: Any = "local"

    def __post_init__(self) -> None:
        """Validate every field (and normalise ``initargs`` to a tuple)."""
        set_ = object.__setattr__
        set_(
            self,
            "procs",
            _check_int("procs", self.procs, minimum=1, requirement="an int >= 1"),
        )
        set_(
            self,
            "start_method",
            _normalise_start_method("start_method", self.start_method),
        )
        _check_transport(self.transport)
        set_(
            self,
            "concurrency",
            _check_int("concurrency", self.concurrency, minimum=1, requirement="an int >= 1"),
        )
        if self.initializer is not None and not callable(self.initializer):
            raise TypeError(
                f"initializer must be callable or None, got {_describe(self.initializer)}"
            )
        set_(self, "initargs", _to_tuple("initargs", self.initargs))
        if self.max_tasks_per_worker is not None:
            set_(
                self,
                "max_tasks_per_worker",
                _check_int(
                    "max_tasks_per_worker",
                    self.max_tasks_per_worker,
                    minimum=1,
                    requirement="an int >= 1 or None",
                ),
            )
        set_(
            self,
            "result_ttl",
            _check_seconds(
                "result_ttl",
                self.result_ttl,
                requirement="a number of seconds >= 0",
                minimum=0.0,
                inclusive=True,
                allow_inf=True,
            ),
        )
        if self.retain_bytes is not None:
            set_(self, "retain_bytes", _check_retain_bytes(self.retain_bytes))
        if not isinstance(self.default_options, TaskOptions):
            raise TypeError(
                f"default_options must be a TaskOptions, got {_describe(self.default_options)}"
            )
        if self.default_options.task_id is not None:
            raise ValueError(
                "task_id cannot be an executor default: task ids must be unique per task"
            )
        check_choice("fail_policy", self.fail_policy, FAIL_POLICIES)
        check_choice("on_timeout", self.on_timeout, ON_TIMEOUT)
        if self.rate is not None:
            set_(
                self,
                "rate",
                _check_seconds(
                    "rate",
                    self.rate,
                    requirement="a positive number of attempts per second",
                    minimum=0.0,
                    inclusive=False,
                ),
            )
        set_(self, "burst", _check_int("burst", self.burst, minimum=1, requirement="an int >= 1"))
        if self.max_pending is not None:
            set_(
                self,
                "max_pending",
                _check_int(
                    "max_pending", self.max_pending, minimum=1, requirement="an int >= 1 or None"
                ),
            )
        if self.submit_timeout is not None:
            set_(
                self,
                "submit_timeout",
                _check_seconds(
                    "submit_timeout",
                    self.submit_timeout,
                    requirement="a number of seconds >= 0 or None",
                    minimum=0.0,
                    inclusive=True,
                ),
            )
        for hook in HOOKS:
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise TypeError(f"{hook} must be callable or None, got {_describe(value)}")
        if self.max_rss is not None:
            set_(self, "max_rss", _check_max_rss(self.max_rss))
        if self.cpu_affinity is not None:
            set_(self, "cpu_affinity", _check_cpu_affinity(self.cpu_affinity))
        if self.nice is not None:
            set_(
                self,
                "nice",
                _check_int("nice", self.nice, minimum=0, requirement="an int from 0 to 19"),
            )
            if self.nice > 19:
                raise ValueError(f"nice must be an int from 0 to 19, got {self.nice!r}")
        if self.inner_threads is not None:
            set_(
                self,
                "inner_threads",
                _check_int(
                    "inner_threads",
                    self.inner_threads,
                    minimum=1,
                    requirement="an int >= 1 or None",
                ),
            )


_MAX_RSS_REQUIREMENT = "a positive number of bytes or a size string like '1.5GiB'"


def _check_max_rss(value: object) -> int:
    """Validate ``max_rss``: a positive int of bytes or a size string; bytes out."""
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as exc:
            raise ValueError(f"max_rss must be {_MAX_RSS_REQUIREMENT}: {exc}") from None
    if not _is_int(value):
        raise TypeError(f"max_rss must be {_MAX_RSS_REQUIREMENT}, got {_describe(value)}")
    size = int(cast(numbers.Integral, value))
    if size <= 0:
        raise ValueError(f"max_rss must be {_MAX_RSS_REQUIREMENT}, got {value!r}")
    return size


_RETAIN_REQUIREMENT = "a number of bytes >= 0, a size string like '1GiB', or None"


def _check_retain_bytes(value: object) -> int:
    """Validate ``retain_bytes``: an int >= 0 or a size string; bytes out."""
    if isinstance(value, str):
        try:
            return parse_size(value, minimum=0)
        except ValueError as exc:
            raise ValueError(f"retain_bytes must be {_RETAIN_REQUIREMENT}: {exc}") from None
    if not _is_int(value):
        raise TypeError(f"retain_bytes must be {_RETAIN_REQUIREMENT}, got {_describe(value)}")
    size = int(cast(numbers.Integral, value))
    if size < 0:
        raise ValueError(f"retain_bytes must be {_RETAIN_REQUIREMENT}, got {value!r}")
    return size


_AFFINITY_REQUIREMENT = (
    "a sequence of CPU ids (worker i gets cpus[i % len(cpus)]) or of sets of CPU ids"
)


def _check_cpu(value: object) -> int:
    """One CPU id of ``cpu_affinity``: an int >= 0."""
    return _check_int("cpu_affinity CPU ids", value, minimum=0, requirement="ints >= 0")


def _check_cpu_affinity(value: object) -> tuple[frozenset[int], ...]:
    """Validate ``cpu_affinity``; one frozenset of CPU ids per entry (slot ``i`` gets entry
    ``i % len``)."""
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError(
            "cpu_affinity is not supported on this platform (it has no os.sched_setaffinity)"
        )
    if isinstance(value, AbstractSet | Mapping):
        raise TypeError(
            f"cpu_affinity must be {_AFFINITY_REQUIREMENT}, got {_describe(value)}; a set has "
            "no order: write [0, 1] to pin each worker to one CPU, or [{0, 1}] to let every "
            "worker use both"
        )
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"cpu_affinity must be {_AFFINITY_REQUIREMENT}, got {_describe(value)}")
    entries: list[frozenset[int]] = []
    for item in value:
        if _is_int(item):
            entries.append(frozenset((_check_cpu(item),)))
            continue
        if isinstance(item, str | bytes) or not isinstance(item, Iterable):
            raise TypeError(
                f"cpu_affinity must be {_AFFINITY_REQUIREMENT}, got an entry {_describe(item)}"
            )
        cpus = frozenset(_check_cpu(cpu) for cpu in item)
        if not cpus:
            raise ValueError("cpu_affinity entries must not be empty, got an empty set of CPUs")
        entries.append(cpus)
    if not entries:
        raise ValueError(f"cpu_affinity must be {_AFFINITY_REQUIREMENT} or None, got {value!r}")
    return tuple(entries)


FAIL_POLICIES: tuple[str, ...] = ("continue", "fail_first")
"""Allowed values of ``fail_policy``."""

ON_TIMEOUT: tuple[str, ...] = ("complete", "cancel")
"""Allowed values of ``on_timeout``."""

HOOKS: tuple[str, ...] = ("on_start", "on_retry", "on_complete", "on_attempt")
"""The executor's hook keywords."""

# Keywords passed straight through to ExecutorConfig (validated there).
_PLAIN_KEYWORDS: tuple[str, ...] = (
    "concurrency",
    "result_ttl",
    "retain_bytes",
    "fail_policy",
    "on_timeout",
    "rate",
    "burst",
    "max_pending",
    "submit_timeout",
    *HOOKS,
    "max_rss",
    "cpu_affinity",
    "nice",
    "inner_threads",
    "transport",
)

_EXECUTOR_KEYWORDS: tuple[str, ...] = (
    "max_workers",
    "mp_context",
    "start_method",
    "initializer",
    "initargs",
    "max_tasks_per_child",
    "max_tasks_per_worker",
    *_PLAIN_KEYWORDS,
)


def _alias(first: tuple[str, object], second: tuple[str, object]) -> tuple[str, object]:
    """Merge two alias keywords: ``(name, value)`` of the one given (``None`` = not given)."""
    (name1, value1), (name2, value2) = first, second
    if value1 is not None and value2 is not None and value1 != value2:
        raise ValueError(
            f"{name1} and {name2} are aliases; got {name1}={value1!r} and {name2}={value2!r}"
        )
    if value1 is None and value2 is not None:
        return name2, value2
    return name1, value1


def build_config(
    procs: int | None, kwargs: dict[str, Any], *, cpu_budget: Callable[[], int]
) -> ExecutorConfig:
    """Turn ``Executor(procs, **kwargs)`` into an :class:`ExecutorConfig`.

    - ``procs`` / ``max_workers`` (aliases): ``None`` means ``cpu_budget()``.
    - ``mp_context`` (a multiprocessing context) or ``start_method`` (a string), not both;
      ``"fork"`` becomes ``"forkserver"``. Default: ``"forkserver"`` on Linux, else
      ``"spawn"``.
    - the retention of finished tasks: ``result_ttl`` and ``retain_bytes``.
    - ``initializer``, ``initargs``, ``concurrency``, and the policies ``fail_policy``,
      ``on_timeout``, ``rate``, ``burst``, ``max_pending`` and the hooks.
    - the resource caps ``max_rss``, ``cpu_affinity``, ``nice`` and ``inner_threads``
      (``inner_threads=None`` stays ``None`` here: the workers' default is worked out when
      they start, so that ``cpu_budget`` is only called when ``procs`` is ``None``).
    - ``max_tasks_per_child`` / ``max_tasks_per_worker`` (aliases).
    - any :class:`TaskOptions` field (``priority``, ``timeout``, ``retries``, ...) sets the
      executor's default task options; ``task_id`` is refused (ids are unique per task).

    Any other keyword raises :class:`TypeError`, as an unexpected keyword argument would.
    ``kwargs`` is not modified.
    """
    known = frozenset(_EXECUTOR_KEYWORDS) | TaskOptions.FIELDS
    for key in kwargs:
        if key == "procs":
            raise TypeError("Executor() got multiple values for argument 'procs'")
        if key not in known:
            raise TypeError(
                f"Executor() got an unexpected keyword argument {key!r}"
                f"{_suggest(key, sorted(known))}"
            )

    procs_name, procs_value = _alias(("procs", procs), ("max_workers", kwargs.get("max_workers")))
    if procs_value is None:
        procs_value = cpu_budget()
    if _is_int(procs_value) and int(cast(numbers.Integral, procs_value)) < 1:
        # the standard library's words, which code written for ProcessPoolExecutor may match
        raise ValueError(f"{procs_name} must be greater than 0, got {procs_value!r}")
    n_procs = _check_int(procs_name, procs_value, minimum=1, requirement="an int >= 1")

    mp_context = kwargs.get("mp_context")
    start_method = kwargs.get("start_method")
    if mp_context is not None and start_method is not None:
        raise ValueError("give mp_context or start_method, not both")
    if mp_context is not None:
        start_method = _context_start_method(mp_context)
        method_name = "mp_context's start method"
    else:
        method_name = "start_method"
    if start_method is None:
        start_method = _default_start_method()
    start_method = _normalise_start_method(method_name, start_method)

    tasks_name, max_tasks = _alias(
        ("max_tasks_per_worker", kwargs.get("max_tasks_per_worker")),
        ("max_tasks_per_child", kwargs.get("max_tasks_per_child")),
    )
    if max_tasks is not None:
        max_tasks = _check_int(tasks_name, max_tasks, minimum=1, requirement="an int >= 1 or None")

    if kwargs.get("task_id") is not None:
        raise ValueError(
            "task_id cannot be an executor default: task ids must be unique per task "
            "(pass it per task, with ex.options(task_id=...))"
        )
    option_kwargs = {k: v for k, v in kwargs.items() if k in TaskOptions.FIELDS}

    extra = {key: kwargs[key] for key in _PLAIN_KEYWORDS if key in kwargs}

    return ExecutorConfig(
        procs=n_procs,
        start_method=start_method,
        initializer=kwargs.get("initializer"),
        initargs=kwargs.get("initargs", ()),
        max_tasks_per_worker=max_tasks,
        default_options=TaskOptions(**option_kwargs),
        **extra,
    )


def _context_start_method(ctx: object) -> object:
    """The start method of a multiprocessing context, without fixing the default one.

    ``multiprocessing.get_context()`` (the default context) would otherwise set the global
    start method as a side effect of being asked; ``None`` comes back for it when unset.
    """
    context = sys.modules.get("multiprocessing.context")  # not imported: not its context
    if context is not None and isinstance(ctx, context.DefaultContext):
        return ctx.get_start_method(allow_none=True)
    get = getattr(ctx, "get_start_method", None)
    if not callable(get):
        raise TypeError(
            "mp_context must be a multiprocessing context (with get_start_method()), "
            f"got {_describe(ctx)}"
        )
    return get()
