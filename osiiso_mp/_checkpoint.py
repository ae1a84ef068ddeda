"""``Checkpoint``: a SQLite file that remembers which inputs of a batch are done, and their
values, so that a batch run again after a crash or an interrupt runs only the rest.

Records are kept by ``(namespace, key)``: the namespace names the function (see
:func:`namespace_of`), the key the input (see :func:`key_of`). The file holds a row per
*batch* of records (a ``record_many``'s, or records made one by one and joined up by the
writer), keys packed and values encoded together: :mod:`._checkpoint_schema` (the
layout), :mod:`._checkpoint_batch` (batches), :mod:`._checkpoint_codec` (values),
:mod:`._checkpoint_db` (the connection and the batched writer), :mod:`._checkpoint_index`
(reading records by key).

What is guaranteed:

- ``record`` does no I/O: it encodes the value (a snapshot: a later change to the object is
  not seen; a value of an immutable plain type needs none, and is encoded with its batch)
  and queues the record. A background writer commits queued records in one transaction
  when ``batch_rows`` are queued or the oldest has waited ``batch_seconds``.
- A record is durable, surviving the death of the process (SIGKILL included), once
  :meth:`Checkpoint.flush` has returned after it, or :meth:`Checkpoint.close` has. A killed
  process loses at most the records it had not committed; the file always opens.
- Reads (``is_done``, ``lookup``, ``count``...) first commit this object's queued records,
  so an object always sees its own records.
- A record keeps the time it was first recorded; recording its key again replaces the value
  (unless the new record has none) and the name: of a key's records, the latest batch's
  (and, in a batch, the latest) wins.
- Reads see what other objects and processes have committed: each read brings this
  object's index of the namespace up to date (cheaply when nothing changed). Reading a
  record decodes its whole batch (at most 1,024 records, about 1 MiB of values): values
  recorded together come back as one unpickling gives them (two that were one object are
  one again), and a batch that cannot be unpickled any more is left out whole.
- Several threads may share one object; several objects, in one process or several, may
  share one file (SQLite WAL; a writer waits up to ``timeout`` seconds for another).
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from types import TracebackType
from typing import Any, Literal

from ._checkpoint_batch import Encoding
from ._checkpoint_codec import Decoder, Encoder, key_of, namespace_of
from ._checkpoint_db import Entry, Store
from ._checkpoint_index import found
from ._checkpoint_schema import CheckpointError

__all__ = ["DEFAULT_NAMESPACE", "Checkpoint", "CheckpointError", "CheckpointRecord"]

log = logging.getLogger("osiiso_mp")

# record_many of fewer pairs queues them one by one (as record does), for the writer to
# join them up with their neighbours: a map of chunks of one item is not a row per item
_FEW = 16

DEFAULT_NAMESPACE = "default"
"""The namespace of the methods that take one, when none is given."""


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """What a checkpoint holds for one input."""

    value: Any
    """The stored value (``None`` when the record has none: ``store_values=False``)."""
    name: str | None
    """The name it was recorded with (the task's name)."""
    recorded_at: float
    """When it was first recorded: wall-clock seconds since the epoch (``time.time()``)."""
    has_value: bool
    """Whether a value was stored with it."""


class Checkpoint:
    """A SQLite file remembering finished inputs and their values (``":memory:"``: none).

    ``store_values=False`` records only that an input is done. Values are pickled (protocol
    5, large buffers stored compactly) unless ``serializer="json"``; ``encoder`` (value to
    ``bytes`` or ``str``) and ``decoder`` (back), given together, override both.

    :meth:`record` only queues; a writer thread commits the queue in one transaction when
    ``batch_rows`` records wait or the oldest has waited ``batch_seconds``. A record is
    durable (it survives the process being killed) once :meth:`flush` has returned after
    it, or :meth:`close` has. ``timeout`` is how long a write waits for another writer of
    the file. Threads may share a checkpoint, and checkpoints (in one process or several)
    a file. A checkpoint belongs to the process that opened it: a forked child opens its
    own.
    """

    @staticmethod
    def key_of(item: Any, key: Callable[[Any], str] | None = None) -> str:
        """The key ``map``, ``group`` and ``pmap`` record ``item`` under: its canonical JSON
        (sorted keys, no spaces, tuples as lists), or ``key(item)``, which must be a
        ``str``. ``TypeError`` for an item with no JSON and no ``key``."""
        return key_of(item, key)

    @staticmethod
    def namespace_of(fn: Callable[..., Any], namespace: str | None = None) -> str:
        """The namespace ``map``, ``group`` and ``pmap`` record ``fn``'s inputs in: its
        module and qualified name (``"__main__.score"``; a partial's function's, a callable
        object's class's), or ``namespace``. ``TypeError`` for a lambda without one."""
        return namespace_of(fn, namespace)

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        store_values: bool = True,
        serializer: Literal["pickle", "json"] = "pickle",
        encoder: Encoder | None = None,
        decoder: Decoder | None = None,
        batch_rows: int = 4096,
        batch_seconds: float = 1.0,
        timeout: float = 30.0,
    ) -> None:
        if serializer not in ("pickle", "json"):
            raise ValueError(f"serializer must be 'pickle' or 'json', not {serializer!r}")
        if (encoder is None) != (decoder is None):
            raise ValueError("encoder and decoder go together: give both or neither")
        if type(batch_rows) is not int or batch_rows < 1:
            raise ValueError(f"batch_rows must be an int of 1 or more, not {batch_rows!r}")
        if not batch_seconds > 0 or not timeout >= 0:
            raise ValueError(
                f"batch_seconds must be above 0 and timeout 0 or more "
                f"(got {batch_seconds!r} and {timeout!r})"
            )
        self._path = os.fspath(path)
        self._store_values = bool(store_values)
        self._serializer = serializer
        self._decoder = decoder
        # (not a method of self: the encoding would hold self in a cycle, and a dropped
        # checkpoint would commit its queue at the next collection instead of at once)
        self._warnings = _Warnings(self._path)
        self._encoding = Encoding(
            store_values=self._store_values,
            serializer=serializer,
            encoder=encoder,
            failed=self._warnings.cannot_store,
        )
        self._store = Store(
            self._path, timeout=timeout, batch_rows=batch_rows, batch_seconds=batch_seconds
        )
        # Commits what is queued if the object is dropped unclosed, or at interpreter exit.
        self._finalizer = weakref.finalize(self, _close_quietly, self._store)

    # -- writing -----------------------------------------------------------------------

    def record(
        self,
        key: str,
        value: Any = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        name: str | None = None,
    ) -> bool:
        """Queue the record that the input ``key`` is done with ``value``; no I/O.

        Returns False, recording nothing, when the value cannot be encoded: a warning is
        logged (once per namespace) and the input runs again next time. Durable once
        :meth:`flush` returns (or the checkpoint is closed).
        """
        if type(key) is not str or type(namespace) is not str:
            _refuse(key, namespace)
        single = self._encoding.single(namespace, name, time.time(), key, value)
        if single is None:
            return False
        self._store.append(single)
        return True

    def record_many(
        self,
        rows: Iterable[tuple[str, Any]],
        namespace: str = DEFAULT_NAMESPACE,
        *,
        name: str | None = None,
        flush: bool = True,
    ) -> int:
        """Record ``(key, value)`` pairs; how many were recorded (unencodable values are
        not, as in :meth:`record`).

        Their values are encoded together, now (a snapshot), and stored as one batch: a
        row of the file (several of at most 1,024 records and about 1 MiB of values each,
        for more; fewer than 16 pairs are queued one by one, as :meth:`record` queues, and
        joined up with their neighbours). With ``flush=True`` they are committed, with
        anything queued, in one transaction before it returns; with ``flush=False`` they
        are queued.
        """
        if type(namespace) is not str:
            _refuse("", namespace)
        pairs = rows if type(rows) is list else list(rows)
        try:
            sizes = set(map(len, pairs))
        except TypeError:  # pairs that are iterables, not sequences
            pairs = [tuple(pair) for pair in pairs]
            sizes = set(map(len, pairs))
        if pairs and sizes != {2}:
            raise ValueError("record_many takes (key, value) pairs")
        keys: list[str] = list(map(itemgetter(0), pairs))
        if keys and set(map(type, keys)) != {str}:
            _refuse(next(k for k in keys if type(k) is not str), namespace)
        values: list[Any] = list(map(itemgetter(1), pairs))
        now = time.time()
        entries: list[Entry]
        if len(keys) < _FEW:  # queued as records one by one: the writer joins them up
            single = self._encoding.single
            made = (single(namespace, name, now, k, v) for k, v in zip(keys, values, strict=True))
            entries = [entry for entry in made if entry is not None]
            recorded = len(entries)
        else:
            entries = list(self._encoding.batches(namespace, name, now, keys, values))
            recorded = sum(map(len, entries))
        if flush:
            self._store.write(entries)
        else:
            self._store.extend(entries, recorded)
        return recorded

    def flush(self) -> None:
        """Commit every queued record now. When it returns, every record made before the
        call is durable. Costs a lock when nothing is queued."""
        self._store.flush()

    # -- reading -----------------------------------------------------------------------

    def is_done(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> bool:
        """Is the input ``key`` recorded in ``namespace``?"""
        return key in self._store.keys_held(namespace)[namespace]

    def lookup(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> CheckpointRecord | None:
        """The record of the input ``key`` in ``namespace``, or None.

        None also for a record whose value cannot be decoded any more (a class that is
        gone, say): a warning is logged (once per namespace) and its input runs again.
        """
        return self.lookup_many((key,), namespace).get(key)

    def lookup_many(
        self, keys: Iterable[str], namespace: str = DEFAULT_NAMESPACE
    ) -> dict[str, CheckpointRecord]:
        """The records of those of ``keys`` that ``namespace`` holds, by key (one read of
        the batches holding them, each decoded whole; records whose value cannot be decoded
        are left out, as in :meth:`lookup`)."""
        return {
            key: CheckpointRecord(value, name, recorded_at, has_value)
            for key, (value, name, recorded_at, has_value) in self._found(keys, namespace)
        }

    def _found(
        self, keys: Iterable[str], namespace: str
    ) -> Iterator[tuple[str, tuple[Any, str | None, float, bool]]]:
        """``(key, (value, name, recorded_at, has_value))`` of those of ``keys`` found,
        decoded (what :meth:`lookup_many` and a resumed map read, without the records)."""
        plan = self._store.plan(namespace, list(keys))

        def cannot_read(exc: Exception, key: str) -> None:
            self._warnings.once(
                "read",
                namespace,
                "a value of namespace %r cannot be read back (%s: %s; key %.80s): its "
                "input is treated as not done and runs again (further such values of "
                "this namespace are not logged)",
                namespace,
                type(exc).__name__,
                exc,
                key,
            )

        return found(plan, self._decoder, cannot_read)

    def count(self, namespace: str | None = None) -> int:
        """How many inputs are recorded in ``namespace`` (in all: None)."""
        return sum(map(len, self._store.keys_held(namespace).values()))

    def namespaces(self) -> list[str]:
        """The namespaces that hold records, sorted."""
        return self._store.namespaces()

    def clear(self, namespace: str | None = None) -> int:
        """Forget the records of ``namespace`` (of all namespaces: None); how many went."""
        return self._store.delete(namespace)

    # -- lifetime ----------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The file's path (``":memory:"`` for a checkpoint in memory)."""
        return self._path

    @property
    def closed(self) -> bool:
        """Has :meth:`close` been called?"""
        return self._store.closed

    def close(self) -> None:
        """Commit what is queued, stop the writer thread and close the file (idempotent)."""
        self._finalizer.detach()
        self._store.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        how = "custom codec" if self._decoder is not None else f"serializer={self._serializer!r}"
        values = how if self._store_values else "store_values=False"
        state = ", closed" if self.closed else ""
        return f"Checkpoint({self._path!r}, {values}{state})"


class _Warnings:
    """A checkpoint's warnings: each kind logged once per namespace."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.given: set[tuple[str, str]] = set()  # (what failed, namespace)

    def once(self, what: str, namespace: str, message: str, *args: object) -> None:
        """Log ``message`` as a warning unless one was logged for ``what`` in ``namespace``."""
        if (what, namespace) in self.given:
            return
        self.given.add((what, namespace))
        log.warning("checkpoint %r: " + message, self.path, *args)

    def cannot_store(self, namespace: str, key: str, exc: Exception) -> None:
        """Log (once per namespace) that a value of ``key`` cannot be stored."""
        self.once(
            "store",
            namespace,
            "a value of namespace %r cannot be stored (%s: %s; key %.80s): its input is "
            "not recorded and runs again next time (further such values of this "
            "namespace are not logged)",
            namespace,
            type(exc).__name__,
            exc,
            key,
        )


def _refuse(key: object, namespace: object) -> None:
    """Raise the :class:`TypeError` for a key or a namespace that is not a str."""
    if type(namespace) is not str:
        raise TypeError(f"a checkpoint namespace is a str, not {namespace!r:.80}")
    raise TypeError(f"a checkpoint key is a str (see Checkpoint.key_of), not {key!r:.80}")


def _close_quietly(store: Store) -> None:
    """Close ``store`` for a checkpoint dropped unclosed (or at exit), logging a failure."""
    try:
        store.close()
    except Exception as exc:
        log.warning("checkpoint %r: closing failed (%s: %s)", store.path, type(exc).__name__, exc)
