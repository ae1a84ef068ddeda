"""What a checkpoint object knows of a namespace's batches, and reading records by key.

An :class:`Index` numbers the records of a namespace's batches, in ``id`` order, as
*slots* (a batch's records take the slots from its ``base`` on) and maps each key to the
slot of its latest record with a value (or of its latest record, if none has one). Per
slot it keeps the name, the time and whether there is a value, with the rules of records
applied: a key keeps the time of its first record and takes the name of its latest.
Building it costs C-speed dict operations per batch (a key recorded again costs a Python
step); values are not kept: each read decodes the batches it needs, so every caller gets
its own copies.

The index is brought up to date at each read that finds the file changed, in the read's
transaction: the batches above the last ``id`` read are added; after a ``clear`` (by any
object or process: the file's clear generation changed), it is built again.
"""

from __future__ import annotations

import bisect
import itertools
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

from ._checkpoint_batch import unpack_keys, unpack_times
from ._checkpoint_codec import EACH, Decoder, Undecodable, decode_many

__all__ = ["Index", "Indexes", "Plan", "found", "namespaces", "refresh"]

_GENERATION = "SELECT generation FROM clears"
_NEWER = (
    "SELECT id, name, recorded_at, times, codec, keys FROM records "
    "WHERE namespace = ? AND id > ? ORDER BY id"
)
_ALL_VALUES = (
    "SELECT id, codec, value FROM records "
    "WHERE namespace = ? AND id <= ? AND codec IS NOT NULL ORDER BY id"
)
_VALUES_OF = "SELECT id, codec, value FROM records WHERE id IN ({})"
_IDS_PER_SELECT = 500


_MIXED: Any = object()  # Index.name when slots have different names

BatchRow = tuple[int, str | None, float, bytes | None, str | None, bytes]


class Index:
    """One namespace's batches as this object last read them (module docstring)."""

    __slots__ = (
        "all_valued",
        "bases",
        "codecs",
        "generation",
        "has",
        "ids",
        "name",
        "names",
        "slot_of",
        "stamp",
        "times",
        "total",
    )

    def __init__(self) -> None:
        self.ids: list[int] = []  # the batches' ids, ascending
        self.bases: list[int] = []  # each batch's first slot
        self.codecs: list[str | None] = []  # each batch's codec (None: no values)
        self.slot_of: dict[str, int] = {}  # a key's latest record with a value
        self.names: list[str | None] = []  # by slot
        self.times: list[float] = []  # by slot (a key's latest slot: its first time)
        self.has: list[bool] = []  # by slot: has a value
        self.total = 0  # slots
        self.name: Any = _MIXED  # the name of every slot, if they have one
        self.all_valued = True  # every slot has a value
        self.stamp: tuple[int, int] = (-1, -1)  # see Indexes
        self.generation = -1  # the file's clears.generation when it was read

    @property
    def last_id(self) -> int:
        return self.ids[-1] if self.ids else 0

    def add(self, rows: list[BatchRow]) -> None:
        """Take in the batches of ``rows`` (in ``id`` order, newer than those taken in
        before): at C speed when none of their keys was seen before."""
        batches = [(row, unpack_keys(row[5])) for row in rows]
        every = list(itertools.chain.from_iterable(keys for _, keys in batches))
        new = dict(zip(every, range(self.total, self.total + len(every)), strict=True))
        if len(new) == len(every) and self.slot_of.keys().isdisjoint(new):
            for row, keys in batches:
                self._take(row, len(keys))
            if self.slot_of:
                self.slot_of.update(new)
            else:
                self.slot_of = new
            return
        for row, keys in batches:  # some keys were recorded again
            self._take_again(row, keys)

    def _take(self, row: BatchRow, n: int) -> None:
        """Take in a batch's slots (not its keys)."""
        batch_id, name, at, times, codec, _ = row
        if not self.ids:
            self.name = name
        elif name != self.name:
            self.name = _MIXED
        valued = codec is not None
        self.all_valued = self.all_valued and valued
        self.ids.append(batch_id)
        self.bases.append(self.total)
        self.codecs.append(codec)
        self.names += repeat(name, n)
        self.times += unpack_times(at, times, n)
        self.has += repeat(valued, n)
        self.total += n

    def _take_again(self, row: BatchRow, keys: list[str]) -> None:
        """Take in a batch some of whose keys were seen before (in it, or before it)."""
        base = self.total
        self._take(row, len(keys))
        name, valued = row[1], row[4] is not None
        slot_of, has, times, names = self.slot_of, self.has, self.times, self.names
        for slot, key in enumerate(keys, base):
            old = slot_of.get(key)
            if old is None:
                slot_of[key] = slot
            elif valued or not has[old]:
                slot_of[key] = slot
                times[slot] = times[old]  # the time of its first record
            elif names[old] != name:  # a record without a value keeps the stored one
                names[old] = name  # and takes the name
                self.name = _MIXED

    def batch_at(self, slot: int) -> int:
        """The position (in ``ids``) of the batch holding ``slot``."""
        return bisect.bisect_right(self.bases, slot) - 1

    def size(self, position: int) -> int:
        """How many records the batch at ``position`` holds."""
        end = self.bases[position + 1] if position + 1 < len(self.bases) else self.total
        return end - self.bases[position]


