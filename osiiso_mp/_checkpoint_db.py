"""A checkpoint's SQLite file: its one connection, the batched writer, and reads.

::

    record() ──append──> pending entries ──(batch_rows records pending, or batch_seconds
    record_many()          (a list,          since the oldest, or flush()/close())──> one
      (any thread,          _lock)           transaction, a row per batch (BEGIN IMMEDIATE
       no I/O)                               … COMMIT), under _db_lock

- ``append``/``extend`` only add entries (a :class:`~._checkpoint_batch.Batch` or single
  records, see :mod:`._checkpoint_batch`) to ``_pending`` under ``_lock``: no I/O on the
  caller's path. The writer thread, started by the first entry (importing or opening
  starts nothing), commits the pending entries when ``batch_rows`` records are pending or
  the oldest has waited ``batch_seconds``, and ends after ``batch_seconds`` with nothing
  to do (the next entry starts another). It wakes at least every ``batch_seconds``, so an
  entry needs no notification; only reaching ``batch_rows`` (or closing) notifies it.
- ``flush`` has the pending entries committed: by the writer thread while it runs (this
  thread waits), else in the calling thread. Commits happen under ``_db_lock`` and take
  the pending entries under it, so when ``flush`` returns, every record appended before
  it was called is committed, including those the writer had taken.
- Invariant: ``_committed <= _appended`` (both counts of records, under ``_lock``); equal
  when nothing appended is still uncommitted, which is what makes an idle ``flush`` cheap.
- Reads bring this object's :class:`~._checkpoint_index.Index` of the namespace up to
  date and take what they need from the file in one read transaction (one snapshot); the
  values are decoded after it, outside ``_db_lock``.
- The file is in WAL mode with ``synchronous=NORMAL``: a commit survives the death of the
  process (SIGKILL included) and never leaves a torn file; a power loss or OS crash may
  lose the latest commits, not the file. Writers wait up to ``timeout`` for one another
  (``busy_timeout``), and each transaction takes the write lock at ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence

from ._checkpoint_batch import Batch, Row, Single, rows_of
from ._checkpoint_index import Indexes, Plan, namespaces
from ._checkpoint_schema import CheckpointError, connect

__all__ = ["Entry", "Store"]

log = logging.getLogger("osiiso_mp")

Entry = Batch | Single  # what is queued: the records of a record_many, or one record

_COLUMNS = "namespace, name, recorded_at, times, codec, keys, value"
# Rows go many to one INSERT, not one each (executemany): sqlite3 lets the GIL go at each
# step, and while another thread runs Python (the one recording, say), taking it back
# can cost a switch interval (5 ms) a step. A row is a batch of records now, so a commit
# is a few rows, and one statement.
_ROWS_PER_INSERT = 500


@functools.lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` rows."""
    return f"INSERT INTO records ({_COLUMNS}) VALUES {','.join(['(?,?,?,?,?,?,?)'] * rows)}"


