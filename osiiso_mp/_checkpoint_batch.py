"""What a checkpoint queues, and the rows the writer makes of it: one row per batch.

A :class:`Batch` is records of one ``record_many`` (their values encoded together when
it was called: a snapshot); a :data:`Single` is one ``record`` (its value encoded when it
was called, unless it is of an immutable plain type, kept as it is: ``VALUE``), or one of
a ``record_many`` of a few pairs. The writer makes a row of each batch, and one of each
run of consecutive singles of one namespace and name (their values encoded together
then), so that a thousand ``record`` calls cost SQLite one row, not a thousand.

Reading a record decodes its whole row, so a row holds at most :data:`MAX_BATCH` records
and, unless it holds one, about :data:`ROW_BYTES` of values: a bigger ``record_many`` is
cut into several batches (:class:`Encoding`).

Keys are packed into a row's ``keys`` as UTF-8 joined by NUL (readable, and split at C
speed), or, when a key holds a NUL, as a pickle of their list (which starts with byte
0x80, as no UTF-8 text does). Times: the batch's first, and NULL when all are equal or
else each record's offset from it (little-endian float64s).
"""

from __future__ import annotations

import pickle
import sys
from array import array
from collections.abc import Callable, Iterator
from typing import Any, Literal

from ._checkpoint_codec import (
    CUSTOM,
    JSON,
    VALUE,
    Encoder,
    encode_json,
    encode_one,
    join_json,
    json_many,
    pack_each,
    pickle_many,
)

__all__ = [
    "MAX_BATCH",
    "ROW_BYTES",
    "Batch",
    "Encoding",
    "Row",
    "Single",
    "pack_keys",
    "rows_of",
    "unpack_keys",
    "unpack_times",
]

MAX_BATCH = 1024
"""The most records a row holds: reading one record decodes its whole row."""
ROW_BYTES = 1 << 20
"""About the most bytes of values a row of several records holds."""

# namespace, name, recorded_at (wall clock), codec (None: no value), value or stored, key
Single = tuple[str, str | None, float, str | None, Any, str]
# namespace, name, recorded_at, times, codec, keys, value: a row of the ``records`` table
Row = tuple[str, str | None, float, bytes | None, str | None, bytes, Any]

_LITTLE = sys.byteorder == "little"


