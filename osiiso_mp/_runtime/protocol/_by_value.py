"""Pickling by value: cloudpickle, with code keeping its file name; a callable pickled once.

- cloudpickle (3.1 on) writes every code object it pickles by value with the file name
  ``"<dynamic-code>"`` (so that its pickles are the same wherever the code was defined), and
  a function from a script's ``__main__`` or a notebook cell that raised in a worker then
  showed ``File "<dynamic-code>", line 7`` in its traceback, with no source line.
  :func:`dumps_by_value` pickles as cloudpickle does, except that code objects keep their
  real file name (in the argument of ``types.CodeType`` where cloudpickle puts its marker),
  so that the worker's traceback names the user's file (or cell) and shows its source line
  where the worker can read it; where it cannot (a notebook cell, another host), the
  parent fills it in (see :mod:`osiiso_mp._remote_tb`). Nothing else changes.
- :class:`PickledCallable` is a callable pickled once, to be embedded in many tasks'
  payloads (the chunks of one ``map``, the tasks of one group): its pickle travels as one
  buffer beside each payload and is unpickled in the worker by :func:`load_callable`. A
  closure over a large list is then pickled once per ``map``, not once per chunk.

cloudpickle is imported when first needed (see :mod:`._serialize`).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import types
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["PickledCallable", "by_value_pickler", "dumps_by_value", "load_callable"]

_pickler: type[Any] | None = None  # cloudpickle's Pickler with our code reducer, once made
# where the file name is among the arguments of types.CodeType (Python 3.11 to 3.13), and
# what cloudpickle puts there
_FILENAME_AT = 10
_DYNAMIC = ("<dynamic-code>",)


def by_value_pickler() -> type[Any]:
    """cloudpickle's ``Pickler`` whose code objects keep their file name (cloudpickle's own
    where its code reducer is not where we expect it)."""
    global _pickler
    if _pickler is None:
        import cloudpickle
        from cloudpickle import cloudpickle as impl

        base: type[Any] = cloudpickle.Pickler
        code_reduce = getattr(impl, "_code_reduce", None)
        if code_reduce is None:  # pragma: no cover - a cloudpickle we do not know
            _pickler = base
        else:

            def reduce_code(code: types.CodeType) -> tuple[Any, ...]:
                make, args = code_reduce(code)
                if make is types.CodeType and args[_FILENAME_AT : _FILENAME_AT + 1] == _DYNAMIC:
                    args = (*args[:_FILENAME_AT], code.co_filename, *args[_FILENAME_AT + 1 :])
                return make, args  # (a layout we do not know: as cloudpickle made it)

            table = _DispatchTable(_own_reducers(base.dispatch_table))
            table[types.CodeType] = reduce_code

            class Pickler(base):  # type: ignore[misc]
                dispatch_table: ClassVar[dict[Any, Any]] = table

            _pickler = Pickler
    return _pickler


def _own_reducers(table: Any) -> dict[Any, Any]:
    """The reducers of a pickler's ``dispatch_table`` but copyreg's, in one dict (a
    ``ChainMap``'s tables merged, the first one's first)."""
    maps = getattr(table, "maps", [table])
    merged: dict[Any, Any] = {}
    for each in reversed(maps):
        if each is not copyreg.dispatch_table:
            merged.update(each)
    return merged


class _DispatchTable(dict):  # type: ignore[type-arg]
    """A pickler's ``dispatch_table``: cloudpickle's own reducers in one dict, which the C
    pickler reads without calling Python; a type it lacks is looked up in
    ``copyreg.dispatch_table`` as it is now (code may register reducers there, or remove
    them, at any time), as cloudpickle's table does. cloudpickle's own is a ``ChainMap``,
    read in Python with an exception per table for every object that gets that far (an
    instance of a user's class, say): through a ``ChainMap`` over it, 5,000 such instances
    pickled in 1.3-1.6 times cloudpickle's time; through this table, in 0.55-0.86 times
    (seven runs of eight)."""

    def __missing__(self, key: Any) -> Any:
        return copyreg.dispatch_table[key]


def dumps_by_value(
    obj: Any, buffer_callback: Callable[[pickle.PickleBuffer], bool] | None = None
) -> bytes:
    """``cloudpickle.dumps(obj, protocol=5, buffer_callback=...)``, code keeping its file
    name."""
    with io.BytesIO() as out:
        by_value_pickler()(out, protocol=5, buffer_callback=buffer_callback).dump(obj)
        return out.getvalue()


class PickledCallable:
    """A callable pickled by value once (``data``), embedded in many tasks' payloads.

    It pickles as a call of :func:`load_callable` on its data, passed as a
    :class:`pickle.PickleBuffer`, so that a large one travels out of band, beside each
    payload, instead of inside it. ``fn`` is the callable itself (the parent's, never
    pickled); ``size`` the bytes of its pickle.
    """

    __slots__ = ("data", "fn")

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.data = dumps_by_value(fn)

    @property
    def size(self) -> int:
        """The bytes of the callable's pickle."""
        return len(self.data)

    def __reduce__(self) -> tuple[Any, ...]:
        return load_callable, (pickle.PickleBuffer(self.data),)


def load_callable(data: Any) -> Any:
    """In the worker: the callable a :class:`PickledCallable` carries (``data``: its pickle,
    any bytes-like object)."""
    return pickle.loads(data)
