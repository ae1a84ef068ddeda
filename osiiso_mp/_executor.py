"""``Executor``: the sync facade, a drop-in ``concurrent.futures.Executor``."""

from __future__ import annotations

import _random
import atexit
import concurrent.futures as cf
import functools
import inspect
import itertools
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar, overload

from ._errors import ClosedError, QueueFullError, SerializationError
from ._future import TaskFuture
from ._group import A, TaskGroup, build_group
from ._map import MapChunk, MapWindow, check_map_sizes, map_results, weight_of
from ._options import (
    FAIL_POLICIES,
    HOOKS,
    ExecutorConfig,
    TaskOptions,
    build_config,
    check_choice,
    resolve_options,
)
from ._progress import ProgressArg, ProgressTracker, progress_tracker, sized_total
from ._records import PoolStats, RunSummary, TaskInfo, TaskResult, WorkerSnapshot
from ._resources import cpu_budget
from ._runtime._chunk import CHUNK_SUFFIX, MAX_CHUNK, PREFIX_LEN, SEQ_STEP, Chunk
from ._runtime._policy import ReadAhead, chunk_size
from ._runtime._retention import Holder
from ._runtime._task import Task
from ._runtime.protocol._buffers import blob_size, release
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
from ._runtime.supervisor import ChunkItem, Supervisor
from ._runtime.transports import make_transport

__all__ = ["Executor", "OptionsView"]

P = ParamSpec("P")
R = TypeVar("R")

_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()

# A batch longer than this drops records older than result_ttl (see Executor._prune_batch).
_BATCH_PRUNE_AT = 10_000
# The pickled size a map chunk aims to stay under when chunksize is not given.
_CHUNK_BYTES = 16 << 20
# how many bytes of values a map without buffersize holds for a reader slower than its
# workers before its next tasks wait for the reader (see ReadAhead): a quarter of
# retain_bytes, at least two chunks' worth (retain_bytes=None: no bound)
_READ_AHEAD_SHARE = 4
_READ_AHEAD_FLOOR = 2 * _CHUNK_BYTES


_exiting = False  # the main thread has finished: no new tasks (as ProcessPoolExecutor)


def _wait_all_at_exit() -> None:
    """The main thread has finished: as ``ProcessPoolExecutor`` does, refuse new tasks and
    wait for every executor still open to finish what was submitted to it. Runs before
    atexit handlers (with the threads' own exit hooks); Ctrl-C stops the wait, and the
    atexit handler below then stops what is left."""
    global _exiting
    _exiting = True
    sups = list(_live)
    for sup in sups:
        try:
            sup.post(Shutdown(cancel_pending=False, kill=False, reply=None))
        except ClosedError:
            continue
    for sup in sups:
        sup.join()


try:  # where concurrent.futures hooks in too: before non-daemon threads are joined
    threading._register_atexit(_wait_all_at_exit)  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - every supported Python has it
    atexit.register(_wait_all_at_exit)


@atexit.register
def _stop_all_at_exit() -> None:
    """Interpreter exit, after the wait above (or its interruption): force-stop every
    executor still alive, without hanging."""
    for sup in list(_live):
        try:
            sup.post(Shutdown(cancel_pending=True, kill=True, reply=None))
        except ClosedError:
            continue
    for sup in list(_live):
        sup.join(2.0)


def _graceful_stop(sup: Supervisor) -> None:
    """The executor object was garbage collected: finish its tasks, then stop its workers."""
    try:
        sup.post(Shutdown(cancel_pending=False, kill=False, reply=None))
    except ClosedError:
        pass


# seeded from os.urandom once; the C class, since random.py costs start-up time
_getrandbits = _random.Random().getrandbits


def new_task_id() -> str:
    """A random uuid4 in hex, made without a syscall (``uuid.uuid4()`` reads os.urandom)."""
    n = _getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    return f"{n:032x}"


def _callable_name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__qualname__