class Batch:
    """The records of one ``record_many`` call (at most :data:`MAX_BATCH`), values
    encoded: ``codec`` None for records without values."""

    __slots__ = ("at", "codec", "keys", "name", "namespace", "stored")

    def __init__(
        self,
        namespace: str,
        name: str | None,
        at: float,
        keys: list[str],
        codec: str | None,
        stored: Any,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.at = at
        self.keys = keys
        self.codec = codec
        self.stored = stored

    def __len__(self) -> int:
        return len(self.keys)


class Encoding:
    """How a checkpoint encodes the values it records; ``failed(namespace, key, error)``
    is told of each value that cannot be stored (and is left out)."""

    def __init__(
        self,
        *,
        store_values: bool,
        serializer: Literal["pickle", "json"],
        encoder: Encoder | None,
        failed: Callable[[str, str, Exception], None],
    ) -> None:
        self._store_values = store_values
        self._failed = failed
        # how a value is encoded on its own, and a batch's values together
        self._one: Callable[[Any], tuple[str, Any]]
        self._many: Callable[[list[Any]], tuple[str, Any]] | None
        if encoder is not None:
            self._one, self._many = _custom(encoder), None
        elif serializer == "json":
            self._one, self._many = encode_json, json_many
        else:
            self._one, self._many = encode_one, pickle_many

    def single(
        self, namespace: str, name: str | None, at: float, key: str, value: Any
    ) -> Single | None:
        """The record of ``key``, its value encoded on its own (None if it cannot be)."""
        if not self._store_values:
            return (namespace, name, at, None, None, key)
        try:
            codec, stored = self._one(value)
        except Exception as exc:
            self._failed(namespace, key, exc)
            return None
        return (namespace, name, at, codec, stored, key)

    def batches(
        self, namespace: str, name: str | None, at: float, keys: list[str], values: list[Any]
    ) -> list[Batch]:
        """The batches of ``keys`` and ``values`` (at most :data:`MAX_BATCH` records and
        about :data:`ROW_BYTES` each; values that cannot be stored left out)."""
        out: list[Batch] = []
        for start in range(0, len(keys), MAX_BATCH):
            stop = start + MAX_BATCH
            self._cut(namespace, name, at, keys[start:stop], values[start:stop], out)
        return out

    def _cut(
        self,
        namespace: str,
        name: str | None,
        at: float,
        keys: list[str],
        values: list[Any],
        out: list[Batch],
    ) -> None:
        """Append the batch of ``keys`` and ``values``, encoded together, to ``out``; when
        they cannot be (a value cannot be stored, a custom encoder) or make too big a row,
        encode them one by one instead (leaving out those that cannot be stored), in
        batches of about :data:`ROW_BYTES` (one for a bigger value)."""
        batch = self._together(namespace, name, at, keys, values)
        if batch is not None and (
            batch.stored is None or len(batch.stored) <= ROW_BYTES or len(keys) == 1
        ):
            out.append(batch)
            return
        part: list[tuple[str, str, Any]] = []
        size = 0
        for key, value in zip(keys, values, strict=True):
            try:
                codec, stored = self._one(value)
            except Exception as exc:
                self._failed(namespace, key, exc)
                continue
            more = len(stored) if type(stored) is bytes or type(stored) is str else 16
            if part and size + more > ROW_BYTES:
                out.append(self._each(namespace, name, at, part))
                part, size = [], 0
            part.append((key, codec, stored))
            size += more
        if part:
            out.append(self._each(namespace, name, at, part))

    def _together(
        self, namespace: str, name: str | None, at: float, keys: list[str], values: list[Any]
    ) -> Batch | None:
        """The batch of ``keys`` and ``values`` encoded together; None if they cannot be."""
        if not self._store_values:
            return Batch(namespace, name, at, keys, None, None)
        if self._many is None:
            return None
        try:
            codec, stored = self._many(values)
        except Exception:
            return None  # one value or more cannot be stored: which ones? (one by one)
        return Batch(namespace, name, at, keys, codec, stored)

    def _each(
        self, namespace: str, name: str | None, at: float, part: list[tuple[str, str, Any]]
    ) -> Batch:
        """The batch of values encoded one by one: ``(key, codec, stored)``."""
        keys = [key for key, _, _ in part]
        items = [stored for _, _, stored in part]
        if self._many is json_many:
            return Batch(namespace, name, at, keys, *join_json(items))
        codecs = CUSTOM if self._many is None else [codec for _, codec, _ in part]
        return Batch(namespace, name, at, keys, *pack_each(codecs, items))


def _custom(encoder: Encoder) -> Callable[[Any], tuple[str, Any]]:
    """The codec function of a user's ``encoder``: it must return ``bytes`` or ``str``."""

    def encode(value: Any) -> tuple[str, Any]:
        stored = encoder(value)
        if type(stored) is bytes or type(stored) is str:
            return CUSTOM, stored
        if isinstance(stored, str):
            return CUSTOM, str.__str__(stored)
        if not isinstance(stored, bytes | bytearray | memoryview):
            raise TypeError(f"the encoder returned {type(stored).__name__}, not bytes or str")
        return CUSTOM, bytes(stored)

    return encode


def rows_of(pending: list[Batch | Single]) -> list[Row]:
    """The rows of ``pending``, in order: a row per batch, and per run of singles."""
    return list(_rows(pending))


def _rows(pending: list[Batch | Single]) -> Iterator[Row]:
    run: list[Single] = []
    for entry in pending:
        if type(entry) is Batch:
            if run:
                yield from _rows_of_singles(run)
                run = []
            yield (
                entry.namespace,
                entry.name,
                entry.at,
                None,
                entry.codec,
                pack_keys(entry.keys),
                entry.stored,
            )
        else:
            assert type(entry) is tuple
            run.append(entry)
    if run:
        yield from _rows_of_singles(run)


def _rows_of_singles(run: list[Single]) -> Iterator[Row]:
    """A row per stretch of ``run`` of one namespace, name and kind (with or without
    values), of at most :data:`MAX_BATCH` records."""
    start = 0
    while start < len(run):
        namespace, name, _, codec, _, _ = run[start]
        valued = codec is not None
        stop = start + 1
        limit = min(len(run), start + MAX_BATCH)
        while stop < limit:
            other = run[stop]
            if other[0] != namespace or other[1] != name or (other[3] is not None) != valued:
                break
            stop += 1
        yield _row_of_singles(run[start:stop])
        start = stop


def _row_of_singles(singles: list[Single]) -> Row:
    """The row of singles of one namespace, name and kind."""
    namespace, name, first, _, _, _ = singles[0]
    keys = [s[5] for s in singles]
    ats = [s[2] for s in singles]
    times = None
    if ats.count(first) != len(ats):
        offsets = array("d", [at - first for at in ats])
        if not _LITTLE:
            offsets.byteswap()
        times = offsets.tobytes()
    codecs = [s[3] for s in singles]
    items = [s[4] for s in singles]
    kinds = set(codecs)
    codec: str | None
    stored: Any
    if kinds == {None}:
        codec, stored = None, None
    elif kinds == {VALUE}:  # immutable plain values, pickled together now
        codec, stored = pickle_many(items)
    elif kinds == {JSON}:
        codec, stored = join_json(items)
    else:
        codec, stored = pack_each(codecs[0] if len(kinds) == 1 else codecs, items)  # type: ignore[arg-type]
    return namespace, name, first, times, codec, pack_keys(keys), stored


def pack_keys(keys: list[str]) -> bytes:
    """The ``keys`` column of a batch of ``keys`` (module docstring)."""
    joined = "\0".join(keys)
    if joined.count("\0") == len(keys) - 1:  # no key holds a NUL
        return joined.encode("utf-8", "surrogatepass")
    return pickle.dumps(keys, protocol=5)


def unpack_keys(packed: bytes) -> list[str]:
    """The keys :func:`pack_keys` packed."""
    if packed[:1] == b"\x80":
        keys = pickle.loads(packed)
        if type(keys) is not list:
            raise ValueError(f"a batch's keys are a {type(keys).__name__}, not a list")
        return keys
    return packed.decode("utf-8", "surrogatepass").split("\0")


def unpack_times(first: float, times: bytes | None, n: int) -> list[float]:
    """Each of ``n`` records' time: ``first``, plus its offset when ``times`` has them."""
    if times is None:
        return [first] * n
    offsets = array("d")
    offsets.frombytes(times)
    if not _LITTLE:
        offsets.byteswap()
    if len(offsets) != n:
        raise ValueError(f"a batch of {n} records has {len(offsets)} times")
    return [first + offset for offset in offsets]
