"""The executor's core, under both facades: submission, admission, the run batch, the
steps of ``run()``, lookups by id and shutdown.

:class:`~osiiso_mp.Executor` and :class:`~osiiso_mp.AsyncExecutor` each hold one and add
only their way of waiting (``AsyncExecutor.executor`` is a sync facade over the same core).
It starts the supervisor and talks to it only through commands; nothing here touches task
state.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from types import FunctionType
from typing import TYPE_CHECKING, Any

from ._admission import Admission
from ._batch import Run, RunBatch, must_complete
from ._callables import CallableReuse, check_size, chunk_room_size
from ._checks import check_choice
from ._config import FAIL_POLICIES, HOOKS, ExecutorConfig
from ._errors import ClosedError, SerializationError
from ._future import TaskFuture
from ._intake import callable_name, estimate_key, is_async, new_task_id
from ._lifecycle import adopt, exiting, graceful_stop
from ._map_chunk import MapChunk
from ._results import TaskResult
from ._runtime._chunk import MAX_CHUNK, PREFIX_LEN, SEQ_STEP, Chunk
from ._runtime._read_ahead import ReadAhead
from ._runtime._task import Task
from ._runtime.protocol._buffers import release
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
from ._runtime.supervisor._door import DIRECT_MAX, Door, plain
from ._runtime.transports import make_transport
from ._task_options import TaskOptions

if TYPE_CHECKING:  # loaded on first use: start-up time (see the package's __init__)
    from ._batch import Entry
    from ._progress import ProgressArg
    from ._resume import Resume
    from ._snapshots import PoolStats, TaskInfo
    from ._summary import RunSummary

__all__ = ["CHUNK_BYTES", "ExecutorCore"]

CHUNK_BYTES = 16 << 20  # the pickled size a map chunk aims to stay under by default


class ExecutorCore:
    """One executor's machinery (any thread)."""

    def __init__(self, config: ExecutorConfig, *, blocking: bool = True) -> None:
        self.config = config
        self.opts = config.default_options
        self.lock = threading.Lock()  # orders posts with the closed flag
        # task seqs are SEQ_STEP apart: the items a map chunk leaves unrun take the seqs
        # between its own and the next, so that they run in order, before later tasks
        self._seq = itertools.count(SEQ_STEP, SEQ_STEP)
        self.closed = False
        limit = config.max_pending
        self.admission = None if limit is None else Admission(self, limit, config.submit_timeout)
        if self.admission is not None:
            self.admission.blocking = blocking  # the async facade parks instead of waiting
        transport = make_transport(config)
        transport.open()  # (a cluster's: joined here, in the caller's thread)
        # large arguments may travel in shared memory (the workers are on this host)
        self._shared = transport.capabilities.shared_memory
        self.sup = Supervisor(config, transport)
        self._door = self.sup.doors.door  # an idle worker plain tasks may go straight to
        self.batch = RunBatch(self.sup, config)  # what run() will summarise
        # the checkpoints of maps and groups with tasks in flight: run() makes what has
        # ended of them durable before it returns
        self.resumes: weakref.WeakSet[Resume] = weakref.WeakSet()
        self.sup.start()
        adopt(self.sup)
        # dropped without shutdown(): finish the tasks, then stop the workers
        self._finalizer = weakref.finalize(self, graceful_stop, self.sup)
        self._finalizer.atexit = False

    # -- submission ------------------------------------------------------------------------

    def check_open(self) -> None:
        """Raise :class:`ClosedError` once the executor is shut down (or the interpreter
        is exiting)."""
        if self.closed or exiting():
            if exiting():  # the standard library's words
                raise ClosedError("cannot schedule new futures after interpreter shutdown")
            raise ClosedError("cannot submit: the executor is shut down")

    def check_submittable(self) -> None:
        """Raise :class:`ClosedError` when the executor is shut down or broken."""
        self.check_open()
        broken = self.sup.broken
        if broken is not None:
            raise ClosedError(f"cannot submit: the executor is broken: {broken}")

    def submit(
        self,
        opts: TaskOptions,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flow: ReadAhead[Task] | None = None,
        reuse: CallableReuse | None = None,
    ) -> TaskFuture[Any]:
        """Submit ``fn(*args, **kwargs)`` as one task. ``flow``: the read-ahead of the map
        it belongs to; ``reuse``: the callables of the map or group it belongs to, each
        pickled once (see :mod:`._callables`)."""
        if self.closed or self.sup.broken is not None or exiting():
            self.check_submittable()  # raises
        if type(fn) is FunctionType and fn.__qualname__:  # the commonest: what callable_name
            fn_name = fn.__qualname__  # gives, without its general lookups
        else:
            if not callable(fn):
                raise TypeError(f"submit() needs a callable, got {type(fn).__qualname__}")
            fn_name = callable_name(fn)
        name = opts.name or fn_name
        key = estimate_key(fn, fn_name)
        task_id = opts.task_id or new_task_id()
        error: BaseException | None = None
        try:
            if reuse is None:
                payload, buffers = dumps_task(fn, args, kwargs, shared=self._shared)
            else:
                payload, buffers = reuse.dumps(fn, args, kwargs, shared=self._shared)
        except SerializationError as exc:
            payload, buffers = b"", ()
            error = SerializationError(
                exc.stage, exc.type_name, exc.detail, name=name, task_id=task_id
            )
        if buffers or type(payload) is not bytes:  # large: is it the callable? (once per fn)
            check_size(fn, payload, buffers, reuse)
        fut: TaskFuture[Any] = TaskFuture(self.sup, task_id, name)
        task = Task(  # Task's parameters in order, positionally (a task per submit)
            next(self._seq),  # seq
            task_id,
            name,
            fn_name,
            fut,
            opts,
            payload,
            buffers,
            is_async(fn),
            error,
            args,
            kwargs,
            time.perf_counter(),  # created_at
            int(time.time() * 1000),  # enqueue_ms
            None,  # chunk
            key,
            flow,
        )
        fut._task = task
        if opts.task_id is not None:  # refuse an id in flight now, not in the record
            self.sup.ask(CheckId(task_id))
        if self.admission is None:
            door = self._door
            if (  # an idle worker's door is open, and this task may go through it
                door.worker is not None
                and flow is None
                and error is None
                and not buffers
                and type(payload) is bytes
                and len(payload) <= DIRECT_MAX
                and not task.is_async
                and plain(opts)
            ):
                self.post(fut, task, door)
            else:
                self.post(fut, task)
        else:
            self.admission.admit(fut, task)
        return fut

    def submit_items(
        self,
        opts: TaskOptions,
        fn: Callable[..., Any],
        items: list[tuple[Any, ...]],
        flow: ReadAhead[Task] | None = None,
        reuse: CallableReuse | None = None,
    ) -> list[Any]:
        """Submit ``fn(*args)`` for each of ``items`` as one chunk: ``[MapChunk]``; or, when
        they do not pickle together, one task each (so that the culprit fails alone).
        ``flow``: the read-ahead of the map they belong to; ``reuse``: its callable,
        pickled once for all its chunks."""
        self.check_submittable()
        try:
            if reuse is None:
                payload, buffers = dumps_task(fn, tuple(items), {}, shared=self._shared)
            else:
                payload, buffers = reuse.dumps(fn, tuple(items), {}, shared=self._shared)
        except SerializationError:
            return [self.submit(opts, fn, args, {}, flow, reuse) for args in items]
        check_size(fn, payload, buffers, reuse)
        fn_name = callable_name(fn)
        created_at = time.perf_counter()
        pickled = None if reuse is None else reuse.pickled(fn, decide=False)
        chunk = Chunk(
            prefix=new_task_id()[:PREFIX_LEN],
            fn=fn if pickled is None else pickled,  # an item run again alone reuses it too
            args=items,
            name=opts.name or fn_name,
            fn_name=fn_name,
            opts=opts,
            created_at=created_at,
            key=estimate_key(fn, fn_name),
        )
        fut = MapChunk(self.sup, chunk)
        task = Task.of_chunk(
            chunk,
            seq=next(self._seq),
            fut=fut,
            payload=payload,
            buffers=buffers,
            enqueue_ms=int(time.time() * 1000),
            flow=flow,
        )
        fut._task = task
        self.post(fut, task)
        return [fut]

    def post(self, fut: TaskFuture[Any] | MapChunk, task: Task, door: Door | None = None) -> None:
        """Hand ``task`` to the supervisor; or, given the ``door`` (a plain task, see
        :mod:`._runtime.supervisor._door`), send it straight to the idle worker it is open
        to, when it still is."""
        with self.lock:
            if self.closed or exiting():
                self.check_open()  # raises
            if door is None or not door.through(task, self.sup.doors.announce(task.key)):
                self.sup.post(Submit(task))
            else:  # the worker runs it already: the supervisor adopts it meanwhile
                self.sup.wake()
            self.batch.add(fut, task)
        if self.admission is not None:
            fut.add_done_callback(self.admission.slot_done)

    def chunkable(self, opts: TaskOptions, fn: Callable[..., Any]) -> bool:
        """May ``map`` send ``fn``'s items in chunks under ``opts``? Not when something
        needs a task per message: a timeout (a kill per item), a fixed task id, an async
        callable (they run concurrently), hooks (they take each task's future),
        ``max_pending`` (one slot per task), ``rate`` (one token per task start) or
        ``max_tasks_per_worker`` (a worker recycled after so many tasks)."""
        config = self.config
        return (
            callable(fn)
            and opts.timeout is None
            and opts.task_id is None
            and self.admission is None
            and config.rate is None
            and config.max_tasks_per_worker is None
            and not is_async(fn)
            and not any(getattr(config, hook) is not None for hook in HOOKS)
        )

    def chunk_room(
        self, fn: Callable[..., Any], args: tuple[Any, ...], reuse: CallableReuse | None = None
    ) -> int:
        """How many elements like ``args`` fit in a chunk of about :data:`CHUNK_BYTES`
        pickled (from one element pickled as a probe): a map over large arrays then sends
        a few per message, not hundreds, which one worker would have to hold at once. A
        large callable that ``reuse`` pickles once for every chunk is not counted."""
        try:
            if reuse is None:
                packed = dumps_task(fn, (args,), {}, shared=self._shared)
            else:
                packed = reuse.dumps(fn, (args,), {}, shared=self._shared)
        except SerializationError:
            return MAX_CHUNK  # the chunk will not pickle either: it goes element by element
        try:
            size = chunk_room_size(reuse, fn, packed)
        finally:
            release((packed[0], *packed[1]))
        return max(1, CHUNK_BYTES // size)

    def estimate(self, fn: Callable[..., Any]) -> float | None:
        """The supervisor's estimate of one call of ``fn``, in seconds (None: unknown)."""
        self.check_open()
        key = estimate_key(fn, callable_name(fn))
        estimate: float | None = self.sup.ask(Estimate(key))
        return estimate

    def start_run(self, fail_policy: str | None, progress: ProgressArg, desc: str) -> Run:
        policy = (
            self.config.fail_policy
            if fail_policy is None
            else check_choice("fail_policy", fail_policy, FAIL_POLICIES)
        )
        from ._progress import progress_tracker

        tracker = progress_tracker(progress, desc=desc, pool=self.stats)  # before the batch
        batch, respawns_before = self.batch.take()
        previous = self._swap_fail_policy(policy, batch)
        if tracker:
            tracker.track_all(batch, last=True)
        futures = [f for e in batch if (f := e.future()) is not None and not f.done()]
        if futures:  # it waits for them all: no map's tasks wait for its reader any more
            self.open_maps(None)
        return Run(batch, futures, respawns_before, previous, tracker)

    def open_maps(self, flow: ReadAhead[Task] | None) -> None:
        """Let the tasks of ``flow``'s map (None: of every map) start without waiting for
        its reader: something waits for all of them (see ``ReadAhead``)."""
        try:
            self.sup.post(OpenMaps(flow))
        except ClosedError:
            pass

    def cancel_on_timeout(self, run: Run, not_done: set[Any]) -> None:
        pending = [f for f in run.futures if f in not_done]
        if self.config.on_timeout == "complete":
            pending = [f for f in pending if not must_complete(f)]
        self.cancel_many(pending, "cancelled: run timed out")

    def abort_run(self, run: Run) -> None:
        unfinished = [f for f in run.futures if not f.done()]
        self.cancel_many(unfinished, "cancelled: run() was interrupted")
        self.batch.restore(run.batch)

    def end_run(self, run: Run) -> None:
        if run.previous_policy is not None:
            self._swap_fail_policy(run.previous_policy, [])
        if run.tracker:
            run.tracker.close()

    def summarise(self, run: Run, timed_out: bool, strict: bool) -> RunSummary:
        for resume in list(self.resumes):
            resume.settle()
        return self.batch.summarise(run, timed_out, strict)

    def _swap_fail_policy(self, policy: str, batch: list[Entry]) -> str | None:
        """Set the supervisor's fail policy; return the one it replaced (None: unchanged).

        Switching to ``fail_first`` trips at once if the batch already holds a failure.
        """
        old: str | None = self.sup.ask(SetFailPolicy(policy, tuple(batch)))
        return old

    def status(self, task_id: str) -> str:
        """``"queued"`` | ``"scheduled"`` | ``"running"`` | ``"complete"`` | ``"not_found"``.

        ``"not_found"``: no such task, or its record aged out after ``result_ttl`` seconds.
        """
        state: str = self.sup.ask(Status(task_id))
        return state

    def info(self, task_id: str) -> TaskInfo | None:
        """A :class:`TaskInfo` snapshot of an unfinished task, else None."""

        info: TaskInfo | None = self.sup.ask(Info(task_id))
        return info

    def task_result(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """The :class:`TaskResult` of the task with ``task_id``.

        Without ``timeout``: the record if the task has finished, else None. With it: wait
        up to ``timeout`` seconds for an unfinished task (``TimeoutError`` when time runs
        out). None for an unknown id or a record older than ``result_ttl``.
        """

        found = self.sup.ask(Find(task_id))
        if isinstance(found, TaskFuture):
            task = found._task
            if timeout is not None and task is not None and task.flow is not None:
                self.open_maps(task.flow)
            return found.task_result(timeout)
        if isinstance(found, ChunkItem):  # an item of a map chunk under way
            fut = found.future
            if timeout is None and not fut.done():
                return None
            task = fut._task
            if task is not None and task.flow is not None:
                self.open_maps(task.flow)
            done, _ = cf.wait([fut], timeout)
            if not done:
                raise TimeoutError(f"task {task_id} did not finish within {timeout:g}s")
            return fut.chunk.record(found.index)  # type: ignore[no-any-return]
        return found  # type: ignore[no-any-return]

    def queue_size(self) -> int:
        """Tasks waiting to start, scheduled ones (delays, retry backoffs) included."""
        size: int = self.sup.ask(QueueSize())
        return size

    def stats(self) -> PoolStats:
        """A live :class:`PoolStats` snapshot: per-worker pid, state, current tasks, tasks
        done, RSS, CPU and restarts; and the pending, running, scheduled and completed
        task counts."""
        workers, counts = self.sup.ask(Snapshot())
        from ._snapshots import PoolStats, WorkerSnapshot

        snapshots = [WorkerSnapshot(*row) for row in workers]
        return PoolStats(workers=tuple(snapshots), **counts)

    def cancel_many(self, futures: list[TaskFuture[Any] | MapChunk], reason: str) -> None:
        tasks = tuple(f._task for f in futures if f._task is not None)
        if tasks:
            self.sup.ask(CancelAll(tasks, reason))

    def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, kill: bool = False
    ) -> None:
        """Stop taking tasks and release the workers (see ``Executor.shutdown``)."""
        with self.lock:
            self.closed = True
        if self.admission is not None:
            # not under self.lock: a freed slot takes the admission's lock and posts
            # (free_slot); flushing takes that lock too, so it must not wait for it while
            # holding this one (the two orders deadlocked). Nothing is parked any more once
            # closed is set (admit checks it under the admission's lock).
            self.admission.flush(cancel=cancel_futures or kill)
        self._finalizer.detach()
        reply: cf.Future[None] = cf.Future()
        try:
            self.sup.post(Shutdown(cancel_futures, kill, reply))
        except ClosedError:
            return
        if wait and threading.get_ident() != self.sup.thread_id:
            reply.result()
            self.sup.join()
