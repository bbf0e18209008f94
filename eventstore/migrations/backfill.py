"""The data steps of stream support: number legacy rows, resolve duplicate event ids.

Frozen with the revisions that use them (r0003, and r0005 on SQLite).

Numbering: every row without ``seq`` gets the next numbers of its ``(session_id,
stream_id)``, in ``(timestamp, id)`` order -- the surrogate ``id`` is the deterministic
tie-breaker for equal timestamps, and it follows insertion order. The stream's head row in
``event_streams`` is created or advanced in the same statement (PostgreSQL) or transaction
(SQLite), so it always says how far the stream is numbered: a batch that dies rolls back
entirely, and a re-run carries on from the head rows, touching only rows still without
``seq``. A head row's ``created_at`` is its stream's oldest event; its ``updated_at`` is
the time of the upgrade (or the newest event, if later), so idle pruning
(``eventstore prune --idle``, the MCP app's session TTL) counts a migrated session's
idleness from the upgrade rather than dropping it at once for its old events.

Duplicates: the legacy store never made event ids unique within a session. Every row is
kept; of the rows sharing ``(session_id, event_id)`` the earliest by ``(timestamp, id)``
keeps the id, and each later one is renamed ``<event_id>#dup-<id>`` (``id`` being the row's
surrogate key), so the ids become unique and a cursor naming the original id resumes after
its first occurrence. A derived id that another row already had is renamed once more
(``<event_id>#dup-<id>#dup-<id>``, and so on while the id is taken); the row that had it
keeps it. One statement does it all, online and in a ``--sql`` script alike.
"""

from __future__ import annotations

import logging
import re
import sys
import time

from alembic import op
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from eventstore.errors import SchemaError
from eventstore.migrations import steps

log = logging.getLogger("eventstore.migrations")

#: Partial index that makes "the next rows without seq, in stream order" a range seek on
#: PostgreSQL. It exists only while r0003 runs.
PENDING_INDEX = "ix_events_pending_seq"
PENDING_INDEX_DDL = (
    f"CREATE INDEX CONCURRENTLY {PENDING_INDEX} "
    "ON events (session_id, stream_id, timestamp, id) WHERE seq IS NULL"
)

_REPORT_EVERY_S = 5.0
#: Ids of bad rows an error message lists; the rest are counted.
SHOWN_IDS = 20

# The time of the upgrade, in epoch ms, as each dialect spells it in SQL.
_PG_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
_AFTER = " AND (session_id, stream_id, timestamp, id) > (:session_id, :stream_id, :timestamp, :id)"
_LIMIT = "\n    LIMIT :batch_size"

# One statement: pick the next rows without seq (a prefix of each stream's remaining
# rows), advance their streams' head rows, number the rows from the heads' old values,
# and report how many were numbered and the last key for the next batch.
_PG_NUMBER = """
WITH pending AS MATERIALIZED (
    SELECT id, session_id, stream_id, timestamp FROM events
    WHERE seq IS NULL/*after*/
    ORDER BY session_id, stream_id, timestamp, id/*limit*/
), ranked AS (
    SELECT id, session_id, stream_id,
           row_number() OVER (PARTITION BY session_id, stream_id ORDER BY timestamp, id) AS rank
    FROM pending
), counts AS (
    SELECT session_id, stream_id, count(*) AS added,
           min(timestamp) AS first_at, max(timestamp) AS last_at
    FROM pending
    GROUP BY session_id, stream_id
), heads AS (
    INSERT INTO event_streams AS h
        (session_id, stream_id, last_seq, first_seq, created_at, updated_at)
    SELECT session_id, stream_id, added, 1, first_at, greatest(last_at, NOW_MS) FROM counts
    ON CONFLICT (session_id, stream_id) DO UPDATE
    SET last_seq = h.last_seq + EXCLUDED.last_seq,
        created_at = least(h.created_at, EXCLUDED.created_at),
        updated_at = greatest(h.updated_at, EXCLUDED.updated_at)
    RETURNING h.session_id, h.stream_id, h.last_seq
), numbered AS (
    UPDATE events AS e SET seq = heads.last_seq - counts.added + ranked.rank
    FROM ranked
    JOIN counts ON counts.session_id = ranked.session_id AND counts.stream_id = ranked.stream_id
    JOIN heads ON heads.session_id = ranked.session_id AND heads.stream_id = ranked.stream_id
    WHERE e.id = ranked.id
    RETURNING e.id
)
SELECT (SELECT count(*) FROM numbered) AS numbered,
       last.session_id, last.stream_id, last.timestamp, last.id
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT session_id, stream_id, timestamp, id FROM pending
    ORDER BY session_id DESC, stream_id DESC, timestamp DESC, id DESC
    LIMIT 1
) AS last ON true
"""

