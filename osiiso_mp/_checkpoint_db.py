"""A checkpoint's SQLite file: its schema, its one connection, and the batched writer.

::

    record() ──append──> pending rows ──(batch_rows pending, or batch_seconds since the
      (any thread,          (a list,      oldest one, or flush()/close())──> one transaction
       no I/O)              _lock)         BEGIN IMMEDIATE … COMMIT, under _db_lock

- ``append`` only adds a row to ``_pending`` under ``_lock``: no I/O on the caller's path.
  The writer thread, started by the first row (importing or opening starts nothing),
  commits the pending rows when ``batch_rows`` are pending or the oldest has waited
  ``batch_seconds``, and ends after ``batch_seconds`` with nothing to do (the next row
  starts another). It wakes at least every ``batch_seconds``, so a row needs no
  notification; only reaching ``batch_rows`` (or closing) notifies it.
- ``flush`` commits whatever is pending in the calling thread. Commits happen under
  ``_db_lock`` and take the pending rows under it, so when ``flush`` returns, every row
  appended before it was called is committed, including rows the writer had taken.
- Invariant: ``_committed <= _appended`` (both counts of rows, under ``_lock``); equal when
  nothing appended is still uncommitted, which is what makes an idle ``flush`` cheap.
- The file is in WAL mode with ``synchronous=NORMAL``: a commit survives the death of the
  process (SIGKILL included) and never leaves a torn file; a power loss or OS crash may
  lose the latest commits, not the file. Writers wait up to ``timeout`` for one another
  (``busy_timeout``), and each transaction takes the write lock at ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ._checkpoint_schema import CheckpointError, connect

__all__ = ["Found", "Row", "Store"]

log = logging.getLogger("osiiso_mp")

# namespace, key, name, recorded_at (wall clock), codec (None: no value), value
Row = tuple[str, str, str | None, float, str | None, Any]
Found = tuple[str, str | None, float, str | None, Any]  # key, name, recorded_at, codec, value

# A record keeps the time it was first recorded; a later record of its key replaces the
# value (unless it has none: store_values=False) and the name.
_ON_CONFLICT = """
ON CONFLICT (namespace, key) DO UPDATE SET
    name = excluded.name,
    value = CASE WHEN excluded.codec IS NULL THEN value ELSE excluded.value END,
    codec = COALESCE(excluded.codec, codec)"""
# Rows go thousands to one INSERT, not one each (executemany): sqlite3 lets the GIL go at
# each step, and while another thread runs Python (the one recording, say), taking it back
# can cost a switch interval (5 ms) a step. Measured beside a busy thread: 4,096 rows by
# executemany took from 0.03 to 10 s; by INSERTs of 500 rows 0.03 s, but then the writer
# commits at most ~100,000 rows/s while the recording thread is busy (500 rows per 5 ms).
# 5,000 a statement (30,000 variables, under SQLite's default limit of 32,766) lifts that
# ceiling to ~1,000,000 (computed, not measured); idle, the size makes no difference.
_ROWS_PER_INSERT = 5_000
# How many records a namespace holds, counting no further than the limit (O(limit), not O(n))
_COUNT_UP_TO = "SELECT COUNT(*) FROM (SELECT 1 FROM records WHERE namespace = ? LIMIT ?)"
_SELECT = "SELECT key, name, recorded_at, codec, value FROM records WHERE namespace = ?"
_KEYS_PER_SELECT = 500  # measured: 40,000 keys take the same time in chunks of 100 to 5,000


@functools.lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    """The upsert of ``rows`` rows."""
    return f"INSERT INTO records VALUES {','.join(['(?,?,?,?,?,?)'] * rows)}{_ON_CONFLICT}"


@functools.lru_cache(maxsize=8)
def _select_sql(keys: int) -> str:
    """The SELECT of the records of ``keys`` keys of one namespace."""
    where = "key = ?" if keys == 1 else f"key IN ({','.join('?' * keys)})"
    return f"{_SELECT} AND {where}"


class Store:
    """The connection to one checkpoint file, with its batched writer (module docstring)."""

    def __init__(self, path: str, *, timeout: float, batch_rows: int, batch_seconds: float):
        self.path = path
        self._batch_rows = batch_rows
        self._batch_seconds = batch_seconds
        self._db_lock = threading.Lock()  # the connection; commits in order
        # An RLock: a garbage-collected Checkpoint's finalizer may run close() in whichever
        # thread the collector ran, the writer's included, while it holds _lock. _cond is on
        # it; the hot paths take the lock itself (a C call, where the Condition's is Python).
        self._lock = threading.RLock()  # the pending rows, the counts, the writer's state
        self._cond = threading.Condition(self._lock)
        self._pending: list[Row] = []
        self._oldest_at = 0.0  # monotonic time the oldest pending row came
        self._appended = 0
        self._committed = 0
        self._writer: threading.Thread | None = None
        self._stopping = False  # close() has begun: no more rows
        self._closed = False  # the connection is closed (under _db_lock)
        self._close_in_writer = False  # close() ran in the writer thread: it finishes it
        self._failed = False  # the writer's last commit failed (logged once)
        self._flush_wanted = 0  # a flush() waits for the writer to commit this many rows
        self._pid = os.getpid()
        self._conn = connect(path, timeout)

    # -- writes ------------------------------------------------------------------------

    def append(self, row: Row) -> None:
        """Queue ``row`` for the writer; no I/O (a hot path: one lock, no notification
        unless the writer must start or ``batch_rows`` are reached)."""
        with self._lock:
            if self._stopping:
                raise CheckpointError(f"the checkpoint {self.path!r} is closed")
            pending = self._pending
            pending.append(row)
            self._appended += 1
            if len(pending) == 1:
                self._oldest_at = time.monotonic()
                if self._writer is None:
                    self._start_writer()
            elif len(pending) == self._batch_rows:
                self._cond.notify_all()  # (the writer; flush() waiters check and wait on)

    def extend(self, rows: Sequence[Row]) -> None:
        """Queue ``rows`` for the writer, as :meth:`append` does each."""
        if not rows:
            return
        with self._lock:
            if self._stopping:
                raise CheckpointError(f"the checkpoint {self.path!r} is closed")
            pending = self._pending
            if not pending:
                self._oldest_at = time.monotonic()
            pending += rows
            self._appended += len(rows)
            if self._writer is None:
                self._start_writer()
            elif len(pending) >= self._batch_rows:
                self._cond.notify_all()

    def _start_writer(self) -> None:
        """Start the writer thread. Holds ``_lock``."""
        self._writer = threading.Thread(
            target=self._run_writer, name="osiiso_mp-checkpoint-writer", daemon=True
        )
        self._writer.start()

    def write(self, rows: Sequence[Row]) -> None:
        """Commit the pending rows and ``rows`` (after them) in one transaction, now."""
        self._check_open()
        with self._db_lock:
            self._check_connection()
            self._commit_pending(rows)

    def flush(self) -> None:
        """Commit the pending rows now; returns at once when every row is committed.

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

    def _commit_pending(self, extra: Sequence[Row]) -> None:
        """Commit the pending rows, then ``extra``, in one transaction. Holds ``_db_lock``
        (so that when it returns, every row appended before it began is committed)."""
        with self._lock:
            rows, self._pending = self._pending, []
            upto = self._appended
        if not rows and not extra:
            return
        try:
            self._upsert(rows + list(extra) if extra else rows)
        except BaseException:
            with self._lock:  # back in front of newer rows, in order: the next commit retries
                self._pending[:0] = rows
                self._oldest_at = time.monotonic()
            raise
        with self._lock:
            self._committed = upto

    def _upsert(self, rows: list[Row]) -> None:
        """Write ``rows`` in one transaction: one INSERT of them when they are few enough
        (a statement is a transaction of its own), else BEGIN IMMEDIATE, INSERTs, COMMIT."""
        conn = self._conn
        per = max(1, min(_ROWS_PER_INSERT, self._variables() // 6))
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

    def _variables(self) -> int:
        """How many ``?`` one statement may have (SQLite's limit, 999 before 3.32)."""
        return self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def _run_writer(self) -> None:
        """The writer thread: commit when ``batch_rows`` are pending or the oldest pending
        row has waited ``batch_seconds``; end when stopping or idle for ``batch_seconds``."""
        idle_until = time.monotonic() + self._batch_seconds
        while True:
            with self._lock:
                while not self._stopping:
                    now = time.monotonic()
                    if len(self._pending) >= self._batch_rows:
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
                            len(self._pending),
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

    def select(self, namespace: str, keys: Iterable[str]) -> list[Found]:
        """The rows of those of ``keys`` that ``namespace`` holds, in one read transaction
        (one snapshot of the file).

        An empty namespace costs one short COUNT; one with no more records than ``keys``
        is read whole in one SELECT (a resumed batch asks for all of its inputs: 200,000
        rows in about 0.1 s, where fetching them by key took 0.4 s), its rows filtered here;
        otherwise fetches go a few hundred keys per SELECT (below SQLite's variable limit).
        """
        keys = list(keys)
        self.flush()
        found: list[Found] = []
        with self._db_lock:
            self._check_connection()
            conn = self._conn
            per = max(1, min(_KEYS_PER_SELECT, self._variables() - 1))
            conn.execute("BEGIN")
            try:
                held = conn.execute(_COUNT_UP_TO, (namespace, len(keys) + 1)).fetchone()[0]
                if not held or not keys:
                    return found
                if held <= len(keys):  # the namespace is no bigger: read it whole, keep ours
                    wanted = set(keys)
                    rows = conn.execute(_SELECT, (namespace,)).fetchall()
                    found += [row for row in rows if row[0] in wanted]
                    return found
                for start in range(0, len(keys), per):
                    chunk = keys[start : start + per]
                    found += conn.execute(_select_sql(len(chunk)), (namespace, *chunk)).fetchall()
            finally:
                conn.execute("COMMIT")
        return found

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of a read-only ``sql``, after the pending rows are committed."""
        self.flush()
        with self._db_lock:
            self._check_connection()
            return self._conn.execute(sql, params).fetchall()

    def delete(self, namespace: str | None) -> int:
        """Remove the records of ``namespace`` (of every namespace: None); how many."""
        self.flush()
        with self._db_lock:
            self._check_connection()
            if namespace is None:
                return self._conn.execute("DELETE FROM records").rowcount
            sql = "DELETE FROM records WHERE namespace = ?"
            return self._conn.execute(sql, (namespace,)).rowcount

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
