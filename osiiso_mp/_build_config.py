"""``Executor(procs, **kwargs)`` made into an :class:`~._config.ExecutorConfig`:
:func:`build_config`.

It knows the executor's keywords, ``ProcessPoolExecutor``'s among them (``max_workers``,
``mp_context``, ``max_tasks_per_child``), and their aliases; the start method a
multiprocessing context stands for, and the default one; and which keywords are task
options, which set the executor's default :class:`~._task_options.TaskOptions`. Every value
is then checked by the config itself. Nothing here touches a process, a pipe or a clock.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from typing import Any, cast

from ._checks import check_int, describe, is_int, suggest
from ._config import HOOKS, ExecutorConfig, normalise_start_method
from ._runtime.transports._base import named_transport
from ._task_options import TaskOptions

__all__ = ["build_config"]

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
                f"{suggest(key, sorted(known))}"
            )

    procs_name, procs_value = _alias(("procs", procs), ("max_workers", kwargs.get("max_workers")))
    if procs_value is None:
        transport = named_transport(kwargs.get("transport", "local"))
        if hasattr(transport, "default_procs"):  # a cluster's: its CPUs
            kwargs = {**kwargs, "transport": transport}
            procs_value = transport.default_procs()
        else:
            procs_value = cpu_budget()
    if is_int(procs_value) and int(cast(numbers.Integral, procs_value)) < 1:
        # the standard library's words, which code written for ProcessPoolExecutor may match
        raise ValueError(f"{procs_name} must be greater than 0, got {procs_value!r}")
    n_procs = check_int(procs_name, procs_value, minimum=1, requirement="an int >= 1")

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
    start_method = normalise_start_method(method_name, start_method)

    tasks_name, max_tasks = _alias(
        ("max_tasks_per_worker", kwargs.get("max_tasks_per_worker")),
        ("max_tasks_per_child", kwargs.get("max_tasks_per_child")),
    )
    if max_tasks is not None:
        max_tasks = check_int(tasks_name, max_tasks, minimum=1, requirement="an int >= 1 or None")

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
            f"got {describe(ctx)}"
        )
    return get()


def _default_start_method(platform: str | None = None) -> str:
    """``"forkserver"`` on Linux, ``"spawn"`` elsewhere."""
    platform = sys.platform if platform is None else platform
    return "forkserver" if platform.startswith("linux") else "spawn"
