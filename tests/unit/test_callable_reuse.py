"""A large callable pickled once per map or group (``CallableReuse``), and the warning that
names it (``check_size``), without processes: payloads are made and read back here."""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

import pytest

from osiiso_mp import LargeCallableWarning
from osiiso_mp._callables import WARN_BYTES, CallableReuse, check_size
from osiiso_mp._runtime.protocol._buffers import SharedBuffer, release
from osiiso_mp._runtime.protocol._by_value import PickledCallable
from osiiso_mp._runtime.protocol._serialize import Packed, dumps_task

PICKLED: list[int] = [0]  # how many times a Counted was pickled


class Counted:
    """Data that counts how many times it is pickled (in this process)."""

    def __init__(self, size: int) -> None:
        self.data = b"x" * size

    def __reduce__(self) -> Any:
        PICKLED[0] += 1
        return (Counted._rebuild, (self.data,))

    @staticmethod
    def _rebuild(data: bytes) -> Counted:
        out = Counted(0)
        out.data = data
        return out


def _closure(size: int) -> Any:
    held = Counted(size)
    return lambda i: len(held.data) + i


def _load(packed: Packed) -> tuple[Any, Any, Any]:
    """What a worker unpickles from ``packed`` (a shared buffer read from its file)."""
    payload, buffers = packed
    views = [
        os.pread(b.fileno(), b.nbytes, 0) if type(b) is SharedBuffer else memoryview(b)
        for b in buffers
    ]
    data = (
        os.pread(payload.fileno(), payload.nbytes, 0) if type(payload) is SharedBuffer else payload
    )
    loaded: tuple[Any, Any, Any] = pickle.loads(memoryview(data), buffers=views)
    return loaded


def test_a_large_callable_is_pickled_once_after_its_first_payload() -> None:
    fn = _closure(200_000)
    reuse = CallableReuse()
    PICKLED[0] = 0
    packs = [reuse.dumps(fn, ((i,),), {}, shared=False) for i in range(5)]
    try:
        assert PICKLED[0] == 2  # the first payload, then the callable alone, once
        pickled = reuse.pickled(fn)
        assert isinstance(pickled, PickledCallable) and pickled.size > 200_000
        for i, packed in enumerate(packs):
            loaded, items, _ = _load(packed)
            assert loaded(*items[0]) == 200_000 + i
        later, buffers = packs[-1]
        assert len(memoryview(later)) < 1000 and len(buffers) == 1  # beside the payload
    finally:
        for payload, buffers in packs:
            release((payload, *buffers))


def test_small_callables_and_large_arguments_are_pickled_as_before() -> None:
    small = _closure(10)
    big_args = (b"y" * (1 << 20),)
    reuse = CallableReuse()
    for fn, args in ((small, (1,)), (len, big_args)):
        for _ in range(3):
            payload, buffers = reuse.dumps(fn, args, {}, shared=False)
            release((payload, *buffers))
        assert reuse.pickled(fn) is None
    other = _closure(200_000)  # never met: nothing pickled for it
    assert reuse.pickled(other) is None


def test_the_warning_names_the_callable_its_size_and_the_remedy_once() -> None:
    fn = _closure(WARN_BYTES + 1000)
    packs = [dumps_task(fn, (1,), {}, shared=False) for _ in range(2)]
    try:
        with pytest.warns(LargeCallableWarning) as caught:
            check_size(fn, *packs[0])
            check_size(fn, *packs[1])  # once per callable
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "_closure.<locals>.<lambda>" in message and "MiB" in message
        assert "initializer" in message and "argument" in message
        assert __file__ in message  # where it is defined
        assert caught[0].filename == __file__  # the caller's line, not the library's
    finally:
        for payload, buffers in packs:
            release((payload, *buffers))


def test_a_small_callable_with_large_arguments_is_not_warned_about() -> None:
    fn = _closure(10)
    payload, buffers = dumps_task(fn, (b"z" * (2 << 20),), {}, shared=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_size(fn, payload, buffers)
    finally:
        release((payload, *buffers))
