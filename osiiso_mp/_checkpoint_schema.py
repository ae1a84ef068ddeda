"""A checkpoint file's schema: created in a new file, checked in an existing one.

Schema version 2 (``PRAGMA user_version``): one row per *batch* of records, not per
record (200,000 rows cost SQLite alone about 0.35 s; 200,000 records in a few dozen
batches cost it next to nothing)::

    records(id INTEGER PRIMARY KEY, namespace TEXT, name TEXT, recorded_at REAL,
            times BLOB, codec TEXT, keys BLOB, value BLOB)
    INDEX (namespace, id)
    clears(generation INTEGER)  -- one row

- ``keys``: the batch's keys, in order (see :mod:`._checkpoint_batch`); a key may appear
  in several batches: the later batch (higher ``id``) holds its latest record.
- ``recorded_at``: wall-clock seconds (``time.time()``) of the batch's first record;
  ``times``: NULL when every record of the batch has that time, else each record's
  offset from it (little-endian float64s). A key keeps the time of its first record.
- ``codec`` and ``value``: the batch's values, encoded together (see
  :mod:`._checkpoint_codec`); both NULL for a batch without values (``store_values=False``).
- ``id`` grows with each batch committed; only a ``clear`` deletes rows (which may let
  ids be used again), and it adds one to ``clears.generation`` in its transaction. So a
  reader that has read the batches up to some ``id`` in some generation knows that, in
  that generation, the file's newer batches are those above it; in another, it reads
  them all again. (``AUTOINCREMENT`` would do without the generation, at about 10 us
  more a commit.)

A file of another version, or an SQLite file with other tables and no version, is
refused with a :class:`CheckpointError` rather than changed. Version 1 (one row per
record, from development versions of osiiso_mp before the first release with
checkpoints) is refused too, saying so: delete the file, and its inputs run again.
"""

from __future__ import annotations

import sqlite3
import time

from ._errors import OsiisoError

__all__ = ["SCHEMA_VERSION", "CheckpointError", "connect"]

SCHEMA_VERSION = 2
"""What ``PRAGMA user_version`` says of a checkpoint file this code reads and writes."""

_SCHEMA = (
    """
CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT,
    recorded_at REAL NOT NULL,
    times       BLOB,
    codec       TEXT,
    keys        BLOB NOT NULL,
    value       BLOB
)""",
    "CREATE INDEX records_by_namespace ON records (namespace, id)",
    "CREATE TABLE clears (generation INTEGER NOT NULL)",
    "INSERT INTO clears VALUES (0)",
)


class CheckpointError(OsiisoError):
    """A checkpoint file cannot be opened or used (not a checkpoint, an unknown schema
    version, closed)."""


def connect(path: str, timeout: float) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with the current schema (created if absent)."""
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise CheckpointError(f"cannot open the checkpoint file {path!r}: {exc}") from None
    try:
        _wal(conn, time.monotonic() + timeout)
        conn.execute("PRAGMA synchronous=NORMAL")
        _ensure_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CheckpointError(f"cannot open the checkpoint file {path!r}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _wal(conn: sqlite3.Connection, deadline: float) -> None:
    """Put the file in WAL mode. Switching a new file's journal needs it to itself, and
    SQLite answers "database is locked" at once, without waiting (no busy handler), while
    another connection opens it too: retried until ``deadline`` (monotonic)."""
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file; refuse a file of another version or another use."""
    if _version(conn, path) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")  # another object on the file may be creating it too
    try:
        if _version(conn, path) == 0:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
            if tables:
                raise CheckpointError(
                    f"{path!r} is an SQLite file but not an osiiso_mp checkpoint (it has "
                    f"{', '.join(map(repr, tables[:5]))} and no checkpoint schema version)"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _version(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version (0: none yet); an error for one this code does not know."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 1:
        raise CheckpointError(
            f"the checkpoint file {path!r} has schema version 1 (one row per input), "
            "written by a development version of osiiso_mp; this one reads version "
            f"{SCHEMA_VERSION} only (one row per batch) and does not convert files: delete "
            "it (its inputs then run again) or read it with the osiiso_mp that wrote it"
        )
    if version not in (0, SCHEMA_VERSION):
        raise CheckpointError(
            f"the checkpoint file {path!r} has schema version {version}; this osiiso_mp reads "
            f"version {SCHEMA_VERSION} only (was it written by a newer osiiso_mp?)"
        )
    return version