_PG_NUMBER = _PG_NUMBER.replace("NOW_MS", _PG_NOW_MS)
_PG_NUMBER_ALL = _PG_NUMBER.replace("/*after*/", "").replace("/*limit*/", "")
_PG_NUMBER_FIRST = _PG_NUMBER.replace("/*after*/", "").replace("/*limit*/", _LIMIT)
_PG_NUMBER_NEXT = _PG_NUMBER.replace("/*after*/", _AFTER).replace("/*limit*/", _LIMIT)

# SQLite has no data-modifying WITH: advance the heads, then number from them. The two
# statements see the same rows because SQLite lets no other writer in between.
_SQLITE_ADVANCE_HEADS = """
INSERT INTO event_streams (session_id, stream_id, last_seq, first_seq, created_at, updated_at)
SELECT session_id, stream_id, count(*), 1, min(timestamp), max(max(timestamp), NOW_MS)
FROM events
WHERE seq IS NULL
GROUP BY session_id, stream_id
ON CONFLICT (session_id, stream_id) DO UPDATE
SET last_seq = last_seq + excluded.last_seq,
    created_at = min(created_at, excluded.created_at),
    updated_at = max(updated_at, excluded.updated_at)
""".replace("NOW_MS", _SQLITE_NOW_MS)

_SQLITE_NUMBER = """
UPDATE events SET seq = numbered.seq
FROM (
    SELECT e.id,
           h.last_seq - count(*) OVER stream
               + row_number() OVER (stream ORDER BY e.timestamp, e.id) AS seq
    FROM events AS e
    JOIN event_streams AS h ON h.session_id = e.session_id AND h.stream_id = e.stream_id
    WHERE e.seq IS NULL
    WINDOW stream AS (PARTITION BY e.session_id, e.stream_id)
) AS numbered
WHERE events.id = numbered.id
"""

# One statement renames every later copy to its final id, so an offline script gets in
# one pass what repeated passes would. Of the rows sharing (session_id, event_id), one
# whose id ends with '#dup-' and its own surrogate id was renamed by an earlier run and
# yields: a client's cursor can only name the original. Each later copy takes
# '<event_id>#dup-<id>', and '#dup-<id>' again for as long as that is an id the session
# already holds. Only ids containing '#dup-' can be such an id, and no two rows' derived
# ids can meet (each ends with its own row's id), so checking against the ids held at
# the start is enough.
_RENAME_DUPLICATES = """
UPDATE events SET event_id = renamed.event_id
FROM (
    WITH RECURSIVE copies AS (
        SELECT id, session_id, event_id,
               row_number() OVER (
                   PARTITION BY session_id, event_id
                   ORDER BY CASE WHEN event_id LIKE '%#dup-' || CAST(id AS TEXT) THEN 1 ELSE 0 END,
                            timestamp, id
               ) AS copy
        FROM events
    ), held AS (
        SELECT DISTINCT session_id, event_id FROM events WHERE event_id LIKE '%#dup-%'
    ), derived (id, session_id, event_id) AS (
        SELECT id, session_id, event_id || '#dup-' || CAST(id AS TEXT) FROM copies WHERE copy > 1
        UNION ALL
        SELECT derived.id, derived.session_id,
               derived.event_id || '#dup-' || CAST(derived.id AS TEXT)
        FROM derived
        JOIN held ON held.session_id = derived.session_id AND held.event_id = derived.event_id
    )
    SELECT id, event_id FROM derived
    WHERE NOT EXISTS (
        SELECT 1 FROM held
        WHERE held.session_id = derived.session_id AND held.event_id = derived.event_id
    )
) AS renamed
WHERE events.id = renamed.id
"""


def number_all() -> None:
    """Number every row without ``seq`` at once (SQLite, and ``--sql`` scripts)."""
    if steps.is_postgresql():
        op.execute(_PG_NUMBER_ALL)
    else:
        op.execute(_SQLITE_ADVANCE_HEADS)
        op.execute(_SQLITE_NUMBER)


