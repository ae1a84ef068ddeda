"""The keywords of ``Executor(...)``, ``AsyncExecutor(...)`` and ``ex.options(...)``, typed.

Each facade takes its options as ``**keywords: Unpack[...]`` of these ``TypedDict``s, so an
editor completes the names and a type checker checks names and value types, while the
options stay plain keywords at run time (validated, with "did you mean", by
:func:`~._build_config.build_config` and :class:`~._task_options.TaskOptions`). The types
here are what callers may pass (a size as ``"2GiB"``, any iterable of ``initargs``), not
the normalised types the configuration stores. Names chosen from a few strings
(``start_method``, ``fail_policy``, ``on_timeout``, ``transport``) are typed ``str``, not
``Literal``: a value read from a command line or a config file type-checks as it is, and
is checked when the executor is made.

A test (``tests/unit/test_keywords.py``) keeps these in step with the options the runtime
accepts. Every annotation resolves at run time (``typing.get_type_hints``), for the tools
that read signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from typing import Any, Protocol, TypedDict

from ._runtime.transports._base import Transport  # (a RayTransport is one)

__all__ = ["ExecutorKeywords", "TaskOptionKeywords"]


class MultiprocessingContext(Protocol):
    """What ``mp_context`` must be: a ``multiprocessing`` context (``get_context("spawn")``),
    of which only the start method is read. A protocol, so that building the executor's
    class does not import ``multiprocessing`` (start-up time)."""

    def get_start_method(self, allow_none: bool) -> str | None:
        """The context's start method."""


class _DefaultTaskOptionKeywords(TypedDict, total=False):
    """The task options an executor may set as its defaults (all but ``task_id``)."""

    priority: int
    must_complete: bool
    timeout: float | None
    retries: int
    retry_delay: float
    backoff: float
    delay: float | None
    run_at: float | None
    name: str | None
    group_id: Hashable | None
    detached: bool
    metadata: Any


class TaskOptionKeywords(_DefaultTaskOptionKeywords, total=False):
    """The keywords of ``ex.options(...)``: any :class:`~osiiso_mp.TaskOptions` field."""

    task_id: str | None


class ExecutorKeywords(_DefaultTaskOptionKeywords, total=False):
    """The keywords of ``Executor(procs, ...)`` and ``AsyncExecutor(procs, ...)`` (see
    :class:`~osiiso_mp.ExecutorConfig` for each), ``ProcessPoolExecutor``'s among them,
    and any task option but ``task_id``, which sets the executor's default."""

    max_workers: int | None
    mp_context: MultiprocessingContext | None
    start_method: str | None  # "forkserver", "spawn" ("fork" means "forkserver")
    initializer: Callable[..., object] | None
    initargs: Iterable[Any]
    max_tasks_per_child: int | None
    max_tasks_per_worker: int | None
    concurrency: int
    result_ttl: float
    retain_bytes: int | str | None
    fail_policy: str  # "continue" or "fail_first"
    on_timeout: str  # "complete" or "cancel"
    rate: float | None
    burst: int
    max_pending: int | None
    submit_timeout: float | None
    on_start: Callable[[Any], object] | None
    on_retry: Callable[[Any, BaseException], object] | None
    on_complete: Callable[[Any], object] | None
    on_attempt: Callable[[Any], object] | None
    max_rss: int | str | None
    cpu_affinity: Sequence[int] | Sequence[Collection[int]] | None
    nice: int | None
    inner_threads: int | None
    transport: str | Transport  # "local" or "ray", or a transport (a RayTransport)
