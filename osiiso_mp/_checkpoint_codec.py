"""How a checkpoint names inputs and stores values: keys, namespaces and value codecs.

- A *key* is the canonical JSON of an input (``sort_keys``, no spaces, tuples as lists), or
  what a ``key=`` callable returns for it (a ``str``).
- A *namespace* is the callable's module and qualified name (``"__main__.score"``); a lambda
  has no name that tells it from other lambdas, so it must be given one.
- A *value* is stored with one of these codecs, whose name is kept on the row, so a file
  reads back whatever codec the reader was opened with:

  ``"pickle"``
      pickle protocol 5 (cloudpickle when plain pickle cannot, as for task values).
  ``"pickle+buffers"``
      the same with large buffers (numpy arrays, big ``bytes``) kept out of band: a header
      of little-endian lengths (``u32`` count, then ``u64`` each: the pickle's, then each
      buffer's), the pickle, the buffers. Each buffer is copied once, into the row.
  ``"json"``
      ``json.dumps`` text (tuples come back as lists).
  ``"custom"``
      what the user's ``encoder`` returned (``bytes`` or ``str``), given back to ``decoder``.
"""

from __future__ import annotations

import functools
import json
import pickle
import struct
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, Final

__all__ = [
    "BUFFER_MIN",
    "CUSTOM",
    "JSON",
    "PICKLE",
    "PICKLE_BUFFERS",
    "Decoder",
    "Encoder",
    "decode",
    "encode_json",
    "encode_pickle",
    "key_of",
    "namespace_of",
]

PICKLE: Final = "pickle"
PICKLE_BUFFERS: Final = "pickle+buffers"
JSON: Final = "json"
CUSTOM: Final = "custom"

BUFFER_MIN = 1 << 16
"""Buffers from this size are stored beside the pickle instead of copied into it."""

Encoder = Callable[[Any], bytes | str]
Decoder = Callable[[Any], Any]

_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_json_str = encode_basestring_ascii  # the C function, as JSONEncoder with ensure_ascii uses
_VALUE_JSON = json.JSONEncoder(separators=(",", ":"))
_PLAIN = frozenset({int, float, str, bool, type(None)})  # pickle has no buffers for these


def key_of(item: Any, key: Callable[[Any], str] | None = None) -> str:
    """The checkpoint key of an input: ``key(item)`` when given, else its canonical JSON.

    Raises :class:`TypeError` when ``item`` is not JSON-serializable (and no ``key`` is
    given), or when ``key`` returns something other than a ``str``.
    """
    if key is not None:
        found = key(item)
        if not isinstance(found, str):
            raise TypeError(
                f"a checkpoint key= callable must return a str; it returned "
                f"{type(found).__name__} {found!r:.80} for the input {item!r:.80}"
            )
        return found if type(found) is str else str.__str__(found)
    kind = type(item)
    if kind is str:
        return _json_str(item)  # what JSONEncoder.encode does, without its Python layers
    if kind is int:
        return int.__repr__(item)
    try:
        return _KEY_JSON.encode(item)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"a checkpoint knows an input by its JSON, and the input {item!r:.80} "
            f"({type(item).__name__}) has none ({exc}); pass key=, a callable that maps an "
            "input to a str that identifies it (for example key=lambda item: item.id)"
        ) from None


def namespace_of(fn: Callable[..., Any], namespace: str | None = None) -> str:
    """The namespace of ``fn``'s records: ``namespace`` when given, else ``fn``'s module and
    qualified name (``"__main__.score"``; a partial's function's; an object's type's).

    Raises :class:`TypeError` for a lambda without ``namespace`` (every lambda is called
    ``<lambda>``: two of them would read each other's values), and :class:`ValueError` for
    an empty ``namespace``.
    """
    if namespace is not None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"a checkpoint namespace must be a non-empty str, not {namespace!r}")
        return namespace
    while isinstance(fn, functools.partial):
        fn = fn.func
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str):
        fn = type(fn)
        qualname = fn.__qualname__
    if "<lambda>" in qualname:
        raise TypeError(
            f"a lambda ({qualname}) has no name that tells it from other lambdas from one run "
            "to the next, so its checkpoint records need one: pass namespace='...'"
        )
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if isinstance(module, str) else qualname


def encode_json(value: Any) -> tuple[str, str]:
    """``(codec, stored)`` for ``value`` as JSON text; raises if it has none."""
    return JSON, _VALUE_JSON.encode(value)


def encode_pickle(value: Any) -> tuple[str, bytes]:
    """``(codec, stored)`` for ``value`` pickled (protocol 5, large buffers out of band);
    raises if neither pickle nor cloudpickle can pickle it."""
    if type(value) in _PLAIN:
        return PICKLE, pickle.dumps(value, protocol=5)
    buffers: list[pickle.PickleBuffer] = []
    if type(value) is bytes and len(value) >= BUFFER_MIN:
        value = _LargeBytes(value)
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=_collector(buffers))
    except Exception:
        import cloudpickle

        buffers.clear()
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=_collector(buffers))
    if not buffers:
        return PICKLE, data
    views = [buf.raw() for buf in buffers]
    sizes = [len(data), *(view.nbytes for view in views)]
    header = struct.pack(f"<I{len(sizes)}Q", len(sizes), *sizes)
    return PICKLE_BUFFERS, b"".join([header, data, *views])


def decode(codec: str | None, stored: Any, decoder: Decoder | None) -> Any:
    """The value a row holds (``None`` for a row without one); raises if it cannot be read."""
    if codec is None:
        return None
    if codec == PICKLE:
        return pickle.loads(stored)
    if codec == PICKLE_BUFFERS:
        return _loads_with_buffers(stored)
    if codec == JSON:
        return json.loads(stored)
    if codec == CUSTOM:
        if decoder is None:
            raise ValueError(
                "this value was stored with a custom encoder: open the checkpoint with decoder="
            )
        return decoder(stored)
    raise ValueError(f"unknown checkpoint value codec {codec!r} (written by a newer osiiso_mp?)")


def _loads_with_buffers(stored: bytes) -> Any:
    """Unpickle a ``"pickle+buffers"`` row. Its bytes are copied once, into a bytearray that
    the buffers view, so that arrays come back writable (as the values of tasks do)."""
    (count,) = struct.unpack_from("<I", stored)
    sizes = struct.unpack_from(f"<{count}Q", stored, 4)
    view = memoryview(bytearray(stored))
    start = 4 + 8 * count
    parts = []
    for size in sizes:
        parts.append(view[start : start + size])
        start += size
    return pickle.loads(parts[0], buffers=parts[1:])


def _collector(into: list[pickle.PickleBuffer]) -> Callable[[pickle.PickleBuffer], bool]:
    """A ``buffer_callback`` keeping contiguous buffers of ``BUFFER_MIN`` bytes or more out
    of band (returning True keeps a buffer in the pickle)."""

    def in_band(buf: pickle.PickleBuffer) -> bool:
        try:
            if buf.raw().nbytes < BUFFER_MIN:
                return True
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        into.append(buf)
        return False

    return in_band


class _LargeBytes:
    """A large ``bytes`` value, pickled as an out-of-band buffer that unpickles as bytes
    (pickle would copy it into the pickle first)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return bytes, (pickle.PickleBuffer(self.data),)
