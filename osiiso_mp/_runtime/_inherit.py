"""Multiprocessing objects in an initializer's arguments reach workers "by inheritance".

``ProcessPoolExecutor`` passes ``initargs`` to each worker as process arguments, pickled
while the process is being spawned; queues, locks, events, semaphores, conditions, shared
``Value``/``Array`` and connections allow themselves to be pickled only then
(``multiprocessing.context.assert_spawning``), and hand the spawning process the descriptors
the child needs (``duplicate_for_child``). :func:`dumps_inherited` plays that spawning
process while the initializer is pickled: it keeps a duplicate of each descriptor, which
the supervisor sends with every worker's :class:`~._messages.Configure` (so a replacement
worker gets them too), and :class:`InheritedFd` stands for each one in the pickle. In the
worker, :func:`receive` installs the descriptors that arrived before the initializer is
unpickled.

Named semaphores (how locks are made for the ``forkserver`` and ``spawn`` contexts) travel by
name and need nothing more. A lock made by the ``fork`` context lives in memory only a forked
child shares; workers are not forked from the user's process, so such objects are refused
with a message that says which context to use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["InheritedFd", "dumps_inherited", "receive"]

# In a worker: the descriptors its Configure carried, by index, until an object claims one.
_received: dict[int, int] = {}


class InheritedFd:
    """In a pickled initializer: a descriptor the worker receives with its ``Configure``.

    ``detach()`` hands it over (what ``multiprocessing.reduction.DupFd`` objects do)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def detach(self) -> int:
        """The descriptor, now owned by the caller."""
        try:
            return _received.pop(self.index)
        except KeyError:
            raise RuntimeError(
                f"inherited descriptor {self.index} was not received (or already claimed)"
            ) from None


class _Spawning:
    """Stands for multiprocessing's spawning ``Popen`` while an initializer is pickled."""

    DupFd = InheritedFd  # multiprocessing calls popen.DupFd(popen.duplicate_for_child(fd))

    def __init__(self) -> None:
        self.fds: list[int] = []

    def duplicate_for_child(self, fd: int) -> int:
        self.fds.append(os.dup(fd))
        return len(self.fds) - 1


def dumps_inherited(dumps: Callable[[], bytes], call: tuple[Any, ...]) -> tuple[bytes, list[int]]:
    """Pickle ``call`` (an initializer, its arguments and keywords) as if a process were
    being spawned; return the pickle and the descriptors it refers to (duplicates, owned by
    the caller). ``dumps()`` pickles it the usual way: it is used where no multiprocessing
    object can be in it, and to report what cannot be pickled at all."""
    if "multiprocessing" not in sys.modules:  # then no multiprocessing object can be in it
        return dumps(), []
    from multiprocessing import context

    _refuse_fork_locks(call[1:])
    spawning = _Spawning()
    context.set_spawning_popen(spawning)  # type: ignore[arg-type]  # duck-typed, as loky does
    try:
        try:
            data = _dumps_spawning(call)
        except Exception:
            data = dumps()  # raises SerializationError naming the stage, if it fails too
    except BaseException:
        for fd in spawning.fds:
            os.close(fd)
        raise
    finally:
        context.set_spawning_popen(None)
    return data, spawning.fds


def _dumps_spawning(call: tuple[Any, ...]) -> bytes:
    """``call`` pickled by value where needed (cloudpickle, code keeping its file name, as a
    task's), with multiprocessing's own reducers for its objects (connections, shared
    memory arenas), as ``Process`` does."""
    import io
    from collections import ChainMap
    from multiprocessing.reduction import ForkingPickler

    from .protocol._by_value import by_value_pickler

    base = by_value_pickler()  # cloudpickle's, code keeping its file name

    class Pickler(base):  # type: ignore[misc,valid-type]
        dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
            ForkingPickler._extra_reducers,  # type: ignore[attr-defined]
            base.dispatch_table,
        )

    out = io.BytesIO()
    Pickler(out, protocol=5).dump(call)
    return out.getvalue()


def receive(fds: tuple[int, ...]) -> None:
    """In a worker: the descriptors its ``Configure`` carried, for :class:`InheritedFd`."""
    _received.clear()
    _received.update(enumerate(fds))


def _refuse_fork_locks(obj: Any, depth: int = 0, seen: set[int] | None = None) -> None:
    """Raise ValueError for a lock of the ``fork`` context among ``obj`` (the arguments,
    their containers, and the attributes of multiprocessing's own objects)."""
    seen = set() if seen is None else seen
    if depth > 6 or id(obj) in seen:
        return
    seen.add(id(obj))
    from multiprocessing import synchronize

    if isinstance(obj, synchronize.SemLock):
        if obj._semlock.name is None:  # type: ignore[attr-defined]  # unlinked: fork context
            raise ValueError(
                f"initargs hold a multiprocessing {type(obj).__name__} made by the 'fork' "
                "context, which only a forked child can use, and osiiso_mp's workers are not "
                "forked from this process. Make it from another context, as for "
                "ProcessPoolExecutor(mp_context=...): ctx = multiprocessing.get_context("
                "'forkserver'); ctx.Queue(), ctx.Lock(), ctx.Value(...)"
            )
        return
    children: Any = ()
    if isinstance(obj, (tuple, list, set, frozenset)):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    elif type(obj).__module__.startswith("multiprocessing."):
        children = getattr(obj, "__dict__", {}).values()
    for child in children:
        _refuse_fork_locks(child, depth + 1, seen)