def number_in_batches(*, resume: bool) -> int:
    """PostgreSQL, online: number rows without ``seq`` in batches, one statement each.

    With ``resume``, batches walk forward from the last key numbered (rows inserted behind
    it wait for a later call); without, every batch starts from the first row still
    without ``seq``. Returns when a batch comes back smaller than ``batch_size``; the
    result is how many rows were numbered.
    """
    batch_size = steps.options().batch_size
    bind = op.get_bind()
    key: tuple[object, ...] | None = None
    total = 0
    started = reported = time.monotonic()
    while True:
        if key is None:
            row = bind.execute(text(_PG_NUMBER_FIRST), {"batch_size": batch_size}).one()
        else:
            session_id, stream_id, timestamp, row_id = key
            row = bind.execute(
                text(_PG_NUMBER_NEXT),
                {
                    "batch_size": batch_size,
                    "session_id": session_id,
                    "stream_id": stream_id,
                    "timestamp": timestamp,
                    "id": row_id,
                },
            ).one()
        numbered = int(row.numbered)
        total += numbered
        if time.monotonic() - reported > _REPORT_EVERY_S:
            reported = time.monotonic()
            log.info("backfill: %d rows numbered in %.0fs", total, reported - started)
        if numbered < batch_size:
            return total
        if resume:
            key = (row.session_id, row.stream_id, row.timestamp, row.id)


def rename_duplicates() -> None:
    """Give every later copy of a ``(session_id, event_id)`` a derived, unique id.

    One statement gives every copy its final id, so a ``--sql`` script runs it once and
    ends where the online upgrade does. Online it is repeated until it renames nothing:
    on PostgreSQL a writer of the previous version may add a copy meanwhile.
    """
    if steps.is_offline():
        op.execute(_RENAME_DUPLICATES)
        return
    bind = op.get_bind()
    while True:
        renamed = bind.execute(text(_RENAME_DUPLICATES)).rowcount
        if renamed:
            log.info("renamed %d duplicate event ids", renamed)
        if not renamed:
            return


# -- r0002: what legacy rows must be before the upgrade touches them ---------------------

#: Columns every legacy row must have a value in: a legacy table may declare them
#: nullable, and the store can neither number nor replay such a row.
REQUIRED_COLUMNS = ("session_id", "event_id", "timestamp")
_MISSING = " OR ".join(f"{column} IS NULL" for column in REQUIRED_COLUMNS)
# Statements from the constants above only (no input reaches them).
_NULL_IDS = {
    column: "SELECT id FROM events WHERE COLUMN IS NULL ORDER BY id".replace("COLUMN", column)
    for column in REQUIRED_COLUMNS
}


def _pg_refusal(condition: str, message: str) -> str:
    """A script's PL/pgSQL block that stops it, naming the first rows matching
    ``condition``; ``message`` has one ``%`` for their ids. Both are constants of this
    module (no input reaches them)."""
    return (
        """DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM events WHERE CONDITION) THEN
        RAISE EXCEPTION 'MESSAGE',
            (SELECT string_agg(id::text, ', ')
               FROM (SELECT id FROM events WHERE CONDITION ORDER BY id LIMIT SHOWN) AS bad);
    END IF;
END
$$""".replace("CONDITION", condition)
        .replace("MESSAGE", message)
        .replace("SHOWN", str(SHOWN_IDS))
    )


def _sqlite_refusal(label: str, condition: str) -> str:
    """A script's statement that stops it at the first row matching ``condition``;
    ``label`` says why, in the comment and the text it fails on. Both are constants of
    this module (no input reaches them).

    A SQLite script cannot raise an error of its own outside a trigger: json() of text
    that is not JSON fails with "malformed JSON" and stops the script there.
    """
    return """-- stops with 'malformed JSON' if a legacy row is one the upgrade refuses (LABEL);
-- list those rows with this SELECT, selecting id instead
SELECT json('LABEL: events.id ' || id) FROM events WHERE CONDITION""".replace(
        "LABEL", label
    ).replace("CONDITION", condition)


_PG_REFUSE_MISSING = _pg_refusal(
    _MISSING,
    "legacy rows have no session_id, event_id or timestamp (NULL): events.id %; nothing "
    "was changed: fill in or delete them, then run the upgrade again",
)
_SQLITE_REFUSE_MISSING = _sqlite_refusal("no session_id, event_id or timestamp", _MISSING)


