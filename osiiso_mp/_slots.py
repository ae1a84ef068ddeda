"""Frozen slotted classes made cheaply, and fast constructors for them (standard library
only).

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which
costs most of the time of making a small record or message. :func:`slot_builder` writes a
straight-line function that makes the object with ``object.__new__`` and sets each slot
through its descriptor: no validation, no ``__post_init__``, so only for classes that have
neither, and only where every field is given.

:func:`frozen_class` makes the internal messages and commands: what
``@dataclass(frozen=True, slots=True)`` makes, for a class of plain fields, at a fraction of
its import-time cost (the dataclass decorator compiles six methods per class; this compiles
``__init__`` only, when the class is first used). Both the user process and the fork server
create these classes on the way to the first task.
Public records stay dataclasses (``dataclasses.fields`` and ``replace`` work on them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

__all__ = ["frozen_class", "slot_builder", "values_getter"]

_C = TypeVar("_C", bound=type)
_CLASS_VARS = ("ClassVar", "typing.ClassVar")  # annotations, as strings or as objects


def values_getter(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A callable returning the tuple of ``names``' values of an object (an attrgetter,
    wrapped to return a tuple for 0 or 1 names too)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names)


def _repr(self: Any) -> str:
    shown = zip(self.__match_args__, type(self).__values__(self), strict=True)
    return f"{type(self).__qualname__}({', '.join(f'{n}={v!r}' for n, v in shown)})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = type(self).__values__
    return values(self) == values(other)


def _hash(self: Any) -> int:
    return hash(type(self).__values__(self))


def _setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")


def _delattr(self: Any, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")


@dataclass_transform(frozen_default=True)
def frozen_class(cls: _C) -> _C:
    """``cls`` remade as a frozen class with ``__slots__``, one per annotated field (in
    order; a class attribute is that field's default), and ``__init__``, ``__repr__``,
    ``__eq__``, ``__hash__`` and ``__match_args__`` as a frozen dataclass has them;
    ``__values__(obj)`` is the tuple of an object's fields. Assigning or deleting a field
    raises :class:`AttributeError`. Base classes must declare no fields (``__slots__ =
    ()``); ``ClassVar`` annotations are not fields.

    Only ``__init__`` is compiled (it is on the hot path: messages are made per task), on
    the class's first construction; the other methods are shared functions reading
    ``__values__``."""
    own = inspect.get_annotations(cls)  # this class's own, as written (strings, here)
    names = tuple(n for n, t in own.items() if not str(t).startswith(_CLASS_VARS))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    body = {k: v for k, v in cls.__dict__.items() if k not in defaults}
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    body.update(
        __slots__=names,
        __match_args__=names,
        __values__=staticmethod(values_getter(names)),
        __repr__=_repr,
        __eq__=_eq,
        __hash__=_hash,
        __setattr__=_setattr,
        __delattr__=_delattr,
    )
    new: Any = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__

    def compile_init() -> Callable[..., None]:
        params = "".join(f", {n}=_d_{n}" if n in defaults else f", {n}" for n in names)
        source = [f"def __init__(self{params}):"]
        source += [f"    _s_{n}(self, {n})" for n in names] or ["    pass"]
        scope: dict[str, Any] = {f"_d_{n}": v for n, v in defaults.items()}
        scope.update({f"_s_{n}": getattr(new, n).__set__ for n in names})
        exec("\n".join(source), scope)
        init: Callable[..., None] = scope["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        return init

    def first_init(self: Any, *args: Any, **kwargs: Any) -> None:
        # Compiled on first use: most classes are made at import and never or rarely
        # built, and import time is start-up time. Two threads racing here both install
        # an equivalent function.
        init = compile_init()
        type.__setattr__(new, "__init__", init)
        init(self, *args, **kwargs)

    first_init.__qualname__ = f"{cls.__qualname__}.__init__"
    type.__setattr__(new, "__init__", first_init)
    return new  # type: ignore[no-any-return]


_OBJECT_NEW: Any = object.__new__


def _shadow(cls: type) -> type | None:
    """A plain class with ``cls``'s slots and nothing else (a subclass of ``object``, or
    else of ``cls``'s bases), whose instances may become ``cls`` instances by ``__class__``
    assignment: the two have the same layout. None when Python refuses that for ``cls``."""
    slots = cls.__dict__.get("__slots__")
    if type(cls) is not type or type(slots) is not tuple:  # (no metaclass of its own)
        return None
    for bases in ((), cls.__bases__):
        if any(base.__new__ is not _OBJECT_NEW for base in bases):
            continue
        try:
            body = {"__slots__": slots, "__init__": object.__init__}
            shadow = type(f"_{cls.__name__}Shadow", bases, body)
            probe = shadow()
            for name in slots:
                setattr(probe, name, None)
            probe.__class__ = cls
        except (TypeError, AttributeError):  # a layout of its own (a C base, say)
            continue
        return shadow
    return None


def slot_builder(
    cls: type, names: Sequence[str], *, tuple_offset: int | None = None
) -> Callable[..., Any]:
    """A function making a ``cls`` with every one of ``names`` set.

    With ``tuple_offset=None`` it takes the fields as arguments named like them (keywords
    or positionally, in ``names`` order); with ``tuple_offset=k`` it takes one tuple whose
    items from index ``k`` on are the fields in order.

    The object is made as an instance of a plain class with the same slots, whose fields
    are set by plain attribute stores (which the interpreter specializes), and then given
    its class: about a quarter of the time of setting each slot through its descriptor
    (which is what is done where Python does not allow that change of class).
    """
    if tuple_offset is None:
        params = ", ".join(names)
        head = f"def build({params}, *, _cls=_cls, _shadow=_shadow"
        values = list(names)
    else:
        head = "def build(t, *, _cls=_cls, _shadow=_shadow"
        values = [f"t[{i + tuple_offset}]" for i in range(len(names))]
    scope: dict[str, Any] = {"_cls": cls, "_shadow": _shadow(cls)}
    if scope["_shadow"] is not None:
        body = [head + "):", "    obj = _shadow()"]
        body += [f"    obj.{name} = {value}" for name, value in zip(names, values, strict=True)]
        body.append("    obj.__class__ = _cls")
    else:
        head += ", _new=object.__new__" + "".join(f", _s{i}=_s{i}" for i in range(len(names)))
        body = [head + "):", "    obj = _new(_cls)"]
        body += [f"    _s{i}(obj, {value})" for i, value in enumerate(values)]
        scope.update({f"_s{i}": getattr(cls, name).__set__ for i, name in enumerate(names)})
    body.append("    return obj")
    exec("\n".join(body), scope)
    build: Callable[..., Any] = scope["build"]
    return build
