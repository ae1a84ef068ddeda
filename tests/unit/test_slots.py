"""``frozen_class``: the internal messages' and commands' class maker (no processes)."""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from osiiso_mp._runtime.protocol._messages import ErrorInfo, RunTask, TaskStarted
from osiiso_mp._slots import frozen_class


class _Base:
    __slots__ = ()

    def twice(self) -> int:
        return 2 * int(getattr(self, "a"))  # noqa: B009 (the subclass's field)


@frozen_class
class Point(_Base):
    """A point."""

    a: int
    b: str = "x"
    c: tuple[int, ...] = ()
    LIMIT: ClassVar[int] = 7


def test_fields_defaults_and_methods_of_the_base() -> None:
    p = Point(1)
    assert (p.a, p.b, p.c) == (1, "x", ())
    assert Point(1, "y", (2,)).c == (2,)
    assert Point(a=3, c=(4,)).b == "x"
    assert Point.__match_args__ == ("a", "b", "c")  # the ClassVar is not a field
    assert Point.LIMIT == 7
    assert p.twice() == 2
    assert Point.__doc__ == "A point."
    assert Point.__qualname__ == "Point"
    assert not hasattr(p, "__dict__")  # slots only
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, "x", (), 4)  # type: ignore[call-arg]


def test_equality_hash_and_repr_follow_the_fields() -> None:
    assert Point(1) == Point(1, "x", ())
    assert Point(1) != Point(2)
    same_values: object = (1, "x", ())
    assert Point(1) != same_values  # another type is never equal
    assert hash(Point(1, "y")) == hash(Point(1, "y"))
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert repr(Point(1, "y")) == "Point(a=1, b='y', c=())"


def test_fields_cannot_be_assigned_or_deleted() -> None:
    p = Point(1)
    with pytest.raises(AttributeError, match="cannot assign to field 'a' of Point"):
        p.a = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete field 'b' of Point"):
        del p.b
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    assert p.a == 1


def test_messages_pickle_as_class_and_fields() -> None:
    msgs = [TaskStarted(3, 1.5), RunTask(7, 1, 0, b"p", False, None), ErrorInfo("E", "m", "", None)]
    for msg in msgs:
        cls, values = msg.__reduce__()
        assert cls is type(msg) and values == type(msg).__values__(msg)
        assert pickle.loads(pickle.dumps(msg, protocol=5)) == msg


def test_the_first_construction_checks_its_arguments_as_later_ones_do() -> None:
    # __init__ is compiled on the class's first construction: a first call with bad
    # arguments raises as any call would, and leaves the class usable
    @frozen_class
    class Pair:
        left: int
        right: int = 0

    with pytest.raises(TypeError):
        Pair(1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Pair(wrong=1)  # type: ignore[call-arg]
    assert (Pair(1).left, Pair(1).right, Pair(right=5, left=4).right) == (1, 0, 5)
    with pytest.raises(TypeError):
        Pair()  # type: ignore[call-arg]
    assert Pair.__init__.__qualname__.endswith("Pair.__init__")
