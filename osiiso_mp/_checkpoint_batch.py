"""What a checkpoint queues, and the rows the writer makes of it: one row per batch.

A :class:`Batch` is the records of one ``record_many`` (its values encoded together when
it was called: a snapshot); a :data:`Single` is one ``record`` (its value encoded when it
was called, unless it is of an immutable plain type, kept as it is: ``VALUE``). The
writer makes a row of each batch, and one of each run of consecutive singles of one
namespace and name (their values encoded together then), so that a thousand ``record``
calls cost SQLite one row, not a thousand.

Keys are packed into a row's ``keys`` as UTF-8 joined by NUL (readable, and split at C
speed), or, when a key holds a NUL, as a pickle of their list (which starts with byte
0x80, as no UTF-8 text does). Times: the batch's first, and NULL when all are equal or
else each record's offset from it (little-endian float64s).
"""

from __future__ import annotations

import pickle
import sys
from array import array
from collections.abc import Iterator
from typing import Any

from ._checkpoint_codec import JSON, VALUE, join_json, pack_each, pickle_many

__all__ = [
    "MAX_BATCH",
    "Batch",
    "Row",
    "Single",
    "pack_keys",
    "rows_of",
    "unpack_keys",
    "unpack_times",
]

MAX_BATCH = 8192
"""The most records a row holds: reading one record decodes its whole row."""

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
