"""Trigger DDL exactly as the revisions install it.

Frozen on purpose: a revision must go on creating what it created when it was written, so
these strings never change. A new version of a trigger is a new constant, installed by a
new revision. ``tests/migrations/test_schema.py`` checks that the head of the history
installs exactly the current definitions of :mod:`eventstore.sql.postgresql` and
:mod:`eventstore.sql.sqlite`; that test fails when those change without a revision.
"""

from __future__ import annotations

# -- r0003: a legacy writer's INSERT without seq gets one from the stream's head row -----

PG_ASSIGN_SEQ: list[str] = [
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

PG_DROP_ASSIGN_SEQ: list[str] = [
    "DROP TRIGGER IF EXISTS eventstore_assign_seq ON events",
    "DROP FUNCTION IF EXISTS eventstore_assign_seq()",
]

# -- r0004: the per-stream cap ------------------------------------------------------------

PG_TRIM_STREAMS: list[str] = [
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
]

PG_DROP_TRIM_STREAMS: list[str] = [
    "DROP TRIGGER IF EXISTS eventstore_trim_streams ON events",
    "DROP FUNCTION IF EXISTS eventstore_trim_streams()",
]

_SQLITE_CAP_OF_NEW = """COALESCE(
        (SELECT max_events FROM event_streams
          WHERE session_id = NEW.session_id AND stream_id = NEW.stream_id),
        (SELECT max_events_per_stream FROM eventstore_settings WHERE id = 1))"""

SQLITE_TRIM_STREAMS: list[str] = [
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
""".replace("CAP", _SQLITE_CAP_OF_NEW),
]

SQLITE_DROP_TRIM_STREAMS: list[str] = ["DROP TRIGGER IF EXISTS eventstore_trim_streams"]
