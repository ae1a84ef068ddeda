"""Large callables: pickled once per ``map`` or group, and a warning naming the remedy.

A callable pickled by value carries what it captures: ``lambda i: big[i]`` over a list of
20 million numbers pickles to 25 MB, and that travels to a worker with every task that
calls it. Two things keep that from going unnoticed and from costing more than it must:

- :class:`CallableReuse`: within one ``map`` (all its chunks) or one ``group`` call (all its
  tasks), a callable whose payload turned out large is pickled once, the second time it is
  met, and that pickle is embedded in every later payload (a
  :class:`~._runtime.protocol._by_value.PickledCallable`, which travels as one buffer beside
  the payload). It is safe there: the callable is the same object, pickled within the one
  call that submits them all (as the standard library's ``map`` pickles it per chunk, at a
  time of its own choosing). Separate ``submit`` calls are never folded together: the data
  a callable captures may change between them.
- :func:`check_size`: when a payload is large (1 MiB or more), the callable alone is
  pickled, once per callable, and a :class:`LargeCallableWarning` names it, its size and
  the remedies when it is that large by itself. A small payload costs one type check.
"""

from __future__ import annotations

import functools
import os
import sys
import types
import warnings
import weakref
from typing import Any

from ._errors import format_bytes
from ._intake import callable_name
from ._runtime.protocol._buffers import INLINE_MIN, Blob, blob_size, release
from ._runtime.protocol._by_value import PickledCallable, dumps_by_value
from ._runtime.protocol._serialize import Packed, dumps_task

__all__ = ["WARN_BYTES", "CallableReuse", "LargeCallableWarning", "check_size"]

WARN_BYTES = 1 << 20  # a callable pickled to this many bytes or more is warned about
# a payload this large (it no longer travels inside its frame) may hold a callable worth
# pickling once: below it, folding the callable out would cost more than it saves
REUSE_BYTES = INLINE_MIN


class LargeCallableWarning(UserWarning):
    """A callable pickled to 1 MiB or more: the data it captures travels with every task.

    Issued once per callable, when a task that calls it is submitted. A closure or a lambda
    that uses a large object defined outside it (``lambda i: big[i]``) carries that object
    in its pickle, and the pickle goes to a worker with every task (with every chunk of a
    ``map``, whose chunks share one pickle). The remedies: pass the data as an argument
    (large arrays and bytes then travel out of band, in shared memory), load it once per
    worker with ``initializer`` / ``initargs``, or keep it in a module the workers import.
    Silence it with ``warnings.filterwarnings("ignore", category=LargeCallableWarning)``.
    """