def _estimate_key(fn: Callable[..., Any], name: str) -> str:
    """What the supervisor's duration estimates know ``fn`` by: its name, or for a lambda
    its name and where it is defined (every lambda is called ``"<lambda>"``, and a quick
    one must not make a slow one look quick)."""
    if not name.endswith("<lambda>"):
        return name
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None:
        return name
    return f"{name} {code.co_filename}:{code.co_firstlineno}"


def _is_async(fn: Callable[..., Any]) -> bool:
    if (
        type(fn) is types.FunctionType
        and not fn.__code__.co_flags & inspect.CO_COROUTINE
        and not hasattr(fn, "_is_coroutine_marker")  # inspect.markcoroutinefunction (3.12)
    ):
        return False  # the common case, without inspect's unwrapping (a hot path)
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


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
        self._batch_lock = threading.Lock()  # guards _batch, _batch_weight and _prune_at
        self._admit_lock = threading.Lock()  # guards _parked against freed slots
        self._parked: deque[TaskFuture[Any]] = deque()
        self._blocking_submit = True  # the async twin parks instead of blocking
        # task seqs are SEQ_STEP apart: the items a map chunk leaves unrun take the seqs
        # between its own and the next, so that they run in order, before later tasks
        self._seq = itertools.count(SEQ_STEP, SEQ_STEP)
        # what run() will summarise: a task's Task (which lets go of its future once the
        # task has finished, and keeps its record) or a map chunk's MapChunk
        self._batch: list[Task | MapChunk] = []
        self._batch_weight = 0  # the tasks in _batch (a map chunk counts its items)
        self._prune_at = _BATCH_PRUNE_AT
        self._batch_respawns = 0
        self._closed = False
        self._room = (
            None
            if self._config.max_pending is None
            else threading.Semaphore(self._config.max_pending)
        )
        transport = make_transport(self._config)
        # large arguments may travel in shared memory (the workers are on this host)
        self._shared = transport.capabilities.shared_memory
        self._sup = Supervisor(self._config, transport)
        self._sup.start()
        _live.add(self._sup)
        self._finalizer = weakref.finalize(self, _graceful_stop, self._sup)
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
        fn_name = _callable_name(fn)
        name = opts.name or fn_name
        key = _estimate_key(fn, fn_name)
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
            is_async=_is_async(fn),
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
        self._admit(fut, task, wait=self._blocking_submit)
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
            and self._room is None
            and config.rate is None
            and config.max_tasks_per_worker is None
            and not _is_async(fn)
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
        key = _estimate_key(fn, _callable_name(fn))
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
        fn_name = _callable_name(fn)
        created_at = time.perf_counter()
        chunk = Chunk(
            prefix=new_task_id()[:PREFIX_LEN],
            fn=fn,
            args=items,
            name=opts.name or fn_name,
            fn_name=fn_name,
            opts=opts,
            created_at=created_at,
            key=_estimate_key(fn, fn_name),
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

    def _admit(self, fut: TaskFuture[Any], task: Task, *, wait: bool) -> None:
        """Hand the task to the supervisor, within ``max_pending``.

        With room, it goes now. Without: ``wait=True`` (the sync executor) blocks up to
        ``submit_timeout`` for room; ``wait=False`` (the async one) parks the task: its
        future is returned at once, and the next task to finish hands its slot to it.
        ``submit_timeout=0`` refuses with :class:`QueueFullError` either way.
        """
        room = self._room
        if room is None:
            self._post(fut, task)
            return
        if wait or self._config.submit_timeout == 0:
            self._wait_for_room(room)
        else:
            with self._admit_lock:
                if not room.acquire(blocking=False):
                    self._check_open()
                    # Invariant: a task is parked only while no slot is free; a finishing
                    # task takes the admit lock before it frees a slot (_free_slot).
                    fut._parked_in = self
                    self._parked.append(fut)
                    self._add_to_batch(fut, task)
                    return
        try:
            self._post(fut, task)
        except BaseException:
            self._free_slot()
            raise

    def _post(self, fut: TaskFuture[Any] | MapChunk, task: Task) -> None:
        with self._lock:
            self._check_open()
            self._sup.post(Submit(task))
            self._add_to_batch(fut, task)
        if self._room is not None:
            fut.add_done_callback(self._slot_done)

    def _check_open(self) -> None:
        if self._closed or _exiting:
            if _exiting:  # the standard library's words
                raise ClosedError("cannot schedule new futures after interpreter shutdown")
            raise ClosedError("cannot submit: the executor is shut down")

    def _check_submittable(self) -> None:
        """Raise :class:`ClosedError` when the executor is shut down or broken."""
        self._check_open()
        broken = self._sup.broken
        if broken is not None:
            raise ClosedError(f"cannot submit: the executor is broken: {broken}")

    def _add_to_batch(self, fut: TaskFuture[Any] | MapChunk, task: Task) -> None:
        if task.opts.detached:
            return
        entry = fut if type(fut) is MapChunk else task
        with self._batch_lock:
            self._batch.append(entry)
            self._batch_weight += weight_of(entry)
            if self._batch_weight >= self._prune_at:
                self._prune_batch()

    def _slot_done(self, _: object) -> None:
        self._free_slot()

    def _free_slot(self) -> None:
        """A task holding a ``max_pending`` slot finished: give the slot to the oldest
        parked task, or back to the semaphore."""
        assert self._room is not None
        with self._admit_lock:
            while self._parked:
                fut = self._parked.popleft()
                fut._parked_in = None
                if fut.done():  # cancelled while parked
                    continue
                task = fut._task
                assert task is not None
                try:
                    with self._lock:
                        self._check_open()
                        self._sup.post(Submit(task))
                except ClosedError:
                    fut._settle_closed()
                    continue
                fut.add_done_callback(self._slot_done)
                return
            self._room.release()

    def _flush_parked(self, *, cancel: bool) -> None:
        """At shutdown (lock held, before the Shutdown command): a drain runs the parked
        tasks, past max_pending; a cancelling shutdown cancels them."""
        with self._admit_lock:
            parked, self._parked = list(self._parked), deque()
        for fut in parked:
            fut._parked_in = None
            task = fut._task
            if fut.done() or task is None:
                continue
            if cancel:
                fut._settle_cancelled("cancelled by shutdown before it was admitted")
                continue
            try:
                self._sup.post(Submit(task))  # past max_pending: it holds no slot to free
            except ClosedError:
                fut._settle_closed()

    def _withdraw(self, fut: TaskFuture[Any]) -> bool:
        """Cancel a parked task before it reached the supervisor; False if it had left."""
        with self._admit_lock:
            try:
                self._parked.remove(fut)
            except ValueError:
                return False
            fut._parked_in = None
        fut._settle_cancelled("cancelled by the caller before it was admitted")
        return True

    def _prune_batch(self) -> None:
        """Bound the memory of a batch nobody summarises (a server never calling run()).

        Called with the batch lock held once the batch holds ``_prune_at`` tasks (a map
        chunk counts its items): records that finished more than ``result_ttl`` seconds ago
        are dropped from it. The threshold then doubles past what is left, so pruning costs
        amortised O(1) per task.
        """
        horizon = time.perf_counter() - self._config.result_ttl
        kept: list[Task | MapChunk] = []
        dropped: list[Holder] = []
        for entry in self._batch:
            if _finished_before(entry, horizon):
                dropped.append(_holder(entry))
            else:
                kept.append(entry)
        self._batch = kept
        self._batch_weight = sum(weight_of(f) for f in kept)
        self._prune_at = max(_BATCH_PRUNE_AT, 2 * self._batch_weight)
        self._sup.batch_let_go(dropped)

    def _wait_for_room(self, room: threading.Semaphore) -> None:
        """Take a ``max_pending`` slot, waiting up to ``submit_timeout``."""
        timeout = self._config.submit_timeout
        if threading.get_ident() == self._sup.thread_id:
            timeout = 0.0  # a done-callback must not wait for the thread that frees room
        if room.acquire(timeout=timeout):
            return
        waited = "" if not timeout else f" within {timeout:g}s"
        raise QueueFullError(
            f"cannot submit: max_pending={self._config.max_pending} tasks are unfinished "
            f"and no room freed up{waited}"
        )

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

    def _start_run(self, fail_policy: str | None, progress: ProgressArg, desc: str) -> _Run:
        policy = (
            self._config.fail_policy
            if fail_policy is None
            else check_choice("fail_policy", fail_policy, FAIL_POLICIES)
        )
        tracker = progress_tracker(progress, desc=desc)  # before the batch is taken
        with self._batch_lock:
            batch, self._batch = self._batch, []
            self._batch_weight = 0
            self._prune_at = _BATCH_PRUNE_AT
            respawns_before = self._batch_respawns
        previous = self._swap_fail_policy(policy, batch)
        if tracker:
            tracker.track_all(batch, last=True)
        futures = [f for e in batch if (f := e.future()) is not None and not f.done()]
        if futures:  # it waits for them all: no map's tasks wait for its reader any more
            self._open_maps(None)
        return _Run(batch, futures, respawns_before, previous, tracker)

    def _open_maps(self, flow: ReadAhead[Task] | None) -> None:
        """Let the tasks of ``flow``'s map (None: of every map) start without waiting for
        its reader: something waits for all of them (see ``ReadAhead``)."""
        try:
            self._sup.post(OpenMaps(flow))
        except ClosedError:
            pass

    def _cancel_on_timeout(self, run: _Run, not_done: set[Any]) -> None:
        pending = [f for f in run.futures if f in not_done]
        if self._config.on_timeout == "complete":
            pending = [f for f in pending if not _must_complete(f)]
        self._cancel_many(pending, "cancelled: run timed out")

    def _abort_run(self, run: _Run) -> None:
        unfinished = [f for f in run.futures if not f.done()]
        self._cancel_many(unfinished, "cancelled: run() was interrupted")
        with self._batch_lock:
            self._batch[:0] = run.batch
            self._batch_weight += sum(weight_of(f) for f in run.batch)

    def _end_run(self, run: _Run) -> None:
        if run.previous_policy is not None:
            self._swap_fail_policy(run.previous_policy, [])
        if run.tracker:
            run.tracker.close()

    def _summarise(self, run: _Run, timed_out: bool, strict: bool) -> RunSummary:
        respawns = self._sup.replacements()
        with self._batch_lock:
            self._batch_respawns = respawns
        records: list[TaskResult] = []
        for entry in run.batch:
            if entry.done():  # every entry has finished, unless the executor broke
                records.extend(entry.records())
        self._sup.batch_let_go([_holder(entry) for entry in run.batch], wait=True)
        if records:
            duration = max(r.finished_at for r in records) - min(r.created_at for r in records)
        else:
            duration = 0.0
        summary = RunSummary(
            results=tuple(records),
            duration=max(0.0, duration),
            timed_out=timed_out,
            procs=self._config.procs,
            respawns=max(0, respawns - run.respawns_before),
        )
        if strict:
            summary.raise_for_errors()
        return summary

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
            self._flush_parked(cancel=cancel_futures or kill)
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


@dataclass(slots=True)
class _Run:
    """One ``run()`` in progress: its batch, and the futures of the entries that had not
    finished when it started (what it waits for, and cancels on a timeout)."""

    batch: list[Task | MapChunk]
    futures: list[TaskFuture[Any] | MapChunk]
    respawns_before: int
    previous_policy: str | None
    tracker: ProgressTracker | None


def _finished_before(entry: Task | MapChunk, horizon: float) -> bool:
    """Has every task of this batch entry ended before ``horizon`` (perf_counter)?"""
    finished = entry.finished_at
    return finished is not None and finished <= horizon


def _holder(entry: Task | MapChunk) -> Holder:
    """What keeps the values of a batch entry (see ``ValueBudget``)."""
    return entry.chunk if type(entry) is MapChunk else entry  # type: ignore[return-value]


def _must_complete(fut: TaskFuture[Any] | MapChunk) -> bool:
    task = fut._task
    return task is not None and task.opts.must_complete