def check_required() -> None:
    """Every legacy row must have a ``session_id``, an ``event_id`` and a ``timestamp``,
    or the upgrade stops before changing anything, naming the rows by column.

    Runs first in r0002 (before :func:`check_data`, which may change rows). Online, only
    columns the legacy table declares nullable are scanned; a ``--sql`` script checks
    them all.
    """
    if steps.is_offline():
        op.execute(_PG_REFUSE_MISSING if steps.is_postgresql() else _SQLITE_REFUSE_MISSING)
        return
    bind = op.get_bind()
    nullable = [
        column["name"]
        for column in inspect(bind).get_columns("events")
        if column["name"] in REQUIRED_COLUMNS and column["nullable"]
    ]
    if not nullable:
        return
    missing: dict[str, list[int]] = {}
    rows: set[int] = set()
    for column in nullable:
        ids = [row[0] for row in bind.exec_driver_sql(_NULL_IDS[column])]
        if ids:
            missing[column] = ids
            rows.update(ids)
    if missing:
        where = "; ".join(f"{column} in events.id {_shown(ids)}" for column, ids in missing.items())
        raise SchemaError(
            f"{len(rows)} legacy row(s) have no value (NULL) where the store needs one: "
            f"{where}. No row or table was changed (at most, the database was stamped "
            "0001, the legacy baseline). Fill in or delete those rows and run the upgrade "
            "again"
        )


# A timestamp the store can hold: a number whose whole part fits a BIGINT. PostgreSQL
# (double precision, real, numeric): NaN sorts above every number, so it fails the
# comparison as Infinity and 1e30 do. SQLite: an integer, or a real in range; text or
# a BLOB ('notanumber') would become 0, and Inf or 1e30 9223372036854775807.
_PG_BAD_TIMESTAMP = (
    "timestamp IS NOT NULL AND NOT (trunc(timestamp) >= -9223372036854775808 "
    "AND trunc(timestamp) < 9223372036854775808)"
)
_SQLITE_BAD_TIMESTAMP = (
    "timestamp IS NOT NULL AND (typeof(timestamp) NOT IN ('integer', 'real') "
    "OR (typeof(timestamp) = 'real' AND NOT (timestamp >= -9223372036854775808.0 "
    "AND timestamp < 9223372036854775808.0)))"
)
# Statements from the constants above only (no input reaches them).
_BAD_TIMESTAMP_IDS = "SELECT id FROM events WHERE BAD ORDER BY id"
_PG_REFUSE_TIMESTAMPS = _pg_refusal(
    _PG_BAD_TIMESTAMP,
    "legacy rows have a timestamp that is not a number of epoch milliseconds a BIGINT "
    "holds (NaN, Infinity, beyond 2^63): events.id %; nothing was changed: fix or "
    "delete them, then run the upgrade again",
)
_SQLITE_REFUSE_TIMESTAMPS = _sqlite_refusal("bad timestamp", _SQLITE_BAD_TIMESTAMP)
_TIMESTAMP_REFUSAL = (
    "{count} legacy row(s) have a timestamp that is not a number of epoch milliseconds "
    "the store can hold (a whole part from -2^63 to 2^63-1; not NaN, Infinity or "
    "text): events.id {ids}. No row or table was changed (at most, the database was "
    "stamped 0001, the legacy baseline). Fix or delete those rows and run the upgrade "
    "again"
)


def check_timestamps() -> None:
    """Every legacy ``timestamp`` must convert to a ``BIGINT`` unchanged but for its
    fraction, or the upgrade stops before changing anything, naming the rows.

    Runs in r0002 after :func:`check_required`; ``invalid_data`` does not change it.
    Online on PostgreSQL a ``bigint`` or ``integer`` column is not scanned (it holds
    nothing else); SQLite's columns hold any type, so it always is.
    """
    postgresql = steps.is_postgresql()
    if steps.is_offline():
        op.execute(_PG_REFUSE_TIMESTAMPS if postgresql else _SQLITE_REFUSE_TIMESTAMPS)
        return
    bind = op.get_bind()
    if postgresql and _pg_timestamp_is_integer(bind):
        return
    condition = _PG_BAD_TIMESTAMP if postgresql else _SQLITE_BAD_TIMESTAMP
    ids = [row[0] for row in bind.exec_driver_sql(_BAD_TIMESTAMP_IDS.replace("BAD", condition))]
    if ids:
        raise SchemaError(_TIMESTAMP_REFUSAL.format(count=len(ids), ids=_shown(ids)))