class Indexes:
    """A checkpoint object's indexes, by namespace, each up to date as of the ``stamp``
    it holds: the file's ``PRAGMA data_version`` (which changes when another connection
    commits) and how many commits this object has made. Used under the store's lock."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, Index] = {}
        self._writes = 0

    def wrote(self) -> None:
        """This object committed (records, or a clear)."""
        self._writes += 1

    def get(self, conn: sqlite3.Connection, namespace: str) -> Index:
        """The index of ``namespace``, up to date, inside the caller's transaction (the
        file is asked what changed only when something has)."""
        # a SELECT first: it starts the read snapshot (in a deferred transaction), so that
        # data_version says what that snapshot holds, not what it held a moment before
        (generation,) = conn.execute(_GENERATION).fetchone()
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        stamp = (version, self._writes)
        index = self._by_namespace.get(namespace)
        if index is None or index.stamp != stamp:
            index = refresh(conn, namespace, index, generation)
            index.stamp = stamp
            self._by_namespace[namespace] = index
        return index


def namespaces(conn: sqlite3.Connection) -> list[str]:
    """The namespaces that hold batches, sorted."""
    sql = "SELECT DISTINCT namespace FROM records ORDER BY namespace"
    return [row[0] for row in conn.execute(sql)]


def refresh(
    conn: sqlite3.Connection, namespace: str, index: Index | None, generation: int
) -> Index:
    """``index`` brought up to date with the file, whose clears are at ``generation`` (a
    new one after a clear: see :mod:`._checkpoint_schema`), in the caller's transaction."""
    if index is None or index.generation != generation:  # (batches went: read them all)
        index = Index()
        index.generation = generation
    rows = conn.execute(_NEWER, (namespace, index.last_id)).fetchall()
    if rows:
        index.add(rows)
    return index