class Store:
    """The connection to one checkpoint file, with its batched writer (module docstring)."""

    def __init__(self, path: str, *, timeout: float, batch_rows: int, batch_seconds: float):
        self.path = path
        self._batch_rows = batch_rows
        self._batch_seconds = batch_seconds
        self._db_lock = threading.Lock()  # the connection and the indexes; commits in order
        # An RLock: a garbage-collected Checkpoint's finalizer may run close() in whichever
        # thread the collector ran, the writer's included, while it holds _lock. _cond is on
        # it; the hot paths take the lock itself (a C call, where the Condition's is Python).
        self._lock = threading.RLock()  # the pending entries, the counts, the writer's state
        self._cond = threading.Condition(self._lock)
        self._pending: list[Entry] = []
        self._pending_records = 0
        self._oldest_at = 0.0  # monotonic time the oldest pending entry came
        self._appended = 0  # records
        self._committed = 0
        self._writer: threading.Thread | None = None
        self._stopping = False  # close() has begun: no more entries
        self._closed = False  # the connection is closed (under _db_lock)
        self._close_in_writer = False  # close() ran in the writer thread: it finishes it
        self._failed = False  # the writer's last commit failed (logged once)
        self._flush_wanted = 0  # a flush() waits for the writer to commit this many records
        self._indexes = Indexes()  # what this object read of the file (under _db_lock)
        self._pid = os.getpid()
        self._conn = connect(path, timeout)

    # -- writes ------------------------------------------------------------------------

    def append(self, single: Single) -> None:
        """Queue one record for the writer; no I/O (a hot path: one lock, no notification
        unless the writer must start or ``batch_rows`` are reached)."""
        with self._lock:
            if self._stopping:
                raise CheckpointError(f"the checkpoint {self.path!r} is closed")
            pending = self._pending
            pending.append(single)
            self._appended += 1
            self._pending_records += 1
            if len(pending) == 1:
                self._oldest_at = time.monotonic()
                if self._writer is None:
                    self._start_writer()
            elif self._pending_records == self._batch_rows:
                self._cond.notify_all()  # (the writer; flush() waiters check and wait on)

    def extend(self, entries: Sequence[Entry], records: int) -> None:
        """Queue ``entries`` (``records`` records in all) for the writer, as :meth:`append`."""
        if not entries:
            return
        with self._lock:
            if self._stopping:
                raise CheckpointError(f"the checkpoint {self.path!r} is closed")
            pending = self._pending
            if not pending:
                self._oldest_at = time.monotonic()
            pending += entries
            self._appended += records
            self._pending_records += records
            if self._writer is None:
                self._start_writer()
            elif self._pending_records >= self._batch_rows:
                self._cond.notify_all()

    def _start_writer(self) -> None:
        """Start the writer thread. Holds ``_lock``."""
        self._writer = threading.Thread(
            target=self._run_writer, name="osiiso_mp-checkpoint-writer", daemon=True
        )
        self._writer.start()

    def write(self, entries: Sequence[Entry]) -> None:
        """Commit the pending entries and ``entries`` (after them) in one transaction, now."""
        self._check_open()
        with self._db_lock:
            self._check_connection()
            self._commit_pending(entries)

    def flush(self) -> None:
        """Commit the pending entries now; returns at once when every one is committed.

        While the writer thread runs, it is asked to commit them and this thread waits (the
        SQLite work then runs in the writer, without the GIL, beside whatever Python the
        process's other threads run meanwhile); otherwise, or if the writer stops or fails
        meanwhile, they are committed here."""
        with self._lock:
            self._check_open()
            target = self._appended
            if self._committed >= target:
                return
            writer = self._writer
            if writer is not None and writer is not threading.current_thread():
                self._flush_wanted = max(self._flush_wanted, target)
                self._cond.notify_all()
                while (
                    self._committed < target
                    and self._writer is writer
                    and not self._stopping
                    and not self._failed
                ):
                    self._cond.wait(self._batch_seconds)
                if self._committed >= target:
                    return
        with self._db_lock:
            self._check_connection()
            self._commit_pending(())

    def _commit_pending(self, extra: Sequence[Entry]) -> None:
        """Commit the pending entries, then ``extra``, in one transaction. Holds
        ``_db_lock`` (so that when it returns, every record appended before it began is
        committed)."""
        with self._lock:
            entries, self._pending = self._pending, []
            records, self._pending_records = self._pending_records, 0
            upto = self._appended
        if not entries and not extra:
            return
        try:
            self._insert(rows_of(entries + list(extra) if extra else entries))
        except BaseException:
            with self._lock:  # back in front of newer ones, in order: the next commit retries
                self._pending[:0] = entries
                self._pending_records += records
                self._oldest_at = time.monotonic()
            raise
        self._indexes.wrote()
        with self._lock:
            self._committed = upto

    def _insert(self, rows: list[Row]) -> None:
        """Write ``rows`` in one transaction: one INSERT of them when they are few enough
        (a statement is a transaction of its own), else BEGIN IMMEDIATE, INSERTs, COMMIT."""
        conn = self._conn
        variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 999 before 3.32
        per = max(1, min(_ROWS_PER_INSERT, variables // 7))
        several = len(rows) > per
        try:
            if several:
                conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(rows), per):
                chunk = rows[start : start + per]
                conn.execute(_insert_sql(len(chunk)), list(itertools.chain.from_iterable(chunk)))
            if several:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _run_writer(self) -> None:
        """The writer thread: commit when ``batch_rows`` records are pending or the oldest
        has waited ``batch_seconds``; end when stopping or idle for ``batch_seconds``."""
        idle_until = time.monotonic() + self._batch_seconds
        while True:
            with self._lock:
                while not self._stopping:
                    now = time.monotonic()
                    if self._pending_records >= self._batch_rows:
                        break
                    if self._flush_wanted > self._committed:  # a flush() waits
                        break
                    if self._pending:
                        wait = self._oldest_at + self._batch_seconds - now
                        if wait <= 0:
                            break
                    elif now >= idle_until:
                        self._writer = None  # under _lock: the next append starts another
                        self._cond.notify_all()
                        return
                    else:
                        wait = idle_until - now
                    self._cond.wait(wait)
                stopping = self._stopping
            if stopping:
                if self._close_in_writer:
                    self._finish_close()
                return
            retry_after = 0.0
            with self._db_lock:
                try:
                    self._commit_pending(())
                except Exception as exc:
                    if not self._failed:
                        log.warning(
                            "checkpoint %r: committing %d record(s) failed (%s: %s); they stay "
                            "pending and are retried",
                            self.path,
                            self._pending_records,
                            type(exc).__name__,
                            exc,
                        )
                    self._failed = True
                    retry_after = self._batch_seconds
                else:
                    self._failed = False
            with self._lock:
                self._cond.notify_all()  # flush() waiters: committed, or failed
            idle_until = time.monotonic() + self._batch_seconds
            if retry_after:
                with self._lock:
                    if not self._stopping:
                        self._cond.wait(retry_after)

    # -- reads and deletes -------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        """The connection, in a transaction (a read's by default: one snapshot), after the
        pending entries are committed."""
        self.flush()
        with self._db_lock:
            self._check_connection()
            conn = self._conn
            conn.execute(begin)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def plan(self, namespace: str, keys: list[str]) -> Plan:
        """What reading the records of ``keys`` in ``namespace`` needs (the index's part,
        and the rows of the batches holding their values), in one read transaction;
        decoding is the caller's (:func:`~._checkpoint_index.found`)."""
        with self._transaction() as conn:
            return Plan(conn, namespace, self._indexes.get(conn, namespace), keys)

    def keys_held(self, namespace: str | None) -> dict[str, dict[str, int]]:
        """The index's key-to-slot map of ``namespace`` (of each namespace: None), by
        namespace, up to date (read-only for the caller)."""
        with self._transaction() as conn:
            names = namespaces(conn) if namespace is None else [namespace]
            return {name: self._indexes.get(conn, name).slot_of for name in names}

    def namespaces(self) -> list[str]:
        """The namespaces that hold batches, sorted."""
        with self._transaction() as conn:
            return namespaces(conn)

    def delete(self, namespace: str | None) -> int:
        """Remove the records of ``namespace`` (of every namespace: None); how many keys."""
        with self._transaction("BEGIN IMMEDIATE") as conn:
            names = namespaces(conn) if namespace is None else [namespace]
            gone = sum(len(self._indexes.get(conn, name).slot_of) for name in names)
            if namespace is None:
                conn.execute("DELETE FROM records")
            else:
                conn.execute("DELETE FROM records WHERE namespace = ?", (namespace,))
            conn.execute("UPDATE clears SET generation = generation + 1")  # (readers: all)
            self._indexes.wrote()
        return gone

    # -- closing -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Has ``close()`` begun?"""
        return self._stopping

    def _check_open(self) -> None:
        """Raise :class:`CheckpointError` once ``close()`` has begun."""
        if self._stopping:
            raise CheckpointError(f"the checkpoint {self.path!r} is closed")

    def _check_connection(self) -> None:
        """Raise :class:`CheckpointError` when the connection is closed. Holds ``_db_lock``."""
        if self._closed:
            raise CheckpointError(f"the checkpoint {self.path!r} is closed")

    def close(self) -> None:
        """Commit what is pending, stop the writer and close the connection (idempotent)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            if os.getpid() != self._pid:  # a forked child's copy: the parent's to close
                return
            writer = self._writer
            if writer is threading.current_thread():  # a finalizer run by the collector
                self._close_in_writer = True
                return
            self._cond.notify_all()
        if writer is not None:
            writer.join()
        self._finish_close()

    def _finish_close(self) -> None:
        """Commit what is pending and close the connection."""
        with self._db_lock:
            try:
                self._commit_pending(())
            finally:
                self._closed = True
                self._conn.close()