def _pg_timestamp_is_integer(bind: Connection) -> bool:
    """PostgreSQL: whether ``events.timestamp`` is of an integer type."""
    for column in inspect(bind).get_columns("events"):
        if column["name"] == "timestamp":
            return str(column["type"]).upper() in ("BIGINT", "INTEGER", "SMALLINT")
    return True


def _shown(ids: list[int]) -> str:
    """Ids for a message: the first :data:`SHOWN_IDS`, then ``...``."""
    return ", ".join(str(i) for i in ids[:SHOWN_IDS]) + (" ..." if len(ids) > SHOWN_IDS else "")


# What the store's reader (``eventstore.codec.decode_data``) refuses besides text that
# is not JSON: a number it would read as a float beyond a float's range (1e400: Python
# reads it as infinity), and an integer of more digits than Python converts (4,300 by
# default). Both are valid JSON, so the JSON checks let them through.
#: Smallest magnitude a JSON number with a fraction or an exponent cannot be read as a
#: finite float: 2**1024 - 2**970, halfway between the largest float and 2**1024 (which
#: rounds to the even one, infinity).
FLOAT_LIMIT = 2**1024 - 2**970
#: Most digits of an integer the reader converts (0: no limit), as this process has it.
#: Python before 3.10.7 has no such limit, nor the function that tells it.
_get_int_digits = getattr(sys, "get_int_max_str_digits", None)
INT_DIGITS: int = _get_int_digits() if _get_int_digits is not None else 0

