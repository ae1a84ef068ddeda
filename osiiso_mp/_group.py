"""``TaskGroup``: tasks submitted together, waited for and summarised together.

``ex.group(fn, iterable)`` submits one task per item (``fn(item)``);
``ex.group([(fn, *args), ...])`` one task per tuple, each with its own callable. Every task
of a group carries the same ``group_id`` (so ``RunSummary.by_group()`` finds them), and the
:class:`TaskGroup` that comes back waits for them, in input order, independently of
``Executor.run()`` batches. :func:`pmap` is the one-shot helper built on it.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
import uuid
from collections.abc import Callable, Coroutine, Hashable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from ._callables import CallableReuse
from ._future import TaskFuture
from ._progress import ProgressArg, progress_tracker
from ._progress._callback import short_repr
from ._results import record_of, run_span
from ._runtime.protocol._commands import CancelAll
from ._summary import RunSummary
from ._task_options import TaskOptions

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint
    from ._core import ExecutorCore
    from ._resume import Resume
    from ._runtime._task import Task

__all__ = ["TaskGroup", "build_group", "new_group_id", "pmap"]

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")

_CALLS_HINT = "group(fn, iterable) or group([(fn, *args), ...])"


def new_group_id() -> str:
    """A fresh group id: ``"group-"`` and 12 hex digits of a uuid4."""
    return "group-" + uuid.uuid4().hex[:12]


def _type_name(obj: object) -> str:
    return type(obj).__qualname__


def _calls_of(
    fn_or_calls: object, iterable: object
) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Validate the arguments of ``group()`` and list its calls as ``(fn, args)``.

    Everything is checked (and an iterable consumed) before anything is submitted, so a bad
    argument leaves no task behind.
    """
    if callable(fn_or_calls):
        if iterable is None:
            raise TypeError(
                f"group({short_repr(fn_or_calls)}) needs an iterable of arguments as its second "
                f"argument (one task per item); use {_CALLS_HINT}"
            )
        try:
            items = iter(cast(Iterable[Any], iterable))
        except TypeError:
            raise TypeError(
                f"group(fn, iterable): the second argument must be iterable, got "
                f"{short_repr(iterable)} ({_type_name(iterable)})"
            ) from None
        fn = cast(Callable[..., Any], fn_or_calls)
        return [(fn, (item,)) for item in items]
    if iterable is not None:
        raise TypeError(
            f"group() with two arguments needs a callable first, got {short_repr(fn_or_calls)} "
            f"({_type_name(fn_or_calls)}); for a list of calls pass it alone: "
            "group([(fn, *args), ...])"
        )
    try:
        entries = iter(cast(Iterable[Any], fn_or_calls))
    except TypeError:
        raise TypeError(
            f"group() takes a callable and an iterable, or an iterable of (fn, *args) tuples; "
            f"got {short_repr(fn_or_calls)} ({_type_name(fn_or_calls)})"
        ) from None
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, tuple) or not entry or not callable(entry[0]):
            raise TypeError(
                f"group(): call {index} must be a tuple (fn, *args) with a callable first, "
                f"got {short_repr(entry)} ({_type_name(entry)})"
            )
        calls.append((entry[0], entry[1:]))
    return calls


def build_group(
    core: ExecutorCore,
    opts: TaskOptions,
    fn_or_calls: object,
    iterable: object,
    group_id: Hashable | None,
    checkpoint: Checkpoint | None = None,
    key: Callable[[Any], str] | None = None,
    namespace: str | None = None,
) -> TaskGroup[Any]:
    """Submit the tasks of ``ex.group(...)`` with ``opts`` and return their :class:`TaskGroup`.

    The arguments are validated first; if a submission fails part way (the executor shut
    down meanwhile), the tasks already submitted are cancelled before the error propagates.
    With ``checkpoint`` (``group(fn, iterable)`` only), the items it holds are restored:
    their futures are done from the start (see :mod:`._resume`).
    """
    from ._resume import resume_for

    calls = _calls_of(fn_or_calls, iterable)
    resume = None
    if checkpoint is not None or key is not None or namespace is not None:
        if not callable(fn_or_calls):
            raise TypeError("group(): checkpoint= goes with the group(fn, iterable) form")
        resume = resume_for(checkpoint, fn_or_calls, opts, key, namespace, where="group()")
    # an explicit group_id wins, then the view's (ex.options(group_id=...)), then a fresh one
    gid: Hashable = group_id if group_id is not None else opts.group_id
    if gid is None:
        gid = new_group_id()
    task_opts = opts.replace(group_id=gid)  # validates group_id (hashable)
    if task_opts.task_id is not None and len(calls) > 1:
        raise ValueError(
            f"task_id {task_opts.task_id!r} cannot be shared by the {len(calls)} tasks of a "
            "group: task ids must be unique"
        )
    futures: list[TaskFuture[Any]] = []
    reuse = CallableReuse()  # a large callable met again is pickled once for the group
    try:
        if resume is None:
            for fn, args in calls:
                futures.append(core.submit(task_opts, fn, args, {}, reuse=reuse))
        else:
            keys = resume.keys([args[0] for _, args in calls])
            core.check_submittable()
            core.resumes.add(resume)
            for start, stop, restored in resume.split(keys, gid):
                if restored is not None:
                    core.batch.add_restored(restored)
                    futures.extend(restored.futures(core.sup))
                    continue
                new = [
                    core.submit(task_opts, fn, args, {}, reuse=reuse)
                    for fn, args in calls[start:stop]
                ]
                resume.follow(list(new), keys[start:stop])
                futures.extend(new)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    return TaskGroup(gid, futures, procs=core.config.procs, resume=resume)


