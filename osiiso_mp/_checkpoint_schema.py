"""A checkpoint file's schema: created in a new file, checked in an existing one.

Schema version 1 (``PRAGMA user_version``), one table::

    records(namespace TEXT, key TEXT, name TEXT, recorded_at REAL, codec TEXT, value BLOB)
    PRIMARY KEY (namespace, key)

``recorded_at`` is wall-clock seconds (``time.time()``) of the first record of the key;
``codec`` says how ``value`` is encoded (see :mod:`._checkpoint_codec`), NULL for a record
without a value. A file of another version, or an SQLite file with other tables and no
version, is refused with a :class:`CheckpointError` rather than changed.
"""

from __future__ import annotations

import sqlite3

from ._errors import OsiisoError

__all__ = ["SCHEMA_VERSION", "CheckpointError", "connect"]

SCHEMA_VERSION = 1
"""What ``PRAGMA user_version`` says of a checkpoint file this code reads and writes."""

_SCHEMA = """
CREATE TABLE records (
    namespace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    name        TEXT,
    recorded_at REAL NOT NULL,
    codec       TEXT,
    value       BLOB,
    PRIMARY KEY (namespace, key)
)"""


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
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _ensure_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CheckpointError(f"cannot open the checkpoint file {path!r}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


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
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _version(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version (0: none yet); an error for one this code does not know."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version not in (0, SCHEMA_VERSION):
        raise CheckpointError(
            f"the checkpoint file {path!r} has schema version {version}; this osiiso_mp reads "
            f"version {SCHEMA_VERSION} only (was it written by a newer osiiso_mp?)"
        )
    return version
