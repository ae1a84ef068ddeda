"""How ``map`` submits its elements: in chunks when it may be, all at once (with a
read-ahead) or streamed within ``buffersize``; shared by both facades."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._callables import CallableReuse
from ._core import CHUNK_BYTES
from ._map import MapWindow
from ._runtime._policy import chunk_size
from ._runtime._read_ahead import ReadAhead

if TYPE_CHECKING:
    from ._core import ExecutorCore
    from ._resume import Resume
    from ._runtime._task import Task
    from ._task_options import TaskOptions

__all__ = ["map_window", "submit_all", "submit_resumed"]

# how many bytes of values a map without buffersize holds for a reader slower than its
# workers before its next tasks wait for the reader (see ReadAhead): a quarter of
# retain_bytes, at least two chunks' worth (retain_bytes=None: no bound)
_READ_AHEAD_SHARE = 4
_READ_AHEAD_FLOOR = 2 * CHUNK_BYTES


def map_window(
    core: ExecutorCore,
    opts: TaskOptions,
    fn: Callable[..., Any],
    args_iter: Iterator[tuple[Any, ...]],
    chunksize: int | None,
    buffersize: int | None,
    resume: Resume | None = None,
    single: bool = True,
) -> MapWindow:
    """Submit a ``map``'s elements (all of them, or the first ``buffersize`` when
    streaming): in chunks when it may be, else one task each; a large callable pickled
    once for them all (see :mod:`._callables`). With ``resume`` (a checkpoint), elements
    it holds are restored instead, in their place; ``single``: the map has one iterable
    (its keys are of the elements themselves, else of the argument tuples)."""
    chunked = chunksize != 1 and core.chunkable(opts, fn)
    reuse = CallableReuse()

    def submit_items(items: list[tuple[Any, ...]]) -> list[Any]:
        if resume is not None:
            return list(
                submit_resumed(
                    core,
                    opts,
                    fn,
                    items,
                    chunksize,
                    resume,
                    single=single,
                    chunked=chunked,
                    reuse=reuse,
                )
            )
        if chunked:
            return core.submit_items(opts, fn, items, reuse=reuse)
        return [core.submit(opts, fn, args, {}, reuse=reuse) for args in items]

    if buffersize is None:
        retain = core.config.retain_bytes
        flow: ReadAhead[Task] | None = (
            None
            if retain is None
            else ReadAhead(max(retain // _READ_AHEAD_SHARE, _READ_AHEAD_FLOOR))
        )
        if resume is None:
            entries = submit_all(
                core, opts, fn, args_iter, chunksize, chunked=chunked, flow=flow, reuse=reuse
            )
        else:
            entries = submit_resumed(
                core,
                opts,
                fn,
                list(args_iter),
                chunksize,
                resume,
                single=single,
                chunked=chunked,
                flow=flow,
                reuse=reuse,
            )
        return MapWindow(entries, None, submit_items, None, flow, core.sup, resume)
    size = 1
    if chunked:
        first = next(args_iter, None)
        if first is not None:
            args_iter = itertools.chain((first,), args_iter)
            size = chunksize or _chunk_size(core, fn, first, window=buffersize, reuse=reuse)
    size = min(size, buffersize)
    batches = iter(lambda: list(itertools.islice(args_iter, size)), [])
    window = MapWindow(deque(), batches, submit_items, buffersize, resume=resume)
    window.refill()  # the first window is submitted now, as without buffersize
    return window


def submit_all(
    core: ExecutorCore,
    opts: TaskOptions,
    fn: Callable[..., Any],
    args_iter: Iterable[tuple[Any, ...]],
    chunksize: int | None,
    *,
    chunked: bool | None = None,
    flow: ReadAhead[Task] | None = None,
    reuse: CallableReuse | None = None,
) -> deque[Any]:
    """Submit ``fn(*args)`` for every tuple, in chunks when it may be (``chunked``, when
    the caller has already decided): the :class:`MapChunk` and :class:`TaskFuture`
    entries, in input order. ``flow``: the read-ahead of the map they belong to;
    ``reuse``: its callable, pickled once for them all (a new one if not given)."""
    if chunked is None:
        chunked = chunksize != 1 and core.chunkable(opts, fn)
    if reuse is None:
        reuse = CallableReuse()
    if not chunked:
        return deque(core.submit(opts, fn, args, {}, flow, reuse) for args in args_iter)
    items = list(args_iter)
    if not items:
        return deque()
    size = chunksize or _chunk_size(core, fn, items[0], total=len(items), reuse=reuse)
    entries: deque[Any] = deque()
    for at in range(0, len(items), size):
        entries.extend(core.submit_items(opts, fn, items[at : at + size], flow, reuse))
    return entries


def submit_resumed(
    core: ExecutorCore,
    opts: TaskOptions,
    fn: Callable[..., Any],
    items: list[tuple[Any, ...]],
    chunksize: int | None,
    resume: Resume,
    *,
    single: bool = True,
    keys: list[str] | None = None,
    chunked: bool | None = None,
    flow: ReadAhead[Task] | None = None,
    reuse: CallableReuse | None = None,
) -> deque[Any]:
    """:func:`submit_all` for inputs a checkpoint may hold: every key is worked out first
    (a bad one raises before anything is submitted), then runs of done inputs become
    :class:`~._restored.Restored` entries, in their place in the window and the batch of
    ``run()``, and the others are submitted, their successes recorded as they come.
    ``keys``: the inputs' keys when the caller has them already."""
    core.check_submittable()
    if keys is None:
        keys = resume.keys([args[0] for args in items] if single else items)
    core.resumes.add(resume)
    entries: deque[Any] = deque()
    for start, stop, restored in resume.split(keys):
        if restored is not None:
            core.batch.add_restored(restored)
            entries.append(restored)
            continue
        new = submit_all(
            core, opts, fn, items[start:stop], chunksize, chunked=chunked, flow=flow, reuse=reuse
        )
        resume.follow(list(new), keys[start:stop])
        entries.extend(new)
    return entries


def _chunk_size(
    core: ExecutorCore,
    fn: Callable[..., Any],
    first: tuple[Any, ...],
    *,
    total: int | None = None,
    window: int | None = None,
    reuse: CallableReuse | None = None,
) -> int:
    """Elements per chunk when ``chunksize`` is not given: the policy's size for the
    callable's estimated duration, within the bytes one element like ``first`` takes.

    A callable large enough to be pickled once for the map (``reuse``) costs each chunk
    its transfer and unpickling, which the estimate (the durations of its tasks, whose
    unpickling they include) cannot tell from its work: its chunks are sized as for an
    unknown duration, not one item each for a callable that looks slow.
    """
    room = core.chunk_room(fn, first, reuse)
    large = reuse is not None and reuse.pickled(fn) is not None
    estimate = None if large else core.estimate(fn)
    by_time = chunk_size(total=total, procs=core.config.procs, estimate=estimate, window=window)
    return min(by_time, room)