# ``data::json`` is cast again inside: PL/pgSQL only reaches it when the cast passed.
_PG_IS_JSON = """
CREATE OR REPLACE FUNCTION pg_temp.eventstore_numbers_servable(doc json) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    item json;
    literal text;
BEGIN
    CASE json_typeof(doc)
    WHEN 'object' THEN
        FOR item IN SELECT value FROM json_each(doc) LOOP
            IF NOT pg_temp.eventstore_numbers_servable(item) THEN
                RETURN false;
            END IF;
        END LOOP;
    WHEN 'array' THEN
        FOR item IN SELECT json_array_elements(doc) LOOP
            IF NOT pg_temp.eventstore_numbers_servable(item) THEN
                RETURN false;
            END IF;
        END LOOP;
    WHEN 'number' THEN
        literal := ltrim(btrim(doc::text, E' \\t\\n\\r'), '-');
        IF literal ~ '[.eE]' THEN
            BEGIN
                RETURN literal::numeric < FLOAT_LIMIT;
            EXCEPTION WHEN others THEN  -- beyond numeric's range: 0.0 or infinity
                RETURN literal ~ '[eE]-';
            END;
        END IF;
        RETURN INT_DIGITS = 0 OR length(literal) <= INT_DIGITS;
    ELSE
        NULL;
    END CASE;
    RETURN true;
END
$$
"""
_PG_IS_JSON_TEXT = """
CREATE OR REPLACE FUNCTION pg_temp.eventstore_is_json(value text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM value::json;
    RETURN NOT SUSPECT OR pg_temp.eventstore_numbers_servable(value::json);
EXCEPTION WHEN others THEN
    RETURN false;
END
$$
"""
# Only text with a number of a positive exponent of three digits or more, or with a run
# of 200 digits, can hold such a number (a float beyond 1.8e308 with an exponent under
# 100 has 210 digits before its point); the walk over the values is for those rows
# alone (about 20 us a row). The first pattern skips ids in hex ("9f1c2e400"); the
# second, the costlier, runs on long rows only. VALUE is the text tested.
_PG_SUSPECT = (
    "(VALUE ~ '(^|[^0-9A-Za-z])[0-9.]+[eE]\\+?[0-9]{3}' "
    "OR (octet_length(VALUE) >= 200 AND VALUE ~ '[0-9]{100}[0-9]{100}'))"
)
#: The two functions a PostgreSQL check creates (one statement each).
_PG_IS_JSON_FUNCTIONS = tuple(
    statement.replace("FLOAT_LIMIT", str(FLOAT_LIMIT))
    .replace("INT_DIGITS", str(INT_DIGITS))
    .replace("SUSPECT", _PG_SUSPECT.replace("VALUE", "value"))
    for statement in (_PG_IS_JSON, _PG_IS_JSON_TEXT)
)
# One pass over every row: the cast fails on text that is not JSON; the numbers are
# walked only in suspect rows.
_PG_COUNT_BAD = (
    "SELECT count(*) FROM events WHERE data::json IS NULL OR (SUSPECT "
    "AND NOT pg_temp.eventstore_numbers_servable(data::json))"
).replace("SUSPECT", _PG_SUSPECT.replace("VALUE", "data::text"))
# ``data::text``: a legacy column may be json or jsonb (r0002 makes it text afterwards).
_PG_NOT_JSON = "data IS NULL OR NOT pg_temp.eventstore_is_json(data::text)"
# Valid UTF-8, as the hex digits of its bytes: what Python's sqlite3 decodes (a lone
# surrogate, an overlong form and anything past U+10FFFF are not).
UTF8_HEX = (
    "^([0-7][0-9A-F]|C[2-9A-F][89AB][0-9A-F]|D[0-9A-F][89AB][0-9A-F]"
    "|E0[AB][0-9A-F][89AB][0-9A-F]|E[1-9A-CEF][89AB][0-9A-F][89AB][0-9A-F]"
    "|ED[89][0-9A-F][89AB][0-9A-F]|F0[9AB][0-9A-F][89AB][0-9A-F][89AB][0-9A-F]"
    "|F[1-3][89AB][0-9A-F][89AB][0-9A-F][89AB][0-9A-F]|F48[0-9A-F][89AB][0-9A-F][89AB][0-9A-F])*$"
)
# SQLite, in the order of the checks (CASE stops at the first that holds):
# - the reader gets a BLOB (or a number) as bytes, not text;
# - SQLite's JSON functions read text only up to a NUL byte: '{"a":2}<NUL>junk' passes
#   json_valid, then fails every read of its stream;
# - Python's sqlite3 cannot decode text that is not UTF-8 (json_valid does not look);
#   only text with a byte beyond ASCII is matched against UTF8_HEX (the sqlite3 shell
#   has REGEXP built in; eventstore migrate gives its connection one);
# - then the numbers, in rows that may hold one the reader refuses.
_SQLITE_NOT_JSON = """CASE
    WHEN data IS NULL OR typeof(data) <> 'text' THEN 1
    WHEN instr(CAST(data AS BLOB), x'00') > 0 THEN 1
    WHEN data GLOB '*[^' || char(1) || '-' || char(127) || ']*'
        AND NOT hex(data) REGEXP 'UTF8_HEX' THEN 1
    WHEN NOT json_valid(data) THEN 1
    WHEN data GLOB '*[0-9][eE]*' OR length(data) > 300 THEN EXISTS (
        SELECT 1 FROM json_tree(data)
        WHERE (type = 'real' AND abs(atom) > 1.7976931348623157e308)
           OR (type = 'integer' AND INT_DIGITS > 0
               AND length(ltrim(data -> fullkey, '-')) > INT_DIGITS))
    ELSE 0
END""".replace("UTF8_HEX", UTF8_HEX).replace("INT_DIGITS", str(INT_DIGITS))
# Data that is not UTF-8 (SQLite): the condition above, its third case.
_SQLITE_NOT_UTF8 = (
    "data IS NOT NULL AND data GLOB '*[^' || char(1) || '-' || char(127) || ']*' "
    "AND NOT hex(data) REGEXP 'UTF8_HEX'"
).replace("UTF8_HEX", UTF8_HEX)
# Statements from the constants above only (no input reaches them).
_PG_BAD_IDS = "SELECT id, data IS NULL FROM events WHERE NOT_JSON ORDER BY id".replace(
    "NOT_JSON", _PG_NOT_JSON
)
_SQLITE_BAD_IDS = "SELECT id, data IS NULL FROM events WHERE NOT_JSON ORDER BY id".replace(
    "NOT_JSON", _SQLITE_NOT_JSON
)
# Whatever the column's type: a json or jsonb column holds numbers the reader refuses
# too (json keeps 1e400 as written, jsonb a 4,301-digit integer), and fix_data_type()
# keeps their text as it is. to_json(data::text) is the JSON string of the text the
# reader would get; PostgreSQL assigns a json value to a text column (as its text) and
# to a jsonb one, where a text value would not be assigned to a json column.
_PG_QUOTE_BAD = """DO $$
BEGIN
    UPDATE events SET data = 'null' WHERE data IS NULL;
    UPDATE events SET data = to_json(data::text) WHERE NOT_JSON;
END
$$""".replace("NOT_JSON", _PG_NOT_JSON)
# Data that is not UTF-8 becomes its SQL literal (X'22FF22'), then a JSON string of it;
# a BLOB (or a number) becomes its text, kept if it is JSON the store reads.
_SQLITE_QUOTE_BAD = (
    "UPDATE events SET data = quote(CAST(data AS BLOB)) WHERE NOT_UTF8".replace(
        "NOT_UTF8", _SQLITE_NOT_UTF8
    ),
    "UPDATE events SET data = CAST(data AS TEXT) WHERE typeof(data) IN ('blob', 'integer', 'real')",
    """UPDATE events
SET data = CASE WHEN data IS NULL THEN 'null' ELSE json_quote(data) END
WHERE NOT_JSON""".replace("NOT_JSON", _SQLITE_NOT_JSON),
)
_PG_REFUSE_BAD = _pg_refusal(
    _PG_NOT_JSON,
    "legacy rows hold data that is not JSON: events.id %; nothing was changed: fix or "
    "delete them, or generate the script with --invalid-data string",
)
_SQLITE_REFUSE_BAD = _sqlite_refusal("not JSON", _SQLITE_NOT_JSON)

