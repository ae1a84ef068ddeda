"""How a checkpoint names inputs and stores values: keys, namespaces and value codecs.

- A *key* is the canonical JSON of an input (``sort_keys``, no spaces, tuples as lists), or
  what a ``key=`` callable returns for it (a ``str``).
- A *namespace* is the callable's module and qualified name (``"__main__.score"``); a lambda
  has no name that tells it from other lambdas, so it must be given one.
- The values of a *batch* of records (one row of the file) are stored together, with one
  of these codecs, whose name is kept on the row, so a file reads back whatever codec the
  reader was opened with:

  ``"pickle"``
      one pickle (protocol 5; cloudpickle when plain pickle cannot) of the list of values.
  ``"pickle+buffers"``
      the same with large buffers (numpy arrays, big ``bytes``) kept out of band: a header
      of little-endian lengths (``u32`` count, then ``u64`` each: the pickle's, then each
      buffer's), the pickle, the buffers. Each buffer is copied once, into the row.
  ``"json"``
      one JSON array of the values (tuples come back as lists).
  ``"each"``
      values encoded one by one (a custom ``encoder``'s, or a batch that could not be
      pickled whole, or records made one at a time): the ``"pickle+buffers"`` layout of
      ``(codecs, items)``, each item decoded on its own with its codec (``"pickle"``,
      ``"pickle+buffers"``, ``"json"``, ``"custom"``: what the user's ``encoder`` returned,
      given back to ``decoder``; ``"value"``: the item is the value), one codec for all
      items or one each.

  Values encoded together come back as one pickle does: two values that were one object
  when recorded are one object again, and the large buffers of a batch share one copy.
"""

from __future__ import annotations

import functools
import json
import pickle
import struct
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from ._runtime.protocol._buffers import INLINE_MIN
from ._runtime.protocol._serialize import collector

__all__ = [
    "BUFFER_MIN",
    "CUSTOM",
    "EACH",
    "JSON",
    "PICKLE",
    "PICKLE_BUFFERS",
    "VALUE",
    "Decoder",
    "Encoder",
    "Undecodable",
    "decode",
    "decode_many",
    "encode_json",
    "encode_one",
    "encode_pickle",
    "join_json",
    "json_many",
    "key_of",
    "namespace_of",
    "pack_each",
    "pickle_many",
]

PICKLE: Final = "pickle"
PICKLE_BUFFERS: Final = "pickle+buffers"
JSON: Final = "json"
CUSTOM: Final = "custom"
EACH: Final = "each"
VALUE: Final = "value"

BUFFER_MIN = INLINE_MIN
"""Buffers from this size are stored beside the pickle instead of copied into it (as they
travel beside it on the wire: the pickler's ``collector``)."""

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
    if type(value) is bytes and len(value) >= BUFFER_MIN:
        value = _LargeBytes(value)
    data, views = _dumps(value)
    if not views:
        return PICKLE, data
    return PICKLE_BUFFERS, _with_header(data, views)


def encode_one(value: Any) -> tuple[str, Any]:
    """:func:`encode_pickle`, but a value of an immutable plain type (``int``, ``str``...)
    is kept as it is (``VALUE``): it is pickled with its batch, and needs no snapshot."""
    if type(value) in _PLAIN:
        return VALUE, value
    return encode_pickle(value)


# -- batches of values ---------------------------------------------------------------------


def pickle_many(values: list[Any]) -> tuple[str, bytes]:
    """``(codec, stored)`` of a batch's values as one pickle of their list (large buffers
    out of band, as :func:`encode_pickle`); raises if it cannot be pickled whole."""
    data, views = _dumps(_large_bytes_apart(values))
    if not views:
        return PICKLE, data
    return PICKLE_BUFFERS, _with_header(data, views)


def json_many(values: list[Any]) -> tuple[str, str]:
    """``(codec, stored)`` of a batch's values as one JSON array; raises if one has no JSON."""
    return JSON, _VALUE_JSON.encode(values)


def join_json(texts: list[str]) -> tuple[str, str]:
    """``(codec, stored)`` of a batch whose values are JSON texts already."""
    return JSON, f"[{','.join(texts)}]"


def pack_each(codecs: str | list[str], items: list[Any]) -> tuple[str, bytes]:
    """``(EACH, stored)`` of a batch whose values were encoded one by one: ``items`` are
    their ``stored`` (the value itself for ``VALUE``), ``codecs`` their codecs (one for
    all, or one each); pickled together, large buffers out of band."""
    data, views = _dumps((codecs, _large_bytes_apart(items)))
    return EACH, _with_header(data, views)


class Undecodable:
    """In place of a value of a batch that cannot be decoded: why."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def decode_many(codec: str, stored: Any, n: int, decoder: Decoder | None) -> list[Any]:
    """The ``n`` values of a batch; one that cannot be decoded on its own (``EACH``) is an
    :class:`Undecodable`; raises if the batch cannot be decoded at all."""
    if codec == PICKLE:
        values = pickle.loads(stored)
    elif codec == PICKLE_BUFFERS:
        values = _loads_with_buffers(stored)
    elif codec == JSON:
        values = json.loads(stored)
    elif codec == EACH:
        codecs, items = _loads_with_buffers(stored)
        values = _decode_each(codecs, items, decoder)
    else:
        raise ValueError(
            f"unknown checkpoint value codec {codec!r} (written by a newer osiiso_mp?)"
        )
    if type(values) is not list or len(values) != n:
        raise ValueError(f"a batch of {n} values holds {type(values).__name__} instead")
    return values


def _decode_each(codecs: str | list[str], items: list[Any], decoder: Decoder | None) -> Any:
    """The values of an ``EACH`` batch."""
    if codecs == VALUE:
        return items
    if type(codecs) is str:
        codecs = [codecs] * len(items)
    values = []
    for codec, item in zip(codecs, items, strict=True):
        if codec == VALUE:
            values.append(item)
            continue
        try:
            values.append(decode(codec, item, decoder))
        except Exception as exc:
            values.append(Undecodable(exc))
    return values


def decode(codec: str, stored: Any, decoder: Decoder | None) -> Any:
    """The value one ``stored`` holds; raises if it cannot be read."""
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


def _dumps(value: Any) -> tuple[bytes, list[memoryview]]:
    """``value`` pickled (protocol 5; cloudpickle when plain pickle cannot), and the large
    buffers kept out of band; raises if neither can pickle it."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=collector(buffers))
    except Exception:
        import cloudpickle

        buffers.clear()
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=collector(buffers))
    return data, [buf.raw() for buf in buffers]


def _large_bytes_apart(values: list[Any]) -> list[Any]:
    """``values``, with each large ``bytes`` wrapped to be pickled out of band (pickle
    copies a ``bytes`` into the pickle, and asks no ``reducer_override`` about it)."""
    if bytes not in set(map(type, values)):  # (at C speed: 3 ms for 200,000 values)
        return values
    return [_LargeBytes(v) if type(v) is bytes and len(v) >= BUFFER_MIN else v for v in values]


def _with_header(data: bytes, views: list[memoryview]) -> bytes:
    """The ``pickle+buffers`` layout: lengths, the pickle, the buffers."""
    sizes = [len(data), *(view.nbytes for view in views)]
    header = struct.pack(f"<I{len(sizes)}Q", len(sizes), *sizes)
    return b"".join([header, data, *views])


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


class _LargeBytes:
    """A large ``bytes`` value, pickled as an out-of-band buffer that unpickles as bytes
    (pickle would copy it into the pickle first)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return bytes, (pickle.PickleBuffer(self.data),)
