"""``Executor``: the sync facade, a drop-in ``concurrent.futures.Executor``.

It adds to the executor's core (:mod:`._core`, shared with ``AsyncExecutor``) only its
way of waiting: on ``concurrent.futures`` futures, on this thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Coroutine, Generator, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, Unpack, overload

from ._build_config import build_config
from ._checks import from_caller
from ._config import ExecutorConfig
from ._keywords import ExecutorKeywords, TaskOptionKeywords
from ._resources import cpu_budget
from ._runtime.transports._forkserver import start_early
from ._task_options import TaskOptions, resolve_options

if TYPE_CHECKING:
    from ._checkpoint import (
        Checkpoint,
    )  # loaded on first use: start-up time (see the package's __init__)
    from ._core import ExecutorCore
    from ._future import TaskFuture
    from ._group import A, TaskGroup
    from ._progress import ProgressArg
    from ._results import TaskResult
    from ._snapshots import PoolStats, TaskInfo
    from ._summary import RunSummary

__all__ = ["Executor", "OptionsView"]

P = ParamSpec("P")
R = TypeVar("R")


class _Submitter:
    """The submission methods shared by :class:`Executor` and :class:`OptionsView`."""

    _core: ExecutorCore
    _opts: TaskOptions

    def options(
        self, opts: TaskOptions | None = None, **overrides: Unpack[TaskOptionKeywords]
    ) -> OptionsView:
        """A view whose ``submit``/``map``/``group`` give tasks these options, on top of
        this executor's (or view's): ``ex.options(retries=3).submit(f, x)``.

        ``opts`` (a :class:`TaskOptions`) replaces the defaults; keyword ``overrides``
        apply on top. Unknown names raise ``TypeError``; bad values ``ValueError``
        naming the option (raised from the caller's line).
        """
        try:
            resolved = resolve_options(self._opts, opts, **overrides)
        except (TypeError, ValueError) as exc:
            raise from_caller(exc) from None
        return OptionsView(self._core, resolved)

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskFuture[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]: ...

    def submit(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[Any]:
        """Schedule ``fn(*args, **kwargs)``; return its :class:`TaskFuture`.

        Sync and ``async def`` callables are both accepted; keyword arguments go to ``fn``.
        A callable or argument that cannot be pickled does not raise here: the task fails
        with a :class:`SerializationError` naming the stage, and the pool is untouched.
        For an ``async def`` callable the future's value is what the coroutine returns.
        """
        return self._core.submit(self._opts, fn, args, kwargs)

    @overload
    def map(
        self,
        fn: Callable[..., Coroutine[Any, Any, R]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> Generator[R, None, None]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> Generator[R, None, None]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> Generator[Any, None, None]:
        """Like :meth:`concurrent.futures.Executor.map`: values in input order, lazily.

        Every element is its own task with its own id and :class:`TaskResult`, in the run's
        summary and in lookups by id. Batching is the transport's job: elements travel to
        the workers in chunks, ``chunksize`` of them per message, or with ``chunksize=None``
        as many as make about 10 ms of work once the callable's duration is known (at most
        256 before, always few enough that every worker gets several chunks, and about
        16 MiB pickled at most).
        ``chunksize=1`` sends each element on its own, as :meth:`submit` does; so do an
        ``async def`` callable, a ``timeout`` option, a ``task_id`` option, hooks,
        ``max_pending``, ``rate`` and ``max_tasks_per_worker``, which need a task per
        message. Inside a chunk, an element that
        raises fails alone (and is retried on its own, with ``retries``); a chunk whose
        worker dies is run again element by element, so the one that crashes is named.

        Without ``buffersize`` every element is submitted at once, as in the standard
        library, and the workers run ahead of a slower reader by at most a quarter of
        ``retain_bytes`` (at least 32 MiB) of values waiting for it: past that, the next
        elements wait, queued, until the reader catches up, or until something else waits
        for them (``run()``, shutdown, the iterator dropped). With ``buffersize``, at most
        ``buffersize`` elements are outstanding, so huge or endless iterables stream in
        bounded memory. ``timeout`` bounds the whole iteration, from
        this call. The first failure raises when it is reached; closing the iterator early
        cancels what is left. ``progress`` is as for :meth:`Executor.run`; the bar follows
        the tasks from the first value asked for until the iterator ends (its total is
        unknown for an iterator streamed with ``buffersize`` until the iterator is used up).

        ``checkpoint`` (a :class:`Checkpoint`) makes the map resumable: elements it holds
        from an earlier run are not run again; their stored values come back in their
        place, and ``run()`` lists each with a ``succeeded`` record with no attempt and the
        message ``"restored from checkpoint"``. The others' successes are recorded as they
        come (failures are not: they run again next time), and every value this iterator
        yields is durable in the checkpoint before it is yielded. An element's key is its
        canonical JSON (of the argument tuple with several iterables), or ``key(element)``;
        the namespace is the callable's module and qualified name, or ``namespace`` (which
        a lambda needs). An element with no JSON and no ``key`` raises ``TypeError``
        before anything is submitted. See the checkpoints guide.
        """
        from ._map import check_map_sizes, map_results
        from ._mapping import map_window
        from ._progress import progress_tracker, sized_total
        from ._resume import resume_for

        check_map_sizes(chunksize, buffersize)
        resume = resume_for(checkpoint, fn, self._opts, key, namespace, where="map()")
        tracker = progress_tracker(
            progress, total=sized_total(iterables), desc="osiiso_mp map", pool=self._core.stats
        )
        end = None if timeout is None else time.monotonic() + timeout
        args = zip(*iterables, strict=False)
        window = map_window(
            self._core, self._opts, fn, args, chunksize, buffersize, resume, len(iterables) == 1
        )
        return map_results(window, end, tracker)

    @overload
    def group(
        self,
        fn: Callable[[A], Coroutine[Any, Any, R]],
        iterable: Iterable[A],
        /,
        *,
        group_id: Hashable | None = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> TaskGroup[R]: ...

    @overload
    def group(
        self,
        fn: Callable[[A], R],
        iterable: Iterable[A],
        /,
        *,
        group_id: Hashable | None = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> TaskGroup[R]: ...

    @overload
    def group(
        self, calls: Iterable[tuple[Any, ...]], /, *, group_id: Hashable | None = None
    ) -> TaskGroup[Any]: ...

    def group(
        self,
        fn_or_calls: Any,
        iterable: Iterable[Any] | None = None,
        /,
        *,
        group_id: Hashable | None = None,
        checkpoint: Checkpoint | None = None,
        key: Callable[[Any], str] | None = None,
        namespace: str | None = None,
    ) -> TaskGroup[Any]:
        """Submit tasks as one :class:`TaskGroup`, all carrying the same ``group_id``.

        ``group(fn, iterable)`` submits ``fn(item)`` for every item; ``group([(fn, *args),
        ...])`` submits each tuple's call. ``group_id=None`` means the view's ``group_id``
        (``ex.options(group_id=...)``) or else a fresh id (``"group-"`` and 12 hex digits).
        Every task gets this view's options. Bad arguments raise
        ``TypeError`` before anything is submitted; an empty group is valid.

        ``checkpoint`` (a :class:`Checkpoint`; ``group(fn, iterable)`` only): items it holds
        from an earlier run are not run again. Their futures are done from the start, with
        the stored value and a ``succeeded`` record with no attempt (message ``"restored
        from checkpoint"``); the others' successes are recorded as they come, and are
        durable once :meth:`TaskGroup.values` or :meth:`TaskGroup.wait` returns. ``key``
        and ``namespace`` as for :meth:`map`.
        """
        from ._group import build_group

        return build_group(
            self._core, self._opts, fn_or_calls, iterable, group_id, checkpoint, key, namespace
        )


class OptionsView(_Submitter):
    """An executor bound to task options: ``ex.options(retries=3).submit(f, x)``."""

    def __init__(self, core: ExecutorCore, opts: TaskOptions) -> None:
        self._core = core
        self._opts = opts

    @property
    def task_options(self) -> TaskOptions:
        """The options every task submitted through this view gets."""
        return self._opts


class Executor(_Submitter, cf.Executor):
    """A pool of persistent worker processes behind a ``concurrent.futures.Executor``.

    ``procs=None`` means the CPUs this process may really use (affinity and cgroup quota
    aware). ``ProcessPoolExecutor``'s keywords are accepted too (``max_workers``,
    ``mp_context``, ``initializer``, ``initargs``, ``max_tasks_per_child``), so swapping the
    class name is enough to adopt it. Other keywords: ``start_method`` (``"forkserver"``,
    the default on Linux, or ``"spawn"``), ``concurrency`` (async tasks at once per worker),
    ``max_tasks_per_worker``, and any :class:`TaskOptions` field as the default for every
    task (``Executor(retries=2, timeout=30)``).

    As a context manager, a clean exit drains (waits for every task); an exception
    force-cancels (queued tasks are cancelled and running attempts killed).

    What is kept, and for how long (see ``docs/introspection.md``):

    - every unfinished task, with its arguments, until it finishes;
    - each finished task's :class:`TaskResult`, for lookups by id (``status``, ``info``,
      ``task_result``), for ``result_ttl`` seconds (default 300) after it finished;
    - the records of the batch, until ``run()`` summarises them. Once the batch reaches
      10,000 tasks, those whose record finished more than ``result_ttl`` ago are dropped
      from it, so an executor that never calls ``run()`` keeps bounded memory;
    - the values in those records, in the serialized form they came in from the worker,
      within ``retain_bytes`` (default 256 MiB): past it the oldest are released (their
      records stay; reading such a value raises :class:`ValueReleasedError`);
    - a value handed to you is yours: a :class:`TaskFuture` keeps its value and its own
      record for as long as you keep the future, and ``map`` lets go of each value as it
      yields it. The executor holds no reference to a value you have dropped.
    """

    def __init__(self, procs: int | None = None, **config: Unpack[ExecutorKeywords]) -> None:
        try:
            built = build_config(procs, dict(config), cpu_budget=cpu_budget)
        except (TypeError, ValueError) as exc:
            raise from_caller(exc) from None
        start_early(built.transport)
        from ._core import ExecutorCore  # the runtime: imported while the fork server boots

        self._core = ExecutorCore(built)
        self._opts = self._core.opts

    @classmethod
    def _over(cls, core: ExecutorCore) -> Executor:
        """A sync facade over an existing core (``AsyncExecutor.executor``)."""
        ex = cls.__new__(cls)
        ex._core = core
        ex._opts = core.opts
        return ex

    def __repr__(self) -> str:
        state = "closed" if self._core.closed else "open"
        config = self._core.config
        transport = config.transport
        if transport == "local":
            where = config.start_method  # how its workers start
        else:  # where they run
            where = transport if isinstance(transport, str) else repr(transport)
        return f"<Executor procs={config.procs} {where} {state}>"

    @property
    def procs(self) -> int:
        """Number of worker processes."""
        return self._core.config.procs

    @property
    def _max_workers(self) -> int:
        """``procs`` under ``ProcessPoolExecutor``'s attribute name, which tools such as
        ``dask.compute(scheduler=ex)`` read to size themselves."""
        return self._core.config.procs

    @property
    def config(self) -> ExecutorConfig:
        """The validated configuration."""
        return self._core.config

    # -- running and stopping --------------------------------------------------------------

    def run(
        self,
        timeout: float | None = None,
        *,
        strict: bool = False,
        fail_policy: str | None = None,
        progress: ProgressArg = None,
    ) -> RunSummary:
        """Wait for every task submitted since the previous ``run()`` and summarise them.

        The summary lists exactly that batch, in submission order (detached tasks are left
        out); tasks that finished before this call are in it too. With ``timeout``
        (seconds), when time runs out the executor's ``on_timeout`` policy applies:
        ``"complete"`` cancels the batch's unfinished tasks except ``must_complete`` ones,
        which are waited for; ``"cancel"`` cancels them all. The summary then has
        ``timed_out=True``. ``fail_policy`` overrides the executor's for the duration of
        this call (``"fail_first"``: the first failure cancels every other unfinished task
        but ``must_complete`` ones, including a failure that happened before the call).
        ``strict=True`` raises :class:`ExecutionError` if any task failed.
        ``progress=True`` shows a progress bar while waiting (tqdm's, notebook or console,
        when tqdm is installed; else a text line on stderr); ``progress="live"`` shows the
        live view (counts, throughput, queue, each worker, the last failure; an HTML block
        updated in place in a notebook, a line on stderr elsewhere); ``progress=callable``
        calls it with a :class:`ProgressEvent` as each task finishes and once more at the end.
        """
        core = self._core
        run = core.start_run(fail_policy, progress, "osiiso_mp run")
        try:
            _, not_done = cf.wait(run.futures, timeout)
            if not_done:
                core.cancel_on_timeout(run, not_done)
                cf.wait(run.futures)
        except BaseException:
            core.abort_run(run)  # Ctrl-C while waiting: cancel the batch, keep its records
            raise
        finally:
            core.end_run(run)
        return core.summarise(run, bool(not_done), strict)

    def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, kill: bool = False
    ) -> None:
        """Stop taking tasks and release the workers.

        As in the standard library: ``wait=True`` returns once every task has finished and
        every worker has exited; ``cancel_futures=True`` cancels the tasks that have not
        started. ``kill=True`` stops everything now: queued tasks are cancelled and running
        attempts killed (``must_complete`` ones too). Idempotent; safe from any thread and
        from a done-callback.
        """
        self._core.shutdown(wait, cancel_futures=cancel_futures, kill=kill)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        """Drain on a clean exit; force-cancel when the block raised."""
        self.shutdown(wait=True, kill=exc_type is not None)
        return False

    # -- introspection by id --------------------------------------------------------------

    def status(self, task_id: str) -> str:
        """``"queued"`` | ``"scheduled"`` | ``"running"`` | ``"complete"`` | ``"not_found"``.

        ``"not_found"``: no such task, or its record aged out after ``result_ttl`` seconds.
        """
        return self._core.status(task_id)

    def info(self, task_id: str) -> TaskInfo | None:
        """A :class:`TaskInfo` snapshot of an unfinished task, else None."""
        return self._core.info(task_id)

    def task_result(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """The :class:`TaskResult` of the task with ``task_id``.

        Without ``timeout``: the record if the task has finished, else None. With it: wait
        up to ``timeout`` seconds for an unfinished task (``TimeoutError`` when time runs
        out). None for an unknown id or a record older than ``result_ttl``.
        """
        return self._core.task_result(task_id, timeout)

    def queue_size(self) -> int:
        """Tasks waiting to start, scheduled ones (delays, retry backoffs) included."""
        return self._core.queue_size()

    def stats(self) -> PoolStats:
        """A live :class:`PoolStats` snapshot: per-worker pid, state, current tasks, tasks
        done, RSS, CPU and restarts; and the pending, running, scheduled and completed
        task counts."""
        return self._core.stats()
