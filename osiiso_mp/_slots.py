"""Fast constructors for frozen slotted dataclasses (standard library only).

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which
costs most of the time of making a small record or message. :func:`slot_builder` writes a
straight-line function that makes the object with ``object.__new__`` and sets each slot
through its descriptor: no validation, no ``__post_init__``, so only for classes that have
neither, and only where every field is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["slot_builder"]


def slot_builder(
    cls: type, names: Sequence[str], *, tuple_offset: int | None = None
) -> Callable[..., Any]:
    """A function making a ``cls`` with every one of ``names`` set.

    With ``tuple_offset=None`` it takes the fields as arguments named like them (keywords
    or positionally, in ``names`` order); with ``tuple_offset=k`` it takes one tuple whose
    items from index ``k`` on are the fields in order.
    """
    setters = "".join(f", _s{i}=_s{i}" for i in range(len(names)))
    if tuple_offset is None:
        params = ", ".join(names)
        head = f"def build({params}, *, _new=object.__new__, _cls=_cls{setters}):"
        values = list(names)
    else:
        head = f"def build(t, *, _new=object.__new__, _cls=_cls{setters}):"
        values = [f"t[{i + tuple_offset}]" for i in range(len(names))]
    body = [head, "    obj = _new(_cls)"]
    body += [f"    _s{i}(obj, {value})" for i, value in enumerate(values)]
    body.append("    return obj")
    scope: dict[str, Any] = {"_cls": cls}
    scope.update({f"_s{i}": getattr(cls, name).__set__ for i, name in enumerate(names)})
    exec("\n".join(body), scope)
    build: Callable[..., Any] = scope["build"]
    return build