def _finished_at(fut: TaskFuture[Any]) -> float:
    return record_of(fut).finished_at


class TaskGroup(Generic[T]):
    """The tasks of one ``ex.group(...)`` call, in input order.

    Every task carries :attr:`group_id`. Iterating a group (or :attr:`futures`) gives its
    :class:`TaskFuture` handles in input order; ``len()`` counts them. Then:

    - :meth:`values` waits for all and returns their values in input order, raising
      :class:`ExecutionError` if any failed or was cancelled;
    - :meth:`wait` waits (up to a timeout) and returns a :class:`RunSummary` of the group;
    - :meth:`as_completed` yields the futures as they finish;
    - :meth:`cancel` cancels every unfinished task, running ones included;
    - :meth:`done` says whether every task has finished.

    A group is independent of ``Executor.run()``: its tasks also belong to the executor's
    current batch, and waiting on one does not consume the other.
    """

    def __init__(
        self,
        group_id: Hashable,
        futures: Iterable[TaskFuture[T]],
        *,
        procs: int = 1,
        resume: Resume | None = None,
    ) -> None:
        self.group_id: Hashable = group_id
        """The ``group_id`` every task of the group carries (the key in ``by_group()``)."""
        self._futures: tuple[TaskFuture[T], ...] = tuple(futures)
        self._procs = procs
        self._resume = resume  # its checkpoint: what values()/wait() hand over is durable

    def _durable(self) -> None:
        if self._resume is not None:
            self._resume.durable_all(list(self._futures))

    @property
    def futures(self) -> tuple[TaskFuture[T], ...]:
        """The tasks' futures, in input order."""
        return self._futures

    def __len__(self) -> int:
        """How many tasks the group has."""
        return len(self._futures)

    def __iter__(self) -> Iterator[TaskFuture[T]]:
        """The tasks' futures, in input order."""
        return iter(self._futures)

    def __repr__(self) -> str:
        counts = {"succeeded": 0, "failed": 0, "cancelled": 0}
        pending = 0
        for fut in self._futures:
            if fut.done():
                counts[record_of(fut).status] += 1
            else:
                pending += 1
        parts = [f"{n} {word}" for word, n in counts.items() if n]
        if pending:
            parts.append(f"{pending} pending")
        detail = f": {', '.join(parts)}" if parts else ""
        n = len(self._futures)
        return f"<TaskGroup {self.group_id!r} {n} task{'' if n == 1 else 's'}{detail}>"

    # -- waiting ---------------------------------------------------------------------------

    def done(self) -> bool:
        """True when every task of the group has finished (an empty group is done)."""
        return all(fut.done() for fut in self._futures)

    def _wait_all(self, timeout: float | None) -> None:
        _, not_done = cf.wait(self._futures, timeout)
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} of {len(self._futures)} task(s) of group {self.group_id!r} "
                f"did not finish within {timeout:g}s"
            )

    def values(self, timeout: float | None = None) -> list[T]:
        """Wait for every task; return their values in input order.

        Raises :class:`ExecutionError` if any task failed or was cancelled: its ``.results``
        holds those records in input order, and its message counts them (``"1 task(s)
        failed, 2 task(s) cancelled"``). ``timeout`` (seconds, for the whole group) expiring
        first raises ``TimeoutError``; the tasks are left running.
        """
        self._wait_all(timeout)
        self._durable()
        records = [record_of(fut) for fut in self._futures]
        RunSummary(results=tuple(records), duration=0.0).raise_for_errors(include_cancelled=True)
        return [cast(T, r.value) for r in records]

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Wait up to ``timeout`` seconds (None: until all finish); summarise the group.

        The :class:`RunSummary` lists the records of the finished tasks in input order. If
        the timeout expires first, the unfinished tasks are *not* cancelled: they are left
        out of the summary, which has ``timed_out=True``. ``duration`` runs from the first
        task's submission to the last finish among the records listed.
        """
        done, not_done = cf.wait(self._futures, timeout)
        self._durable()
        records = tuple(record_of(fut) for fut in self._futures if fut in done)
        return RunSummary(
            results=records,
            duration=run_span(records),
            timed_out=bool(not_done),
            procs=self._procs,
            respawns=0,
        )

    def as_completed(self, timeout: float | None = None) -> Iterator[TaskFuture[T]]:
        """The futures in completion order, each once.

        Those already finished come first, ordered by their records' finish times.
        ``timeout`` (seconds, from this call) expiring before the next future finishes
        raises ``TimeoutError`` from the iterator, as in :func:`concurrent.futures.as_completed`.
        """
        end = None if timeout is None else time.monotonic() + timeout
        futures = self._futures

        def generate() -> Iterator[TaskFuture[T]]:
            finished = sorted((f for f in futures if f.done()), key=_finished_at)
            yield from finished
            seen = set(finished)
            rest = [f for f in futures if f not in seen]
            if rest:
                remaining = None if end is None else max(0.0, end - time.monotonic())
                for fut in cf.as_completed(rest, remaining):
                    yield cast(TaskFuture[T], fut)

        return generate()

    # -- stopping --------------------------------------------------------------------------

    def cancel(self) -> int:
        """Cancel every unfinished task of the group, running ones too; return how many.

        A running sync task's worker is killed and replaced; an async one is cancelled
        inside its worker. Each cancelled task ends with a ``cancelled`` record. All the
        cancellations happen in one step on the supervisor, so a queued task of the group
        cannot start on a worker freed by cancelling another.
        """
        pending = [fut for fut in self._futures if not fut.done()]
        if not pending:
            return 0
        count = 0
        submitted: list[Task] = []
        for fut in pending:
            parked_in = fut._parked_in  # held back by max_pending: never reached it
            if parked_in is not None and parked_in.withdraw(fut):
                count += 1
            elif fut._task is not None:
                submitted.append(fut._task)
        if submitted:
            sup = pending[0]._sup
            cancelled: int = sup.ask(CancelAll(tuple(submitted), "cancelled by the caller"))
            count += cancelled
        return count


@overload
def pmap(
    fn: Callable[[A], Coroutine[Any, Any, R]],
    iterable: Iterable[A],
    *,
    procs: int | None = None,
    progress: ProgressArg = None,
    checkpoint: Checkpoint | None = None,
    key: Callable[[Any], str] | None = None,
    namespace: str | None = None,
    **options: Any,
) -> list[R]: ...


@overload
def pmap(
    fn: Callable[[A], R],
    iterable: Iterable[A],
    *,
    procs: int | None = None,
    progress: ProgressArg = None,
    checkpoint: Checkpoint | None = None,
    key: Callable[[Any], str] | None = None,
    namespace: str | None = None,
    **options: Any,
) -> list[R]: ...


def pmap(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    procs: int | None = None,
    progress: ProgressArg = None,
    checkpoint: Checkpoint | None = None,
    key: Callable[[Any], str] | None = None,
    namespace: str | None = None,
    **options: Any,
) -> list[Any]:
    """``fn(item)`` for every item, on a fresh pool of ``procs`` workers; values in input order.

    A one-shot helper: it starts an :class:`Executor`, submits every item as ``map`` does
    (in chunks, each item its own task), waits for all of them, and shuts the pool down.
    ``options`` are :class:`TaskOptions` fields for every task (``pmap(f, xs, retries=2,
    timeout=10)``); unknown names raise ``TypeError`` and bad values ``ValueError``, before
    any worker starts. Any failed or cancelled task raises :class:`ExecutionError`
    (``.results`` holds their records). ``progress`` is as for ``Executor.run``.
    ``checkpoint``, ``key`` and ``namespace`` are as for :meth:`Executor.map`: items the
    checkpoint holds are not run again, and the successes of the others are durable in it
    once ``pmap`` returns or raises.
    """
    from ._executor import Executor
    from ._map import collect_values
    from ._mapping import submit_all, submit_resumed
    from ._resume import resume_for

    tracker = progress_tracker(progress, desc="osiiso_mp pmap")  # validate it first too
    opts = TaskOptions().replace(**options)  # validate before starting any worker
    resume = resume_for(checkpoint, fn, opts, key, namespace, where="pmap()")
    if resume is not None:  # a bad key raises before any worker starts
        iterable = list(iterable)
        keys = resume.keys(iterable)
    with Executor(procs=procs) as ex:
        opts = ex.options(**options).task_options
        args = [(item,) for item in iterable]
        if resume is None:
            entries = submit_all(ex._core, opts, fn, args, None)
        else:
            entries = submit_resumed(ex._core, opts, fn, args, None, resume, keys=keys)
        try:
            if tracker:
                tracker.watch_pool(ex._core.stats)
                tracker.track_all(entries, last=True)
            return collect_values(entries)
        finally:
            if resume is not None:
                resume.settle()
            if tracker:
                tracker.close()
