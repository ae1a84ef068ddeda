"""``frozen_class``: the internal messages' and commands' class maker (no processes)."""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, ClassVar

import pytest

from osiiso_mp._results import Attempt, TaskResult
from osiiso_mp._runtime.protocol._messages import ErrorInfo, RunTask, TaskStarted
from osiiso_mp._slots import _shadow, frozen_class, slot_builder


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


@dataclass(frozen=True, slots=True)
class _Record:
    a: int
    b: str
    c: tuple[int, ...]


class _Slotted:
    __slots__ = ("x",)


class _Derived(_Slotted):  # its shadow derives from _Slotted too
    __slots__ = ("y",)


class _Made:
    __slots__ = ("x",)

    def __new__(cls) -> _Made:  # a shadow would skip this: none is made
        return super().__new__(cls)


class _MadeDerived(_Made):
    __slots__ = ("y",)


def test_slot_builder_makes_the_class_itself_from_a_plain_one_of_the_same_layout() -> None:
    assert _shadow(_Record) is not None
    build = slot_builder(_Record, ["a", "b", "c"])
    made = build(1, "two", (3,))
    assert type(made) is _Record and made == _Record(1, "two", (3,))
    assert build(a=4, b="x", c=()) == _Record(4, "x", ())
    from_tuple = slot_builder(_Record, ["a", "b", "c"], tuple_offset=1)
    assert from_tuple(("tag", 5, "y", (6,))) == _Record(5, "y", (6,))
    with pytest.raises(FrozenInstanceError):
        made.a = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(made)) == made


def test_slot_builder_sets_descriptors_where_the_class_cannot_be_changed() -> None:
    assert _shadow(_Derived) is not None  # (a subclass of a slotted class can)
    made: Any = slot_builder(_Derived, ["x", "y"])(1, 2)
    assert (made.x, made.y) == (1, 2)
    assert type(made) is _Derived
    assert _shadow(_MadeDerived) is None
    other: Any = slot_builder(_MadeDerived, ["x", "y"])(3, 4)
    assert (other.x, other.y) == (3, 4)
    assert type(other) is _MadeDerived


def test_records_and_messages_are_made_the_fast_way() -> None:
    assert _shadow(Attempt) is not None and _shadow(TaskResult) is not None
    assert _shadow(RunTask) is not None and _shadow(TaskStarted) is not None
