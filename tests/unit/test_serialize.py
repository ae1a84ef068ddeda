"""Task payloads: the plain-pickle fast path makes exactly what cloudpickle would."""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

import cloudpickle
import pytest

from osiiso_mp._bench import noop
from osiiso_mp._runtime.protocol import _serialize
from osiiso_mp._runtime.protocol._buffers import SharedBuffer, release, shared_supported
from osiiso_mp._runtime.protocol._serialize import _plain_call, dumps_task


def _cloud(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    data: bytes = cloudpickle.dumps((fn, args, kwargs), protocol=5)
    return data


@pytest.mark.parametrize(
    ("fn", "args", "kwargs"),
    [
        (noop, (), {}),
        (noop, (1, 2.5, "s", b"b", True, None), {"k": 3}),
        (abs, (-3,), {}),
        (pickle.dumps, (b"x" * 1000,), {}),
    ],
)
def test_plain_calls_take_the_fast_path_with_the_same_bytes(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert _plain_call(fn, args, kwargs)
    plain, buffers = dumps_task(fn, args, kwargs, out_of_band=False)
    assert buffers == () and plain == _cloud(fn, args, kwargs)
    payload, buffers = dumps_task(fn, args, kwargs)
    assert buffers == () and bytes(memoryview(payload)) == plain
    assert pickle.loads(memoryview(payload)) == (fn, args, kwargs)


def test_large_bytes_arguments_travel_beside_the_pickle_and_unpickle_as_bytes() -> None:
    # pickle would copy large bytes into the pickle: on the fast path they go out of band
    # (copied once, into what travels), positional or keyword, and come back as bytes
    big, mid = b"x" * (2 << 20), b"y" * 100_000
    payload, buffers = dumps_task(pickle.dumps, (big, 1), {"protocol": 5, "data": mid})
    try:
        assert len(bytes(memoryview(payload))) < 1000  # the pickle holds neither
        assert len(buffers) == 2
        assert type(buffers[0]) is SharedBuffer or not shared_supported()  # 2 MiB: shared
        views = [_as_view(b) for b in buffers]
        fn, args, kwargs = pickle.loads(memoryview(payload), buffers=views)
        assert fn is pickle.dumps and args == (big, 1) and kwargs == {"protocol": 5, "data": mid}
        assert type(args[0]) is bytes and type(kwargs["data"]) is bytes
    finally:
        release((payload, *buffers))
    # without out-of-band buffers (the initializer's frame) it all stays in the pickle
    plain, none = dumps_task(pickle.dumps, (big,), {}, out_of_band=False)
    assert none == () and plain == _cloud(pickle.dumps, (big,), {})


def _as_view(blob: Any) -> Any:
    """What the receiver gets for a blob: its bytes (a shared one read from its file)."""
    if type(blob) is SharedBuffer:
        return os.pread(blob.fileno(), blob.nbytes, 0)
    return memoryview(blob)


def test_what_cloudpickle_must_handle_does_not_take_the_fast_path() -> None:
    k = 2

    def closure(x: int) -> int:
        return x * k

    assert not _plain_call(lambda: 1, (), {})
    assert not _plain_call(closure, (1,), {})
    assert not _plain_call(noop, ([1, 2],), {})  # a list: not a plain argument type
    assert not _plain_call(noop, (), {"k": (1,)})
    assert not _plain_call(sys, (), {})  # a module
    fn, args, _ = pickle.loads(dumps_task(closure, (4,), {})[0])
    assert fn(*args) == 8


def test_a_function_no_longer_where_its_module_says_falls_back() -> None:
    # the cache says "by reference", but the module now holds another object under the
    # name: plain pickle refuses, and cloudpickle pickles it by value instead
    def moved(x: int) -> int:
        return x + 1

    moved.__module__ = noop.__module__
    moved.__qualname__ = "noop"
    _serialize._BY_REFERENCE[id(moved)] = moved
    try:
        fn, args, _ = pickle.loads(dumps_task(moved, (1,), {})[0])
        assert fn(*args) == 2
    finally:
        del _serialize._BY_REFERENCE[id(moved)]


def test_the_first_branch_for_a_known_callable_keeps_every_rule() -> None:
    # once a callable is known to pickle by reference, small plain calls skip the general
    # path: the same bytes; large bytes still travel out of band, a large pickle beside
    # the frame, and other arguments still take the general path
    dumps_task(noop, (), {})
    assert _serialize._BY_REFERENCE.get(id(noop)) is noop
    for args, kwargs in [((), {}), ((1, "s", b"b", None), {"k": 2.5})]:
        payload, buffers = dumps_task(noop, args, kwargs)
        assert type(payload) is bytes and buffers == ()
        assert payload == _cloud(noop, args, kwargs)
    big = b"x" * (1 << 16)
    payload, buffers = dumps_task(noop, (big,), {})
    try:
        assert len(buffers) == 1 and len(bytes(memoryview(payload))) < 1000
        _, args, _ = pickle.loads(memoryview(payload), buffers=[_as_view(b) for b in buffers])
        assert args == (big,) and type(args[0]) is bytes
    finally:
        release((payload, *buffers))
    text = "t" * (1 << 17)  # a plain argument, but a pickle too large to stay in the frame
    payload, buffers = dumps_task(noop, (), {"text": text})
    try:
        assert type(payload) is not bytes and buffers == ()
        assert pickle.loads(_as_view(payload)) == (noop, (), {"text": text})
    finally:
        release((payload, *buffers))
    plain, none = dumps_task(noop, (), {"text": text}, out_of_band=False)
    assert type(plain) is bytes and none == () and plain == _cloud(noop, (), {"text": text})
    payload, _ = dumps_task(noop, ([1],), {})
    assert pickle.loads(memoryview(payload)) == (noop, ([1],), {})