_REFUSAL = (
    "{count} legacy row(s) hold data that is not JSON (RFC 8259), which the store could "
    "not replay: events.id {ids}. (The store reads UTF-8 text without NUL bytes, "
    "numbers within a float's range and integers of {digits}; a SQLite "
    "BLOB is not text.) No row or table was changed (at most, the database "
    "was stamped 0001, the legacy baseline). Fix or delete those rows and run the "
    "upgrade again, or re-run it with --invalid-data string (alembic: -x "
    "invalid_data=string) to keep each such data as a JSON string of its text (and "
    "missing data, NULL, as JSON null)"
)


def check_data() -> None:
    """Every legacy row's ``data`` must be JSON, or the upgrade stops before changing
    anything (option ``invalid_data=refuse``, the default), naming the rows; with
    ``invalid_data=string`` each such ``data`` becomes the JSON string of its text, and
    a NULL one JSON ``null``.

    Runs in r0002 after :func:`check_required`, before any other change (on PostgreSQL
    in an :func:`steps.autocommit` block: a failed cast there aborts no transaction). On
    PostgreSQL a single pass casts every row to ``json``; only if one fails are the rows
    sought one by one.
    """
    mode = steps.options().invalid_data
    postgresql = steps.is_postgresql()
    if steps.is_offline():
        _check_data_offline(mode, postgresql)
        return
    bind = op.get_bind()
    if postgresql:
        for statement in _PG_IS_JSON_FUNCTIONS:
            bind.exec_driver_sql(statement)
        try:
            bad = bind.exec_driver_sql(_PG_COUNT_BAD).scalar_one()
        except DBAPIError as exc:  # invalid_text_representation: at least one bad row
            if steps.sqlstate(exc) not in ("22P02", "22032"):
                raise
            bad = 1
        if not bad:
            return
    else:
        _sqlite_regexp(bind)
    rows = list(bind.exec_driver_sql(_PG_BAD_IDS if postgresql else _SQLITE_BAD_IDS))
    if not rows:
        return
    if mode == "refuse":
        ids = [row[0] for row in rows]
        digits = f"up to {INT_DIGITS} digits" if INT_DIGITS else "any length"
        raise SchemaError(_REFUSAL.format(count=len(ids), ids=_shown(ids), digits=digits))
    for statement in (_PG_QUOTE_BAD,) if postgresql else _SQLITE_QUOTE_BAD:
        bind.exec_driver_sql(statement)
    quoted = [row[0] for row in rows if not row[1]]
    null = [row[0] for row in rows if row[1]]
    if quoted:
        log.warning(
            "kept the data of %d legacy row(s) that was not JSON as JSON strings: events.id %s",
            len(quoted),
            _shown(quoted),
        )
    if null:
        log.warning(
            "%d legacy row(s) had no data (NULL); they now hold JSON null: events.id %s",
            len(null),
            _shown(null),
        )


