"""``Executor``: the sync facade, a drop-in ``concurrent.futures.Executor``."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Hashable, Iterable, Iterator
from typing import Any, Literal, ParamSpec, TypeVar, overload

from ._admission import Admission
from ._batch import Run, RunBatch, must_complete
from ._errors import ClosedError, SerializationError
from ._future import TaskFuture
from ._group import A, TaskGroup, build_group
from ._intake import callable_name, estimate_key, is_async, new_task_id
from ._lifecycle import adopt, exiting, graceful_stop
from ._map import MapChunk, MapWindow, check_map_sizes, map_results
from ._options import (
    FAIL_POLICIES,
    HOOKS,
    ExecutorConfig,
    TaskOptions,
    build_config,
    check_choice,
    resolve_options,
)
from ._progress import ProgressArg, progress_tracker, sized_total
from ._records import PoolStats, RunSummary, TaskInfo, TaskResult, WorkerSnapshot
from ._resources import cpu_budget
from ._runtime._chunk import CHUNK_SUFFIX, MAX_CHUNK, PREFIX_LEN, SEQ_STEP, Chunk
from ._runtime._policy import ReadAhead, chunk_size
from ._runtime._task import Task
from ._runtime.protocol._commands import (
    CancelAll,
    CheckId,
    Estimate,
    Find,
    Info,
    OpenMaps,
    QueueSize,
    SetFailPolicy,
    Shutdown,
    Snapshot,
    Status,
    Submit,
)
from ._runtime.protocol._serialize import dumps_task
from ._runtime.protocol._wire import blob_size, release
from ._runtime.supervisor import ChunkItem, Supervisor
from ._runtime.transports import make_transport

__all__ = ["Executor", "OptionsView"]

P = ParamSpec("P")
R = TypeVar("R")

# The pickled size a map chunk aims to stay under when chunksize is not given.
_CHUNK_BYTES = 16 << 20
# how many bytes of values a map without buffersize holds for a reader slower than its
# workers before its next tasks wait for the reader (see ReadAhead): a quarter of
# retain_bytes, at least two chunks' worth (retain_bytes=None: no bound)
_READ_AHEAD_SHARE = 4
_READ_AHEAD_FLOOR = 2 * _CHUNK_BYTES


class _Submitter:
    """The submission methods shared by :class:`Executor` and :class:`OptionsView`."""

    _ex: Executor
    _opts: TaskOptions

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
        return self._ex._submit(self._opts, fn, args, kwargs)

    @overload
    def map(
        self,
        fn: Callable[..., Coroutine[Any, Any, R]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
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
    ) -> Generator[R, None, None]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: ProgressArg = None,
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
        """
        check_map_sizes(chunksize, buffersize)
        tracker = progress_tracker(progress, total=sized_total(iterables), desc="osiiso_mp map")
        end = None if timeout is None else time.monotonic() + timeout
        window = self._map_window(fn, zip(*iterables, strict=False), chunksize, buffersize)
        return map_results(window, end, tracker)

    def _map_window(
        self,
        fn: Callable[..., Any],
        args_iter: Iterator[tuple[Any, ...]],
        chunksize: int | None,
        buffersize: int | None,
    ) -> MapWindow:
        """Submit a ``map``'s elements (all of them, or the first ``buffersize`` when
        streaming): in chunks when it may be, else one task each."""
        ex, opts = self._ex, self._opts
        chunked = chunksize != 1 and ex._chunkable(opts, fn)

        def submit_items(items: list[tuple[Any, ...]]) -> list[Any]:
            if chunked:
                return ex._submit_items(opts, fn, items)
            return [ex._submit(opts, fn, args, {}) for args in items]

        if buffersize is None:
            retain = ex._config.retain_bytes
            flow: ReadAhead[Task] | None = (
                None
                if retain is None
                else ReadAhead(max(retain // _READ_AHEAD_SHARE, _READ_AHEAD_FLOOR))
            )
            entries = self._submit_all(fn, args_iter, chunksize, chunked=chunked, flow=flow)
            return MapWindow(entries, None, submit_items, None, flow, ex._sup)
        size = 1
        if chunked:
            first = next(args_iter, None)
            if first is not None:
                args_iter = itertools.chain((first,), args_iter)
                size = chunksize or self._chunk_size(fn, first, window=buffersize)
        size = min(size, buffersize)
        batches = iter(lambda: list(itertools.islice(args_iter, size)), [])
        window = MapWindow(deque(), batches, submit_items, buffersize)
        window.refill()  # the first window is submitted now, as without buffersize
        return window

    def _submit_all(
        self,
        fn: Callable[..., Any],
        args_iter: Iterable[tuple[Any, ...]],
        chunksize: int | None,
        *,
        chunked: bool | None = None,
        flow: ReadAhead[Task] | None = None,
    ) -> deque[Any]:
        """Submit ``fn(*args)`` for every tuple, in chunks when it may be (``chunked``, when
        the caller has already decided): the :class:`MapChunk` and :class:`TaskFuture`
        entries, in input order. ``flow``: the read-ahead of the map they belong to."""
        ex, opts = self._ex, self._opts
        if chunked is None:
            chunked = chunksize != 1 and ex._chunkable(opts, fn)
        if not chunked:
            return deque(ex._submit(opts, fn, args, {}, flow) for args in args_iter)
        items = list(args_iter)
        if not items:
            return deque()
        size = chunksize or self._chunk_size(fn, items[0], total=len(items))
        entries: deque[Any] = deque()
        for at in range(0, len(items), size):
            entries.extend(ex._submit_items(opts, fn, items[at : at + size], flow))
        return entries

    def _chunk_size(
        self,
        fn: Callable[..., Any],
        first: tuple[Any, ...],
        *,
        total: int | None = None,
        window: int | None = None,
    ) -> int:
        """Elements per chunk when ``chunksize`` is not given: the policy's size for the
        callable's estimated duration, within the bytes one element like ``first`` takes."""
        ex = self._ex
        by_time = chunk_size(
            total=total, procs=ex._config.procs, estimate=ex._estimate(fn), window=window
        )
        return min(by_time, ex._chunk_room(fn, first))

    @overload
    def group(
        self,
        fn: Callable[[A], Coroutine[Any, Any, R]],
        iterable: Iterable[A],
        /,
        *,
        group_id: Hashable | None = None,
    ) -> TaskGroup[R]: ...

    @overload
    def group(
        self,
        fn: Callable[[A], R],
        iterable: Iterable[A],
        /,
        *,
        group_id: Hashable | None = None,
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
    ) -> TaskGroup[Any]:
        """Submit tasks as one :class:`TaskGroup`, all carrying the same ``group_id``.

        ``group(fn, iterable)`` submits ``fn(item)`` for every item; ``group([(fn, *args),
        ...])`` submits each tuple's call. ``group_id=None`` means the view's ``group_id``
        (``ex.options(group_id=...)``) or else a fresh id (``"group-"`` and 12 hex digits).
        Every task gets this view's options. Bad arguments raise
        ``TypeError`` before anything is submitted; an empty group is valid.
        """
        return build_group(self._ex, self._opts, fn_or_calls, iterable, group_id)


class OptionsView(_Submitter):
    """An executor bound to task options: ``ex.options(retries=3).submit(f, x)``."""

    def __init__(self, ex: Executor, opts: TaskOptions) -> None:
        self._ex = ex
        self._opts = opts

    @property
    def task_options(self) -> TaskOptions:
        """The options every task submitted through this view gets."""
        return self._opts

    def options(self, opts: TaskOptions | None = None, **overrides: Any) -> OptionsView:
        """A further view: these options on top of this view's."""
        return OptionsView(self._ex, resolve_options(self._opts, opts, **overrides))


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

    def __init__(self, procs: int | None = None, **config: Any) -> None:
        self._config = build_config(procs, config, cpu_budget=cpu_budget)
        self._opts = self._config.default_options
        self._ex = self
        self._lock = threading.Lock()  # orders posts with the closed flag
        # task seqs are SEQ_STEP apart: the items a map chunk leaves unrun take the seqs
        # between its own and the next, so that they run in order, before later tasks
        self._seq = itertools.count(SEQ_STEP, SEQ_STEP)
        self._closed = False
        limit = self._config.max_pending
        self._admission = (
            None if limit is None else Admission(self, limit, self._config.submit_timeout)
        )
        transport = make_transport(self._config)
        # large arguments may travel in shared memory (the workers are on this host)
        self._shared = transport.capabilities.shared_memory
        self._sup = Supervisor(self._config, transport)
        self._batch = RunBatch(self._sup, self._config)  # what run() will summarise
        self._sup.start()
        adopt(self._sup)
        self._finalizer = weakref.finalize(self, graceful_stop, self._sup)
        self._finalizer.atexit = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Executor procs={self._config.procs} {self._config.start_method} {state}>"

    @property
    def procs(self) -> int:
        """Number of worker processes."""
        return self._config.procs

    @property
    def _max_workers(self) -> int:
        """``procs`` under ``ProcessPoolExecutor``'s attribute name, which tools such as
        ``dask.compute(scheduler=ex)`` read to size themselves."""
        return self._config.procs

    @property
    def config(self) -> ExecutorConfig:
        """The validated configuration."""
        return self._config

    def options(self, opts: TaskOptions | None = None, **overrides: Any) -> OptionsView:
        """A view whose ``submit``/``map`` give tasks these options.

        ``opts`` (a :class:`TaskOptions`) replaces the executor's defaults; keyword
        ``overrides`` apply on top. Unknown names raise ``TypeError``; bad values
        ``ValueError`` naming the option.
        """
        return OptionsView(self, resolve_options(self._opts, opts, **overrides))

    # -- submission ------------------------------------------------------------------------

    def _submit(
        self,
        opts: TaskOptions,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flow: ReadAhead[Task] | None = None,
    ) -> TaskFuture[Any]:
        self._check_submittable()
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__qualname__}")
        fn_name = callable_name(fn)
        name = opts.name or fn_name
        key = estimate_key(fn, fn_name)
        task_id = opts.task_id or new_task_id()
        error: BaseException | None = None
        try:
            payload, buffers = dumps_task(fn, args, kwargs, shared=self._shared)
        except SerializationError as exc:
            payload, buffers = b"", ()
            error = SerializationError(
                exc.stage, exc.type_name, exc.detail, name=name, task_id=task_id
            )
        fut: TaskFuture[Any] = TaskFuture(self._sup, task_id, name)
        task = Task(
            seq=next(self._seq),
            task_id=task_id,
            name=name,
            fn_name=fn_name,
            key=key,
            fut=fut,
            opts=opts,
            payload=payload,
            buffers=buffers,
            is_async=is_async(fn),
            error=error,
            args=args,
            kwargs=kwargs,
            created_at=time.perf_counter(),
            enqueue_ms=int(time.time() * 1000),
            flow=flow,
        )
        fut._task = task
        if opts.task_id is not None:  # refuse an id in flight now, not in the record
            self._sup.ask(CheckId(task_id))
        if self._admission is None:
            self._post(fut, task)
        else:
            self._admission.admit(fut, task)
        return fut

    def _chunkable(self, opts: TaskOptions, fn: Callable[..., Any]) -> bool:
        """May ``map`` send ``fn``'s items in chunks under ``opts``? Not when something
        needs a task per message: a timeout (a kill per item), a fixed task id, an async
        callable (they run concurrently), hooks (they take each task's future),
        ``max_pending`` (one slot per task), ``rate`` (one token per task start) or
        ``max_tasks_per_worker`` (a worker recycled after so many tasks)."""
        config = self._config
        return (
            callable(fn)
            and opts.timeout is None
            and opts.task_id is None
            and self._admission is None
            and config.rate is None
            and config.max_tasks_per_worker is None
            and not is_async(fn)
            and not any(getattr(config, hook) is not None for hook in HOOKS)
        )

    def _chunk_room(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> int:
        """How many elements like ``args`` fit in a chunk of about :data:`_CHUNK_BYTES`
        pickled (from one element pickled as a probe): a map over large arrays then sends
        a few per message, not hundreds, which one worker would have to hold at once."""
        try:
            payload, buffers = dumps_task(fn, (args,), {}, shared=self._shared)
        except SerializationError:
            return MAX_CHUNK  # the chunk will not pickle either: it goes element by element
        try:
            size = sum(blob_size(blob) for blob in (payload, *buffers))
        finally:
            release((payload, *buffers))
        return max(1, _CHUNK_BYTES // max(1, size))

    def _estimate(self, fn: Callable[..., Any]) -> float | None:
        """The supervisor's estimate of one call of ``fn``, in seconds (None: unknown)."""
        self._check_open()
        key = estimate_key(fn, callable_name(fn))
        estimate: float | None = self._sup.ask(Estimate(key))
        return estimate

    def _submit_items(
        self,
        opts: TaskOptions,
        fn: Callable[..., Any],
        items: list[tuple[Any, ...]],
        flow: ReadAhead[Task] | None = None,
    ) -> list[Any]:
        """Submit ``fn(*args)`` for each of ``items`` as one chunk: ``[MapChunk]``; or, when
        they do not pickle together, one task each (so that the culprit fails alone).
        ``flow``: the read-ahead of the map they belong to."""
        self._check_submittable()
        try:
            payload, buffers = dumps_task(fn, tuple(items), {}, shared=self._shared)
        except SerializationError:
            return [self._submit(opts, fn, args, {}, flow) for args in items]
        fn_name = callable_name(fn)
        created_at = time.perf_counter()
        chunk = Chunk(
            prefix=new_task_id()[:PREFIX_LEN],
            fn=fn,
            args=items,
            name=opts.name or fn_name,
            fn_name=fn_name,
            opts=opts,
            created_at=created_at,
            key=estimate_key(fn, fn_name),
        )
        fut = MapChunk(self._sup, chunk)
        task = Task(
            seq=next(self._seq),
            task_id=chunk.item_id(0),
            name=chunk.name,
            fn_name=fn_name,
            key=chunk.key + CHUNK_SUFFIX,
            fut=fut,
            opts=opts,
            payload=payload,
            buffers=buffers,
            is_async=False,
            error=None,
            args=(),
            kwargs={},
            created_at=created_at,
            enqueue_ms=int(time.time() * 1000),
            chunk=chunk,
            flow=flow,
        )
        fut._task = task
        self._post(fut, task)
        return [fut]

    def _post(self, fut: TaskFuture[Any] | MapChunk, task: Task) -> None:
        with self._lock:
            self._check_open()
            self._sup.post(Submit(task))
            self._batch.add(fut, task)
        if self._admission is not None:
            fut.add_done_callback(self._admission.slot_done)

    def _check_open(self) -> None:
        if self._closed or exiting():
            if exiting():  # the standard library's words
                raise ClosedError("cannot schedule new futures after interpreter shutdown")
            raise ClosedError("cannot submit: the executor is shut down")

    def _check_submittable(self) -> None:
        """Raise :class:`ClosedError` when the executor is shut down or broken."""
        self._check_open()
        broken = self._sup.broken
        if broken is not None:
            raise ClosedError(f"cannot submit: the executor is broken: {broken}")

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
        when tqdm is installed; else a text line on stderr); ``progress=callable`` calls it
        with a :class:`ProgressEvent` as each task finishes and once more at the end.
        """
        run = self._start_run(fail_policy, progress, "osiiso_mp run")
        try:
            _, not_done = cf.wait(run.futures, timeout)
            if not_done:
                self._cancel_on_timeout(run, not_done)
                cf.wait(run.futures)
        except BaseException:
            self._abort_run(run)  # Ctrl-C while waiting: cancel the batch, keep its records
            raise
        finally:
            self._end_run(run)
        return self._summarise(run, bool(not_done), strict)

    # The steps of run(), shared with AsyncExecutor.run (which only waits differently).

    def _start_run(self, fail_policy: str | None, progress: ProgressArg, desc: str) -> Run:
        policy = (
            self._config.fail_policy
            if fail_policy is None
            else check_choice("fail_policy", fail_policy, FAIL_POLICIES)
        )
        tracker = progress_tracker(progress, desc=desc)  # before the batch is taken
        batch, respawns_before = self._batch.take()
        previous = self._swap_fail_policy(policy, batch)
        if tracker:
            tracker.track_all(batch, last=True)
        futures = [f for e in batch if (f := e.future()) is not None and not f.done()]
        if futures:  # it waits for them all: no map's tasks wait for its reader any more
            self._open_maps(None)
        return Run(batch, futures, respawns_before, previous, tracker)

    def _open_maps(self, flow: ReadAhead[Task] | None) -> None:
        """Let the tasks of ``flow``'s map (None: of every map) start without waiting for
        its reader: something waits for all of them (see ``ReadAhead``)."""
        try:
            self._sup.post(OpenMaps(flow))
        except ClosedError:
            pass

    def _cancel_on_timeout(self, run: Run, not_done: set[Any]) -> None:
        pending = [f for f in run.futures if f in not_done]
        if self._config.on_timeout == "complete":
            pending = [f for f in pending if not must_complete(f)]
        self._cancel_many(pending, "cancelled: run timed out")

    def _abort_run(self, run: Run) -> None:
        unfinished = [f for f in run.futures if not f.done()]
        self._cancel_many(unfinished, "cancelled: run() was interrupted")
        self._batch.restore(run.batch)

    def _end_run(self, run: Run) -> None:
        if run.previous_policy is not None:
            self._swap_fail_policy(run.previous_policy, [])
        if run.tracker:
            run.tracker.close()

    def _summarise(self, run: Run, timed_out: bool, strict: bool) -> RunSummary:
        return self._batch.summarise(run, timed_out, strict)

    def _swap_fail_policy(self, policy: str, batch: list[Task | MapChunk]) -> str | None:
        """Set the supervisor's fail policy; return the one it replaced (None: unchanged).

        Switching to ``fail_first`` trips at once if the batch already holds a failure.
        """
        old: str | None = self._sup.ask(SetFailPolicy(policy, tuple(batch)))
        return old

    # -- introspection by id --------------------------------------------------------------

    def status(self, task_id: str) -> str:
        """``"queued"`` | ``"scheduled"`` | ``"running"`` | ``"complete"`` | ``"not_found"``.

        ``"not_found"``: no such task, or its record aged out after ``result_ttl`` seconds.
        """
        state: str = self._sup.ask(Status(task_id))
        return state

    def info(self, task_id: str) -> TaskInfo | None:
        """A :class:`TaskInfo` snapshot of an unfinished task, else None."""

        info: TaskInfo | None = self._sup.ask(Info(task_id))
        return info

    def task_result(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """The :class:`TaskResult` of the task with ``task_id``.

        Without ``timeout``: the record if the task has finished, else None. With it: wait
        up to ``timeout`` seconds for an unfinished task (``TimeoutError`` when time runs
        out). None for an unknown id or a record older than ``result_ttl``.
        """

        found = self._sup.ask(Find(task_id))
        if isinstance(found, TaskFuture):
            task = found._task
            if timeout is not None and task is not None and task.flow is not None:
                self._open_maps(task.flow)
            return found.task_result(timeout)
        if isinstance(found, ChunkItem):  # an item of a map chunk under way
            fut = found.future
            if timeout is None and not fut.done():
                return None
            task = fut._task
            if task is not None and task.flow is not None:
                self._open_maps(task.flow)
            done, _ = cf.wait([fut], timeout)
            if not done:
                raise TimeoutError(f"task {task_id} did not finish within {timeout:g}s")
            return fut.chunk.record(found.index)  # type: ignore[no-any-return]
        return found  # type: ignore[no-any-return]

    def queue_size(self) -> int:
        """Tasks waiting to start, scheduled ones (delays, retry backoffs) included."""
        size: int = self._sup.ask(QueueSize())
        return size

    def stats(self) -> PoolStats:
        """A live :class:`PoolStats` snapshot: per-worker pid, state, current tasks, tasks
        done, RSS, CPU and restarts; and the pending, running, scheduled and completed
        task counts."""
        workers, counts = self._sup.ask(Snapshot())
        snapshots = [WorkerSnapshot(*row) for row in workers]
        return PoolStats(workers=tuple(snapshots), **counts)

    def _cancel_many(self, futures: list[TaskFuture[Any] | MapChunk], reason: str) -> None:
        tasks = tuple(f._task for f in futures if f._task is not None)
        if tasks:
            self._sup.ask(CancelAll(tasks, reason))

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
        with self._lock:
            self._closed = True
            if self._admission is not None:
                self._admission.flush(cancel=cancel_futures or kill)
        self._finalizer.detach()
        reply: cf.Future[None] = cf.Future()
        try:
            self._sup.post(Shutdown(cancel_futures, kill, reply))
        except ClosedError:
            return
        if wait and threading.get_ident() != self._sup.thread_id:
            reply.result()
            self._sup.join()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        """Drain on a clean exit; force-cancel when the block raised."""
        self.shutdown(wait=True, kill=exc_type is not None)
        return False
