"""The configuration an executor is built with: :class:`ExecutorConfig`, validated at
construction, and the choices its fields take.

:func:`~._build_config.build_config` makes one from the keyword arguments of
``Executor(...)``. A plain value: nothing here touches a process, a pipe or a clock. The
checks are those of :mod:`._checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._checks import (
    check_choice,
    check_cpu_affinity,
    check_int,
    check_max_rss,
    check_retain_bytes,
    check_seconds,
    describe,
)
from ._task_options import DEFAULT_OPTIONS, TaskOptions

__all__ = [
    "DEFAULT_RETAIN_BYTES",
    "FAIL_POLICIES",
    "HOOKS",
    "ON_TIMEOUT",
    "START_METHODS",
    "TRANSPORT_NAMES",
    "ExecutorConfig",
    "normalise_start_method",
]

#: The start methods a worker can be started with. ``"fork"`` is accepted as input and
#: mapped to ``"forkserver"``: osiiso_mp never forks a (threaded) parent process.
START_METHODS: tuple[str, ...] = ("spawn", "forkserver")


DEFAULT_RETAIN_BYTES = 256 << 20
"""The default ``retain_bytes``: 256 MiB of finished tasks' values kept for ``run()`` and
lookups by id.

Enough to keep every value of a typical batch (a million small results pickle to a few tens
of MiB) until ``run()`` summarises it, while a pipeline streaming large results that never
calls ``run()`` levels off at a few hundred MiB instead of growing with every result:
values the caller is given are the caller's, and what the executor keeps besides is a
convenience, which should cost a bounded slice of a machine's memory (a fixed figure, the
same on every machine, so that a program behaves alike wherever it runs)."""

FAIL_POLICIES: tuple[str, ...] = ("continue", "fail_first")
"""Allowed values of ``fail_policy``."""

ON_TIMEOUT: tuple[str, ...] = ("complete", "cancel")
"""Allowed values of ``on_timeout``."""

HOOKS: tuple[str, ...] = ("on_start", "on_retry", "on_complete", "on_attempt")
"""The executor's hook keywords."""

TRANSPORT_NAMES: tuple[str, ...] = ("local", "ray")
"""The transports ``transport`` may name (besides a transport object)."""


def normalise_start_method(name: str, value: object) -> str:
    """Validate a start method, mapping ``"fork"`` to ``"forkserver"``."""
    if value == "fork":
        return "forkserver"
    return check_choice(name, value, START_METHODS)


def _check_transport(value: object) -> None:
    """A transport name, or an object with what the supervisor needs of a transport."""
    if isinstance(value, str):
        check_choice("transport", value, TRANSPORT_NAMES)
        return
    if not (callable(getattr(value, "connect", None)) and hasattr(value, "capabilities")):
        raise TypeError(
            "transport must be one of "
            + ", ".join(repr(n) for n in TRANSPORT_NAMES)
            + f" or a transport (with connect() and capabilities), got {describe(value)}"
        )


def _to_tuple(name: str, value: object) -> tuple[Any, ...]:
    """Arguments as a tuple; strings are refused (``("x")`` is a classic missing comma)."""
    if isinstance(value, str | bytes):
        raise TypeError(
            f"{name} must be an iterable of arguments, got the string {value!r}; "
            f"for a single argument write ({value!r},)"
        )
    if not isinstance(value, Iterable):
        raise TypeError(f"{name} must be an iterable of arguments, got {describe(value)}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """The validated configuration of an executor (built by :func:`~._build_config.build_config`).

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
        started by the fork server; ``"ray"``, Ray actors on the Ray cluster this process
        is connected to (else ``RAY_ADDRESS``'s, else a local Ray started for the
        executor), a default :class:`~osiiso_mp.RayTransport`; or a transport object
        (a ``RayTransport(...)`` with options, or one implementing
        ``osiiso_mp._runtime.transports.Transport``).
    """

    procs: int
    start_method: str
    concurrency: int = 100
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks_per_worker: int | None = None
    result_ttl: float = 300.0
    retain_bytes: int | None = DEFAULT_RETAIN_BYTES
    default_options: TaskOptions = DEFAULT_OPTIONS
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
            check_int("procs", self.procs, minimum=1, requirement="an int >= 1"),
        )
        set_(
            self,
            "start_method",
            normalise_start_method("start_method", self.start_method),
        )
        _check_transport(self.transport)
        set_(
            self,
            "concurrency",
            check_int("concurrency", self.concurrency, minimum=1, requirement="an int >= 1"),
        )
        if self.initializer is not None and not callable(self.initializer):
            raise TypeError(
                f"initializer must be callable or None, got {describe(self.initializer)}"
            )
        set_(self, "initargs", _to_tuple("initargs", self.initargs))
        if self.max_tasks_per_worker is not None:
            set_(
                self,
                "max_tasks_per_worker",
                check_int(
                    "max_tasks_per_worker",
                    self.max_tasks_per_worker,
                    minimum=1,
                    requirement="an int >= 1 or None",
                ),
            )
        set_(
            self,
            "result_ttl",
            check_seconds(
                "result_ttl",
                self.result_ttl,
                requirement="a number of seconds >= 0",
                minimum=0.0,
                inclusive=True,
                allow_inf=True,
            ),
        )
        if self.retain_bytes is not None:
            set_(self, "retain_bytes", check_retain_bytes(self.retain_bytes))
        if not isinstance(self.default_options, TaskOptions):
            raise TypeError(
                f"default_options must be a TaskOptions, got {describe(self.default_options)}"
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
                check_seconds(
                    "rate",
                    self.rate,
                    requirement="a positive number of attempts per second",
                    minimum=0.0,
                    inclusive=False,
                ),
            )
        set_(self, "burst", check_int("burst", self.burst, minimum=1, requirement="an int >= 1"))
        if self.max_pending is not None:
            set_(
                self,
                "max_pending",
                check_int(
                    "max_pending", self.max_pending, minimum=1, requirement="an int >= 1 or None"
                ),
            )
        if self.submit_timeout is not None:
            set_(
                self,
                "submit_timeout",
                check_seconds(
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
                raise TypeError(f"{hook} must be callable or None, got {describe(value)}")
        if self.max_rss is not None:
            set_(self, "max_rss", check_max_rss(self.max_rss))
        if self.cpu_affinity is not None:
            set_(self, "cpu_affinity", check_cpu_affinity(self.cpu_affinity))
        if self.nice is not None:
            set_(
                self,
                "nice",
                check_int("nice", self.nice, minimum=0, requirement="an int from 0 to 19"),
            )
            if self.nice > 19:
                raise ValueError(f"nice must be an int from 0 to 19, got {self.nice!r}")
        if self.inner_threads is not None:
            set_(
                self,
                "inner_threads",
                check_int(
                    "inner_threads",
                    self.inner_threads,
                    minimum=1,
                    requirement="an int >= 1 or None",
                ),
            )