def _check_data_offline(mode: str, postgresql: bool) -> None:
    """A script's check of the data: the same conditions, as statements of the script."""
    if postgresql:
        statements: tuple[str, ...] = (
            *_PG_IS_JSON_FUNCTIONS,
            _PG_QUOTE_BAD if mode == "string" else _PG_REFUSE_BAD,
        )
    else:
        statements = _SQLITE_QUOTE_BAD if mode == "string" else (_SQLITE_REFUSE_BAD,)
    for statement in statements:
        op.execute(statement)


def _sqlite_regexp(bind: Connection) -> None:
    """Give the SQLite connection the ``REGEXP`` the sqlite3 shell has built in (the
    data check matches text beyond ASCII against :data:`UTF8_HEX` with it)."""
    bind.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
        "regexp", 2, _regexp, deterministic=True
    )


def _regexp(pattern: str, value: str | None) -> bool | None:
    """SQLite's ``value REGEXP pattern``: whether the pattern matches in ``value``."""
    return None if value is None else re.search(pattern, value) is not None


def fix_data_type() -> None:
    """PostgreSQL: a legacy ``data`` column of type ``json`` or ``jsonb`` becomes ``text``.

    The store writes and reads ``data`` as text (a ``jsonb`` column would also drop
    ``\\u0000`` and reorder keys). ``data::text`` is the JSON the column holds: a
    ``json`` value's text as written, a ``jsonb`` value's normalised text. A table
    rewrite, under the exclusive lock r0002 holds, so only for such tables. Writers of
    the previous version that send text, or a ``json``/``jsonb`` value (cast to text on
    assignment), keep working. Must run after :func:`check_data` (which reads either
    type) and before anything else touches ``data``.
    """
    if not steps.is_postgresql():
        return
    op.execute(
        "DO $$\nBEGIN\n"
        "    IF (SELECT data_type FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'events' AND column_name = 'data') "
        "IN ('json', 'jsonb') THEN\n"
        "        ALTER TABLE events ALTER COLUMN data TYPE text USING data::text;\n"
        "    END IF;\nEND\n$$"
    )


def require_values() -> None:
    """PostgreSQL: the legacy columns become ``NOT NULL`` where a legacy table declared
    them nullable (rows with NULLs were refused, NULL data made JSON ``null``, by then).

    One ``ALTER TABLE`` under the exclusive lock r0002 holds: it scans the table only
    for a column that was nullable. Writers of the previous version that insert a NULL
    fail from then on instead of adding a row the store cannot replay. SQLite gets the
    same in r0005's table rebuild.
    """
    if not steps.is_postgresql():
        return
    columns = (*REQUIRED_COLUMNS, "data")
    op.execute("ALTER TABLE events " + ", ".join(f"ALTER COLUMN {c} SET NOT NULL" for c in columns))


def fix_timestamps() -> None:
    """Legacy timestamps become whole epoch milliseconds in a ``BIGINT`` column.

    Legacy writers computed ``time.time() * 1000``, so a legacy table may hold fractional
    values, or declare the column ``REAL``/``double precision``. PostgreSQL: a column of
    another type is converted (``ALTER COLUMN ... TYPE bigint``, truncating: a table
    rewrite under the exclusive lock r0002 holds, so only for such tables). SQLite:
    fractional values are truncated here; r0005's table rebuild declares the column
    ``BIGINT``.
    """
    if steps.is_postgresql():
        op.execute(
            "DO $$\nBEGIN\n"
            "    IF (SELECT data_type FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'events' AND column_name = 'timestamp') "
            "<> 'bigint' THEN\n"
            "        ALTER TABLE events ALTER COLUMN timestamp TYPE bigint "
            "USING trunc(timestamp)::bigint;\n"
            "    END IF;\nEND\n$$"
        )
        return
    op.execute(
        "UPDATE events SET timestamp = CAST(timestamp AS INTEGER) WHERE typeof(timestamp) = 'real'"
    )


def timestamp_is_integer() -> bool:
    """SQLite, online: whether ``events.timestamp`` is declared an integer type."""
    for column in inspect(op.get_bind()).get_columns("events"):
        if column["name"] == "timestamp":
            return "INT" in str(column["type"]).upper()
    return True
