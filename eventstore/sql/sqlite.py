"""Everything SQLite-specific: trigger DDL, upsert, connection setup."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as upsert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "CREATE_TRIGGERS",
    "CURSOR_OPTIONS",
    "DROP_TRIGGERS",
    "READ_OPTIONS",
    "configure_engine",
    "is_unique_violation",
    "upsert",
]

#: Marks the read-only engine: its connections run each SELECT in autocommit mode.
READ_OPTIONS: dict[str, Any] = {"eventstore_read": True}

#: A long read through a cursor (export): no BEGIN IMMEDIATE, so it never blocks writers;
#: the open SELECT is its own consistent snapshot.
CURSOR_OPTIONS: dict[str, Any] = READ_OPTIONS

# The cap of the stream NEW belongs to: its own max_events, else the store-wide setting.
_CAP_OF_NEW = """COALESCE(
        (SELECT max_events FROM event_streams
          WHERE session_id = NEW.session_id AND stream_id = NEW.stream_id),
        (SELECT max_events_per_stream FROM eventstore_settings WHERE id = 1))"""

# The triggers the schema must have. The migrations install them (from frozen copies in
# eventstore.migrations.ddl); tests/migrations/test_schema.py checks the two agree. No
# trigger gives seq to a writer that omits it, as PostgreSQL has: SQLite triggers cannot
# change the row being inserted, and an embedded file has no rolling upgrade.
#
# A row trigger whose delete is a range seek on uq_events_stream_seq: rows below the
# floor were deleted by earlier firings, so it visits only what it removes.
CREATE_TRIGGERS: list[str] = [
    """
CREATE TRIGGER IF NOT EXISTS eventstore_trim_streams
AFTER INSERT ON events
WHEN CAP IS NOT NULL
BEGIN
    DELETE FROM events
     WHERE session_id = NEW.session_id AND stream_id = NEW.stream_id
       AND seq <= NEW.seq - CAP;
    UPDATE event_streams SET first_seq = NEW.seq - CAP + 1
     WHERE session_id = NEW.session_id AND stream_id = NEW.stream_id
       AND first_seq <= NEW.seq - CAP;
END
""".replace("CAP", _CAP_OF_NEW),
]

DROP_TRIGGERS: list[str] = ["DROP TRIGGER IF EXISTS eventstore_trim_streams"]

_SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


def configure_engine(
    engine: AsyncEngine, *, busy_timeout_ms: int = 10_000, synchronous: str = "FULL"
) -> None:
    """WAL, a busy timeout, and an explicit ``BEGIN IMMEDIATE`` for every write transaction.

    pysqlite's own implicit BEGIN is turned off: it starts a deferred transaction, and
    two deferred writers that both read first deadlock into SQLITE_BUSY. ``BEGIN
    IMMEDIATE`` takes the write lock up front, so writers queue on ``busy_timeout``.
    Reads (connections with :data:`READ_OPTIONS`) get no BEGIN: each SELECT is its own
    consistent snapshot.
    """
    mode = synchronous.upper()
    if mode not in _SYNCHRONOUS_MODES:
        raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")
    pragmas = (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        f"PRAGMA synchronous={mode}",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if not conn.get_execution_options().get("eventstore_read"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_unique_violation(error: DBAPIError) -> bool:
    """Whether a unique index refused a row (a rerun that looks the row up may succeed)."""
    return str(error.orig).startswith("UNIQUE constraint failed")
