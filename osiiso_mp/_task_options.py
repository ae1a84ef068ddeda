"""The options of one task: :class:`TaskOptions`, validated at construction, and
:func:`resolve_options`, what a task submitted through ``ex.options(...)`` runs with.

Plain values: nothing here touches a process, a pipe or a clock. The checks (and their one
rule for :class:`TypeError` versus :class:`ValueError`) are in :mod:`._checks`; the
executor-level configuration, whose ``default_options`` is a :class:`TaskOptions`, is in
:mod:`._config`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._checks import check_bool, check_int, check_seconds, describe, suggest

__all__ = ["DEFAULT_OPTIONS", "TaskOptions", "resolve_options"]

_TASK_ID_MAX_LEN = 200


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
            check_int(
                "priority",
                self.priority,
                minimum=None,
                requirement="an int (lower runs first)",
            ),
        )
        check_bool("must_complete", self.must_complete)
        check_bool("detached", self.detached)
        if self.timeout is not None:
            set_(
                self,
                "timeout",
                check_seconds(
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
            check_int("retries", self.retries, minimum=0, requirement="an int >= 0"),
        )
        set_(
            self,
            "retry_delay",
            check_seconds(
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
            check_seconds(
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
                check_seconds(
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
                check_seconds(
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
                raise TypeError(f"name must be a str or None, got {describe(self.name)}")
            if not self.name:
                raise ValueError("name must be a non-empty string, got ''")
        try:
            hash(self.group_id)
        except TypeError:
            raise TypeError(f"group_id must be hashable, got {describe(self.group_id)}") from None
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
        k = check_int("k", k, minimum=1, requirement="a retry number >= 1")
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
DEFAULT_OPTIONS = TaskOptions()
"""The options of a task given none (an executor's ``default_options`` unless told)."""


def _check_task_id(task_id: object) -> None:
    """Validate a caller-chosen task id."""
    if not isinstance(task_id, str):
        raise TypeError(f"task_id must be a str or None, got {describe(task_id)}")
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
                f"{suggest(name, _OPTION_ORDER)}"
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
        raise TypeError(f"base must be a TaskOptions, got {describe(given_base)}")
    if given_opts is not None and not isinstance(given_opts, TaskOptions):
        hint = " (pass options as keywords instead)" if isinstance(given_opts, Mapping) else ""
        raise TypeError(f"opts must be a TaskOptions or None, got {describe(given_opts)}{hint}")
    return (base if opts is None else opts).replace(**overrides)
