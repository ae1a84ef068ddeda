"""A ``map``'s, ``group``'s or ``pmap``'s checkpoint: which inputs are done already, and
recording the others as they succeed (see :class:`~._checkpoint.Checkpoint`).

Before anything is submitted, every input's key is worked out (``key_of``: a non-JSON
input without ``key=`` raises ``TypeError`` and nothing runs) and the checkpoint is asked
which are done, one lookup per batch of inputs. Runs of done inputs become
:class:`Restored` entries, in their place among the submitted ones, so that values come
back and records appear in ``run()``'s summary in input order; each restored input has a
``succeeded`` record with no attempt and the message ``"restored from checkpoint"``.

Each submitted entry (a task, or a map chunk of many items) is recorded once, by whoever
comes first: its done-callback on the supervisor thread, which only queues the rows (the
checkpoint's writer commits them off that thread), or the reader about to hand its values
to the caller, which then flushes: **a value handed to the caller is durable**. Failed and
cancelled items are not recorded; they run again next time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any

from ._checkpoint_codec import key_of, namespace_of
from ._intake import callable_name, new_task_id
from ._map_chunk import MapChunk
from ._restored import Restored

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint
    from ._map import MapEntry
    from ._task_options import TaskOptions

__all__ = ["Resume", "resume_for"]

RESTORED_MESSAGE = "restored from checkpoint"


def resume_for(
    checkpoint: object,
    fn: Callable[..., Any],
    opts: TaskOptions,
    key: Callable[[Any], str] | None,
    namespace: str | None,
    *,
    where: str,
) -> Resume | None:
    """The :class:`Resume` of a call given ``checkpoint=``, ``key=``, ``namespace=`` (None
    without a checkpoint); ``TypeError`` for arguments that make no sense (``where`` names
    the call in the message)."""
    if checkpoint is None:
        if key is not None or namespace is not None:
            raise TypeError(f"{where}: key= and namespace= go with checkpoint=")
        return None
    from ._checkpoint import Checkpoint  # (and sqlite3: loaded only once one is given)

    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(
            f"{where}: checkpoint must be an osiiso_mp.Checkpoint, got "
            f"{type(checkpoint).__qualname__}"
        )
    if key is not None and not callable(key):
        raise TypeError(f"{where}: key must be a callable (input -> str), got {key!r}")
    if checkpoint.closed:
        raise ValueError(f"{where}: the checkpoint {checkpoint.path!r} is closed")
    return Resume(checkpoint, fn, opts, key, namespace_of(fn, namespace))


class Resume:
    """One call's checkpoint: the lookups before submitting, the recording after."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        fn: Callable[..., Any],
        opts: TaskOptions,
        key: Callable[[Any], str] | None,
        namespace: str,
    ) -> None:
        self.checkpoint = checkpoint
        self.namespace = namespace
        self.name = opts.name or callable_name(fn)
        self._opts = opts
        self._key = key
        self._lock = threading.Lock()
        # entries submitted and not recorded yet: their items' keys, and (a chunk read
        # while under way) the items recorded one by one
        self._keys: dict[Any, list[str]] = {}
        self._items_done: dict[Any, set[int]] = {}

    # -- before submitting -----------------------------------------------------------------

    def keys(self, inputs: list[Any]) -> list[str]:
        """The keys of ``inputs`` (``TypeError`` for one without JSON and no ``key=``)."""
        key = self._key
        return [key_of(item, key) for item in inputs]

    def split(
        self, keys: list[str], group_id: Hashable | None = None
    ) -> Iterator[tuple[int, int, Restored | None]]:
        """The inputs in runs, in order: ``(start, stop, restored)``, where ``restored`` is
        the :class:`Restored` entry of a run of done inputs, None for a run to submit."""
        found = dict(self.checkpoint._found(keys, self.namespace))
        n = len(keys)
        at = 0
        while at < n:
            done = keys[at] in found
            stop = at + 1
            while stop < n and (keys[stop] in found) == done:
                stop += 1
            if done:
                stored = [found[k] for k in keys[at:stop]]
                yield at, stop, self._restored(stored, group_id)
            else:
                yield at, stop, None
            at = stop

    def _restored(self, stored: list[Any], group_id: Hashable | None) -> Restored:
        """The entry of a run of done inputs: ``stored`` holds their ``(value, name,
        recorded_at, has_value)``."""
        opts = self._opts
        # the records' times are perf_counter readings: the wall-clock time of the first
        # record, mapped onto that clock
        offset = time.perf_counter() - time.time()
        return Restored(
            values=[s[0] for s in stored],
            finished=[s[2] + offset for s in stored],
            name=self.name,
            opts=opts if group_id is None else opts.replace(group_id=group_id),
            message=RESTORED_MESSAGE,
            new_id=new_task_id,
        )

    def follow(self, entries: list[MapEntry], keys: list[str]) -> None:
        """Record the items of ``entries`` (submitted for ``keys``, in order) as they
        succeed."""
        at = 0
        for entry in entries:
            n = entry.weight
            with self._lock:
                self._keys[entry] = keys[at : at + n]
            at += n
            entry.add_done_callback(self._on_done)

    # -- recording -------------------------------------------------------------------------

    def _on_done(self, entry: Any) -> None:
        """An entry ended (supervisor thread, or here): queue its successes (none once
        the checkpoint is closed: they run again next time)."""
        with self._lock:
            if self.checkpoint.closed:
                self._keys.pop(entry, None)
                return
            self._record(entry)

    def _record(self, entry: Any) -> None:
        """Queue ``entry``'s successes once (with the lock held)."""
        keys = self._keys.pop(entry, None)
        skip = self._items_done.pop(entry, ())
        if keys is None:
            return
        ck, ns, name = self.checkpoint, self.namespace, self.name
        if isinstance(entry, MapChunk):
            ck.record_many(_chunk_successes(entry, keys, skip), ns, name=name, flush=False)
        elif not entry.cancelled() and entry.exception() is None:
            ck.record(keys[0], entry.result(), namespace=ns, name=name)

    def durable(self, entry: Any, item: int | None = None) -> None:
        """Before the reader hands over ``entry``'s values (``item``: only that item, of a
        chunk still under way): record them if not yet, and commit."""
        with self._lock:
            if item is None:
                self._record(entry)
            else:
                keys = self._keys.get(entry)
                done = self._items_done.setdefault(entry, set())
                if keys is not None and item not in done:
                    done.add(item)
                    pairs = _chunk_successes(entry, keys, skip=(), only=item)
                    self.checkpoint.record_many(pairs, self.namespace, name=self.name, flush=False)
        self.checkpoint.flush()

    def durable_all(self, entries: list[Any]) -> None:
        """Before ``entries`` are handed over together (all done): record, commit once."""
        with self._lock:
            for entry in entries:
                if entry.done():
                    self._record(entry)
        self.checkpoint.flush()

    def settle(self) -> None:
        """``run()`` summarises: record what has ended, and commit (nothing once the
        checkpoint is closed: what was not recorded runs again next time)."""
        with self._lock:
            if self.checkpoint.closed:
                self._keys.clear()
                return
            for entry in [e for e in self._keys if e.done()]:
                self._record(entry)
        self.checkpoint.flush()


def _chunk_successes(
    entry: MapChunk, keys: list[str], skip: Any, only: int | None = None
) -> list[tuple[str, Any]]:
    """``(key, value)`` of the chunk's items that succeeded (``only``: that one)."""
    outcome = entry.chunk.outcome
    values = entry._values
    records = None
    pairs: list[tuple[str, Any]] = []
    span = range(len(keys)) if only is None else (only,)
    for i in span:
        if i in skip:
            continue
        record = outcome.get(i)
        if record is not None and record.status != "succeeded":
            continue
        if values is not None and record is None:
            pairs.append((keys[i], values[i]))
            continue
        if values is not None and values[i] is not None:
            pairs.append((keys[i], values[i]))
            continue
        try:  # the reader let go of them (or the item succeeded on its own): its record's
            if records is None:
                records = entry.records()
            pairs.append((keys[i], records[i].value))
        except Exception:  # a value released meanwhile: it runs again next time
            continue
    return pairs