class CallableReuse:
    """The callables of one ``map`` or one group call, each pickled once where it pays.

    The first payload of a callable is made as usual (its size noted); from the second on,
    a callable whose payload was ``REUSE_BYTES`` or more is pickled alone, once, and that
    pickle goes into each later payload. It holds the callables it has met (by id) for as
    long as the map or group submits.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        # id -> (the callable, its first payload's size | its pickle | None: not worth it)
        self._seen: dict[int, tuple[Any, int | PickledCallable | None]] = {}

    def dumps(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, shared: bool
    ) -> Packed:
        """``dumps_task(fn, args, kwargs)``, with ``fn`` pickled once where it pays."""
        entry = self._seen.get(id(fn))
        if entry is None or entry[0] is not fn:
            packed = dumps_task(fn, args, kwargs, shared=shared)
            self._seen[id(fn)] = (fn, packed_size(packed))
            return packed
        target = self.pickled(fn)
        return dumps_task(fn if target is None else target, args, kwargs, shared=shared)

    def pickled(self, fn: Any, *, decide: bool = True) -> PickledCallable | None:
        """``fn``'s pickle made once, if a payload of it has been made and was large (None
        when it is not worth it, or ``fn`` has not been met; or, unless ``decide``, when
        it has been met once only)."""
        entry = self._seen.get(id(fn))
        if entry is None or entry[0] is not fn:
            return None
        state = entry[1]
        if isinstance(state, int):  # met once: decide now
            if not decide:
                return None
            first_size, state = state, None
            if first_size >= REUSE_BYTES:
                try:
                    made = PickledCallable(fn)
                except Exception:  # its payload pickled: as before, with the arguments
                    made = None
                if made is not None and made.size >= REUSE_BYTES:
                    state = made  # (a small callable with large arguments: not worth it)
            self._seen[id(fn)] = (fn, state)
        return state


def packed_size(packed: Packed) -> int:
    """The bytes a payload and its buffers carry."""
    payload, buffers = packed
    return blob_size(payload) + sum(blob_size(b) for b in buffers)


def chunk_room_size(reuse: CallableReuse | None, fn: Any, packed: Packed) -> int:
    """The bytes one element costs a chunk, from the payload of ``fn`` with it alone:
    without the callable when ``reuse`` pickles it once for every chunk."""
    size = packed_size(packed)
    if reuse is not None:
        pickled = reuse.pickled(fn)
        if pickled is not None:
            size -= pickled.size
    return max(1, size)


def check_size(
    fn: Any, payload: Blob, buffers: tuple[Blob, ...], reuse: CallableReuse | None = None
) -> None:
    """Warn (:class:`LargeCallableWarning`, once per callable) when ``fn``, whose task's
    payload is ``payload`` and ``buffers``, pickles to ``WARN_BYTES`` or more by itself.

    Should the warning raise (``filterwarnings = error``), the payload's shared buffers are
    released first: nothing is left behind by the refused submission.
    """
    if not buffers and type(payload) is bytes:  # the hot path: a payload inside its frame
        return
    if blob_size(payload) + sum(blob_size(b) for b in buffers) < WARN_BYTES:
        return
    name = callable_name(fn)
    if not _first_look(fn, name):
        return
    pickled = None if reuse is None else reuse.pickled(fn)
    if pickled is not None:
        size = pickled.size
    else:
        try:
            size = len(dumps_by_value(fn))
        except Exception:  # it pickled with its arguments: no warning rather than an error
            return
    if size < WARN_BYTES:
        return
    try:
        warnings.warn(_message(fn, name, size), LargeCallableWarning, stacklevel=_stacklevel())
    except BaseException:
        release((payload, *buffers))
        raise


def _message(fn: Any, name: str, size: int) -> str:
    code = getattr(_unwrapped(fn), "__code__", None)
    where = "" if code is None else f" (defined at {code.co_filename}:{code.co_firstlineno})"
    return (
        f"the callable {name}{where} pickles to {format_bytes(size)}, which travels to a worker "
        "with every task that calls it (with every chunk of a map): it carries the data it "
        "captures. Pass that data as an argument instead, load it once per worker with "
        "initializer= and initargs=, or keep it in a module the workers import (the globals "
        "of __main__ or of a notebook cell travel with the function). osiiso_mp warns once "
        f"per callable of {format_bytes(WARN_BYTES)} or more (LargeCallableWarning)."
    )


def _unwrapped(fn: Any) -> Any:
    """The function behind a partial or a bound method (``fn`` itself otherwise)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn.__func__ if isinstance(fn, types.MethodType) else fn


# (id, name) of the callables already looked at -> a weak reference to each (None: it has
# none, the id and name alone then say it was seen); bounded, as ids of dead ones may recur
_looked: dict[tuple[int, str], Any] = {}
_LOOKED_MAX = 4096


def _first_look(fn: Any, name: str) -> bool:
    """Is this the first time ``fn`` is looked at (a bound method: its object's)? Notes it."""
    anchor = fn.__self__ if isinstance(fn, types.MethodType) else fn
    key = (id(anchor), name)
    if key in _looked:
        ref = _looked[key]
        if ref is None or ref() is anchor:
            return False
    try:
        ref = weakref.ref(anchor, functools.partial(_forget, key))
    except TypeError:  # not weak-referenceable (a builtin, an object with __slots__)
        ref = None
    if len(_looked) >= _LOOKED_MAX:
        _looked.clear()
    _looked[key] = ref
    return True


def _forget(key: tuple[int, str], ref: Any) -> None:
    if _looked.get(key) is ref:
        del _looked[key]


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _stacklevel() -> int:
    """The ``stacklevel`` that points a warning issued here at the user's call (the first
    frame outside this package)."""
    level = 1
    frame = sys._getframe(1)  # check_size's: level 1 is the caller of warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