class Plan:
    """The records of some keys in an index: what a read needs, taken from the index
    inside the read's transaction; the values are decoded after it (:func:`found`)."""

    __slots__ = ("has", "index", "keys", "name", "names", "rows", "slots", "times", "whole")

    def __init__(self, conn: sqlite3.Connection, namespace: str, index: Index, keys: list[str]):
        self.index = index
        self.rows: list[tuple[int, str, Any]] = []
        slots: list[Any] = list(map(index.slot_of.get, keys)) if index.slot_of else []
        missing = slots.count(None)
        if missing == len(slots):
            keys = slots = []
        elif missing:  # only those found
            pairs = [(k, s) for k, s in zip(keys, slots, strict=True) if s is not None]
            keys = [k for k, _ in pairs]
            slots = [s for _, s in pairs]
        self.keys = keys
        self.slots: list[int] = slots
        self.times = list(map(index.times.__getitem__, slots))
        # (the common case: one name for all, and a value for each)
        self.name = index.name
        self.names = None if self.name is not _MIXED else list(map(index.names.__getitem__, slots))
        self.has = None if index.all_valued else list(map(index.has.__getitem__, slots))
        # asked for a good part of the namespace: decode it all, else only the batches needed
        self.whole = len(slots) * 4 >= index.total
        if not slots or (self.has is not None and True not in self.has):
            return
        if self.whole:
            self.rows = conn.execute(_ALL_VALUES, (namespace, index.last_id)).fetchall()
            return
        has = index.has
        wanted = sorted({index.ids[index.batch_at(s)] for s in slots if has[s]})
        for start in range(0, len(wanted), _IDS_PER_SELECT):
            chunk = wanted[start : start + _IDS_PER_SELECT]
            sql = _VALUES_OF.format(",".join("?" * len(chunk)))
            self.rows += conn.execute(sql, chunk).fetchall()

    def columns(self) -> tuple[Iterable[str | None], Iterable[bool]]:
        """The found records' names and whether they have values, in order (once)."""
        n = len(self.slots)
        names = repeat(self.name, n) if self.names is None else self.names
        return names, repeat(True, n) if self.has is None else self.has


def found(
    plan: Plan, decoder: Decoder | None, on_error: Callable[[Exception, str], None]
) -> Iterator[tuple[str, tuple[Any, str | None, float, bool]]]:
    """``(key, (value, name, recorded_at, has_value))`` of the keys ``plan`` found, their
    values decoded; those whose value cannot be decoded are left out, ``on_error`` told
    (with the first of their keys, once per batch). Index lists are only appended to
    meanwhile (another read may add batches): what ``plan`` saw stays as it was."""
    index = plan.index
    decoded: dict[int, list[Any]] = {}  # batch position: values
    failed: dict[int, Exception] = {}
    for batch_id, codec, stored in plan.rows:
        i = bisect.bisect_left(index.ids, batch_id)
        try:
            decoded[i] = decode_many(codec, stored, index.size(i), decoder)
        except Exception as exc:
            failed[i] = exc
    slots = plan.slots
    names, has = plan.columns()
    if plan.whole:  # a list by slot: values picked at C speed
        by_slot: list[Any] = [None] * index.total
        for i, batch in decoded.items():
            base = index.bases[i]
            by_slot[base : base + len(batch)] = batch
        values = list(map(by_slot.__getitem__, slots))
    else:
        values = []
        for slot in slots:
            i = index.batch_at(slot)
            got = decoded.get(i)  # (None: a batch without values, or one that failed)
            values.append(None if got is None else got[slot - index.bases[i]])
    if failed or any(
        index.codecs[i] == EACH and Undecodable in set(map(type, batch))
        for i, batch in decoded.items()
    ):
        return _without_undecodable(plan, values, failed, on_error)
    return zip(plan.keys, zip(values, names, plan.times, has, strict=True), strict=True)


def _without_undecodable(
    plan: Plan,
    values: list[Any],
    failed: dict[int, Exception],
    on_error: Callable[[Exception, str], None],
) -> Iterator[tuple[str, tuple[Any, str | None, float, bool]]]:
    """:func:`found`'s records, leaving out (and telling ``on_error`` of) those whose
    value, or whose whole batch, cannot be decoded."""
    index = plan.index
    told: set[int] = set()
    names, has_values = plan.columns()
    for key, slot, value, name, at, has in zip(
        plan.keys, plan.slots, values, names, plan.times, has_values, strict=True
    ):
        if has:
            i = index.batch_at(slot)
            exc = failed.get(i)
            if exc is None and type(value) is Undecodable:
                exc = value.error
            if exc is not None:
                if i not in told:
                    told.add(i)
                    on_error(exc, key)
                continue
        yield key, (value, name, at, has)
