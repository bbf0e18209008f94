"""Everything PostgreSQL-specific: trigger DDL, upsert, engine options."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.exc import DBAPIError

__all__ = [
    "CREATE_TRIGGERS",
    "CURSOR_OPTIONS",
    "DROP_TRIGGERS",
    "READ_OPTIONS",
    "configure_engine",
    "is_unique_violation",
    "upsert",
]

#: Reads are single statements: one snapshot each, no BEGIN/COMMIT round trips.
READ_OPTIONS: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}

#: A long read through a server-side cursor (export): asyncpg cursors need a
#: transaction, so a read-only one instead of autocommit.
CURSOR_OPTIONS: dict[str, Any] = {"postgresql_readonly": True}

# The triggers the schema must have. The migrations install them (from frozen copies in
# eventstore.migrations.ddl); tests/migrations/test_schema.py checks the two agree.
#
# Statement-level, with a transition table: one multi-row INSERT trims each touched
# stream once, instead of once per row. The range delete starts at the head's
# first_seq so it does not walk index entries of rows trimmed earlier and not yet
# vacuumed. The cap of a stream is its own max_events, else the store-wide setting.
CREATE_TRIGGERS: list[str] = [
    """
CREATE OR REPLACE FUNCTION eventstore_trim_streams() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH touched AS (
        SELECT session_id, stream_id, max(seq) AS top
        FROM eventstore_inserted
        GROUP BY session_id, stream_id
    ), floors AS (
        SELECT t.session_id, t.stream_id,
               COALESCE(h.first_seq, 0) AS old_first,
               t.top - COALESCE(h.max_events, s.max_events_per_stream) AS floor
        FROM touched t
        LEFT JOIN event_streams h
               ON h.session_id = t.session_id AND h.stream_id = t.stream_id
        LEFT JOIN eventstore_settings s ON s.id = 1
        WHERE COALESCE(h.max_events, s.max_events_per_stream) IS NOT NULL
    ), moved AS (
        UPDATE event_streams h SET first_seq = f.floor + 1
        FROM floors f
        WHERE h.session_id = f.session_id AND h.stream_id = f.stream_id
          AND h.first_seq <= f.floor
    )
    DELETE FROM events e
    USING floors f
    WHERE e.session_id = f.session_id AND e.stream_id = f.stream_id
      AND e.seq >= f.old_first AND e.seq <= f.floor;
    RETURN NULL;
END
$$
""",
    """
CREATE TRIGGER eventstore_trim_streams
AFTER INSERT ON events
REFERENCING NEW TABLE AS eventstore_inserted
FOR EACH STATEMENT EXECUTE FUNCTION eventstore_trim_streams()
""",
    # A writer that inserts without seq -- a server of the pre-stream version, during and
    # after a rolling upgrade -- gets the next seq of the stream's head row, allocated
    # the way the store allocates it. The store's own rows carry a seq and skip it.
    """
CREATE OR REPLACE FUNCTION eventstore_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
    INSERT INTO event_streams AS h
        (session_id, stream_id, last_seq, first_seq, created_at, updated_at)
    VALUES (NEW.session_id, NEW.stream_id, 1, 1, now_ms, now_ms)
    ON CONFLICT (session_id, stream_id)
    DO UPDATE SET last_seq = h.last_seq + 1, updated_at = EXCLUDED.updated_at
    RETURNING h.last_seq INTO NEW.seq;
    RETURN NEW;
END
$$
""",
    """
CREATE TRIGGER eventstore_assign_seq
BEFORE INSERT ON events
FOR EACH ROW WHEN (NEW.seq IS NULL)
EXECUTE FUNCTION eventstore_assign_seq()
""",
]

DROP_TRIGGERS: list[str] = [
    "DROP TRIGGER IF EXISTS eventstore_trim_streams ON events",
    "DROP FUNCTION IF EXISTS eventstore_trim_streams()",
    "DROP TRIGGER IF EXISTS eventstore_assign_seq ON events",
    "DROP FUNCTION IF EXISTS eventstore_assign_seq()",
]


def configure_engine(engine: Any) -> None:
    """Nothing to hook on PostgreSQL; kept so both dialect modules have one shape."""


def is_unique_violation(error: DBAPIError) -> bool:
    """Whether a unique index refused a row (a rerun that looks the row up may succeed)."""
    return getattr(error.orig, "sqlstate", None) == "23505"
