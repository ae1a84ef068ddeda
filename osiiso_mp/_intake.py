"""How a call becomes a task: its id, its names, and whether it is a coroutine function.

Pure helpers for the facades' submit path (a hot path: each costs well under a
microsecond for a plain function).
"""

from __future__ import annotations

import _random
import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

__all__ = ["callable_name", "estimate_key", "is_async", "new_task_id"]

# seeded from os.urandom once; the C class, since random.py costs start-up time
_getrandbits = _random.Random().getrandbits


# the uuid4 bits: version 4 and the RFC 4122 variant, set over 128 random bits
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_task_id() -> str:
    """A random uuid4 in hex, made without a syscall (``uuid.uuid4()`` reads os.urandom)."""
    # to_bytes().hex(): a third of the time of f"{n:032x}" (the same 32 digits)
    return (_getrandbits(128) & _UUID4_CLEAR | _UUID4_SET).to_bytes(16, "big").hex()


def callable_name(fn: Callable[..., Any]) -> str:
    """``fn``'s qualified name (a partial's function's), or its type's."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__qualname__


def estimate_key(fn: Callable[..., Any], name: str) -> str:
    """What the supervisor's duration estimates know ``fn`` by: its name, or for a lambda
    its name and where it is defined (every lambda is called ``"<lambda>"``, and a quick
    one must not make a slow one look quick)."""
    if not name.endswith("<lambda>"):
        return name
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None:
        return name
    return f"{name} {code.co_filename}:{code.co_firstlineno}"


def is_async(fn: Callable[..., Any]) -> bool:
    """Is ``fn`` a coroutine function (or an object with an async ``__call__``)?"""
    if (
        type(fn) is types.FunctionType
        and not fn.__code__.co_flags & inspect.CO_COROUTINE
        and not hasattr(fn, "_is_coroutine_marker")  # inspect.markcoroutinefunction (3.12)
    ):
        return False  # the common case, without inspect's unwrapping (a hot path)
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)
