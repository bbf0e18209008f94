"""Everything PostgreSQL-specific: trigger DDL, upsert, the append SQL, engine options."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from eventstore.errors import InvalidInputError
from eventstore.sql import AppendHeads, AppendRows, StreamCounts

__all__ = [
    "APPEND",
    "CANCELLED_APPEND_ROLLS_BACK",
    "CREATE_TRIGGERS",
    "CURSOR_OPTIONS",
    "DROP_PLACEHOLDERS",
    "DROP_TRIGGERS",
    "EXPORT",
    "EXPORT_SESSIONS",
    "LOCK_FOR_STORE_WIDE_CAP",
    "LOCK_HEADS",
    "ONE_EVENT_LOOP",
    "PING_IDLE_SECONDS",
    "READ_OPTIONS",
    "REPLAY_AFTER",
    "REPLAY_AFTER_LIMITED",
    "ROW_LOCKS",
    "STREAM",
    "STREAM_LIMITED",
    "append_events",
    "append_in_transaction",
    "configure_engine",
    "connect_args_from_query",
    "connect_driver",
    "driver_errors",
    "drop_placeholders",
    "fetch",
    "is_deadlock",
    "is_unique_violation",
    "lock_heads",
    "replay_params",
    "stream_params",
    "upsert",
]

#: asyncpg connections belong to the event loop that made them: a store is used in one loop.
ONE_EVENT_LOOP = True

#: A write cancelled mid-statement leaves its connection in an unknown state: discarded.
CANCELLED_APPEND_ROLLS_BACK = False

#: Row locks: a batch that is not appends only locks its head rows first, sorted, with
#: :data:`LOCK_HEADS` (see ``eventstore.sql.store``), so that it never deadlocks with
#: another batch.
ROW_LOCKS = True

#: Reads are single statements: one snapshot each, no BEGIN/COMMIT round trips.
READ_OPTIONS: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}

#: Taken by a store-wide cap change before it trims: it waits for the appends in flight
#: and holds new ones back until it commits. Appends read the cap when their statement
#: starts; without the lock one could commit under the old cap after the trim, and the
#: trim's own view of a head could be older than the head it then moves. Readers are not
#: blocked. Per-stream changes lock only that stream's head row instead.
LOCK_FOR_STORE_WIDE_CAP: str | None = "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"

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


# One statement, one round trip, one prepared statement for every batch size (arrays, not
# a VALUES list): reserve seqs on the head rows, insert the events with seqs computed
# from the reserved range, return the heads. The head rows are upserted in sorted order,
# so concurrent batches lock them in the same order (no deadlocks); the events keep the
# batch's order. The statement-level trim trigger fires once, after both inserts.
#
# $1, "now", is read before the head's lock is taken: a writer that waited for the lock
# may hold an older "now" than the one that committed before it, and the clock may step
# back. So a head's updated_at never goes back (GREATEST under the row lock), and rows
# stored "now" (ts NULL) take it: their timestamps never decrease along seq.
APPEND = """
WITH heads AS (
    INSERT INTO event_streams AS h
        (session_id, stream_id, last_seq, first_seq, created_at, updated_at)
    SELECT s.session_id, s.stream_id, s.added, 1, $1, $1
    FROM unnest($2::text[], $3::text[], $4::bigint[]) AS s(session_id, stream_id, added)
    ORDER BY s.session_id, s.stream_id
    ON CONFLICT (session_id, stream_id)
    DO UPDATE SET last_seq = h.last_seq + EXCLUDED.last_seq,
                  updated_at = GREATEST(h.updated_at, EXCLUDED.updated_at)
    RETURNING h.session_id, h.stream_id, h.last_seq, h.updated_at
), appended AS (
    INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp)
    SELECT r.session_id, r.stream_id, heads.last_seq - r.later, r.event_id, r.data,
           COALESCE(r.ts, heads.updated_at)
    FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[])
         WITH ORDINALITY AS r(session_id, stream_id, event_id, data, ts, later, position)
    JOIN heads ON heads.session_id = r.session_id AND heads.stream_id = r.stream_id
    ORDER BY r.position
)
SELECT session_id, stream_id, last_seq, updated_at FROM heads
"""


# The general path's first statement: every head row the batch touches, taken in one pass
# in the order APPEND takes them. Existing heads are locked (DO UPDATE ... WHERE false
# locks the row and writes nothing); missing ones are created as placeholders, last_seq 0,
# so a head the batch will create is claimed in its place in that order too. Locking only
# the existing heads first and creating the rest later deadlocked: this batch held head z
# and waited to create head y, while a concurrent APPEND that had just created y (sorted
# first) waited for z. RETURNING gives exactly the placeholders (rows not updated are not
# returned): DROP_PLACEHOLDERS removes those that got no events before the commit, so no
# empty stream is ever seen. $4: sessions cleared whole, whose existing heads count too.
LOCK_HEADS = """
INSERT INTO event_streams AS h
    (session_id, stream_id, last_seq, first_seq, created_at, updated_at)
SELECT k.session_id, k.stream_id, 0, 1, $1, $1
FROM (
    SELECT s.session_id, s.stream_id
    FROM unnest($2::text[], $3::text[]) AS s(session_id, stream_id)
    UNION
    SELECT e.session_id, e.stream_id FROM event_streams e WHERE e.session_id = ANY($4::text[])
) AS k
ORDER BY k.session_id, k.stream_id
ON CONFLICT (session_id, stream_id) DO UPDATE SET last_seq = h.last_seq WHERE false
RETURNING h.session_id, h.stream_id
"""

DROP_PLACEHOLDERS = """
DELETE FROM event_streams AS h
USING unnest($1::text[], $2::text[]) AS k(session_id, stream_id)
WHERE h.session_id = k.session_id AND h.stream_id = k.stream_id AND h.last_seq = 0
"""


async def lock_heads(
    conn: AsyncConnection,
    streams: list[tuple[str, str]],
    sessions: list[str],
    now: int,
) -> set[tuple[str, str]]:
    """Lock the heads of ``streams`` and of every stream of ``sessions``, in APPEND's
    order, creating missing heads of ``streams`` as placeholders; return those created.

    In the transaction SQLAlchemy began on ``conn``. The placeholders must go through
    :func:`drop_placeholders` before the commit.
    """
    result = await conn.exec_driver_sql(
        LOCK_HEADS,
        (
            now,
            [session_id for session_id, _ in streams],
            [stream_id for _, stream_id in streams],
            sessions,
        ),
    )
    return {(row.session_id, row.stream_id) for row in result}


async def drop_placeholders(conn: AsyncConnection, created: set[tuple[str, str]]) -> None:
    """Delete the heads :func:`lock_heads` created that are still empty (no event was
    appended to them)."""
    keys = sorted(created)
    await conn.exec_driver_sql(
        DROP_PLACEHOLDERS,
        ([session_id for session_id, _ in keys], [stream_id for _, stream_id in keys]),
    )


def _append_params(
    counts: StreamCounts,
    rows: AppendRows,
    now: int,
) -> list[Any]:
    columns = list(zip(*rows, strict=True))
    return [
        now,
        [session_id for (session_id, _), _ in counts],
        [stream_id for (_, stream_id), _ in counts],
        [count for _, count in counts],
        *(list(column) for column in columns),
    ]


async def append_events(
    conn: AsyncConnection,
    counts: StreamCounts,
    rows: AppendRows,
    now: int,
) -> AppendHeads:
    """Reserve seqs and insert ``rows``; return each stream's head afterwards.

    In the transaction SQLAlchemy began on ``conn``. ``counts``, ``rows`` and the heads
    are as :data:`eventstore.sql.StreamCounts`, :data:`eventstore.sql.AppendRows` and
    :data:`eventstore.sql.AppendHeads` say.
    """
    result = await conn.exec_driver_sql(APPEND, tuple(_append_params(counts, rows, now)))
    return {(row.session_id, row.stream_id): (row.last_seq, row.updated_at) for row in result}


async def append_in_transaction(
    pooled: PoolProxiedConnection,
    statements: list[tuple[StreamCounts, AppendRows]],
    now: int,
) -> list[AppendHeads]:
    """:func:`append_events` for each of ``statements``, in one transaction of its own, on
    a pooled connection's asyncpg; the heads after each.

    BEGIN, :data:`APPEND` (once per part), COMMIT, with asyncpg's own prepared
    statement: SQLAlchemy's transaction and adapted cursor cost as much again as the
    three round trips. A
    failure is rolled back and raised as :func:`fetch` raises it; one that could not be
    rolled back says the connection is gone, so it never goes back to the pool inside
    a transaction. (Plain BEGIN and COMMIT, not asyncpg's Transaction: a connection on
    which one was left unfinished would make its next transaction a savepoint.)
    """
    driver = pooled.driver_connection
    assert driver is not None
    try:
        await driver.execute("BEGIN")
        found = [
            await driver.fetch(APPEND, *_append_params(counts, rows, now))
            for counts, rows in statements
        ]
        await driver.execute("COMMIT")
    except Exception as exc:
        error = _driver_error(APPEND, None, exc)
        if not await _rolled_back(driver):
            error.connection_invalidated = True
        raise error from exc
    return [
        {(session_id, stream_id): (last, stamp) for session_id, stream_id, last, stamp in part}
        for part in found
    ]


async def _rolled_back(driver: Any) -> bool:
    """Roll back what a failed write left open; ``False`` if the connection is unusable."""
    if driver.is_closed():
        return False
    if not driver.is_in_transaction():
        return True
    try:
        await driver.execute("ROLLBACK")
    except Exception:
        return False
    return True


# Reads go to asyncpg itself (its own prepared-statement cache): SQLAlchemy's adapted
# cursor cost several times the indexed query on every replay.
REPLAY_AFTER = (
    "SELECT event_id, seq, data, timestamp FROM events "
    "WHERE session_id = $1 AND stream_id = $2 AND seq >= "
    "(SELECT seq FROM events WHERE session_id = $1 AND event_id = $3 AND stream_id = $2) "
    "ORDER BY seq"
)
REPLAY_AFTER_LIMITED = REPLAY_AFTER + " LIMIT $4"
STREAM = (
    "SELECT event_id, seq, data, timestamp FROM events "
    "WHERE session_id = $1 AND stream_id = $2 ORDER BY seq"
)
STREAM_LIMITED = STREAM + " LIMIT $3"
# An export's cursor, on asyncpg too: it fetches exactly as many rows as asked for.
EXPORT = (
    "SELECT session_id, stream_id, seq, event_id, data, timestamp FROM events "
    "ORDER BY session_id, stream_id, seq"
)
EXPORT_SESSIONS = (
    "SELECT session_id, stream_id, seq, event_id, data, timestamp FROM events "
    "WHERE session_id = ANY($1::text[]) ORDER BY session_id, stream_id, seq"
)

# Server errors that mean the connection is gone: admin/crash shutdown, cannot connect
# now; and SQLSTATE class 08, connection exceptions.
_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})


def replay_params(session_id: str, stream_id: str, cursor: str) -> list[Any]:
    """The parameters of :data:`REPLAY_AFTER` (``LIMIT``'s goes last)."""
    return [session_id, stream_id, cursor]


def stream_params(session_id: str, stream_id: str) -> list[Any]:
    """The parameters of :data:`STREAM` (``LIMIT``'s goes last)."""
    return [session_id, stream_id]


async def fetch(pooled: PoolProxiedConnection, statement: str, params: list[Any]) -> list[Any]:
    """Run a read on the asyncpg connection of a pooled connection: its rows.

    A failure comes back as SQLAlchemy's :class:`DBAPIError`, as from any other statement,
    with ``connection_invalidated`` set when it means the connection is gone.
    """
    driver = pooled.driver_connection
    assert driver is not None
    try:
        return list(await driver.fetch(statement, *params))
    except Exception as exc:
        raise _driver_error(statement, params, exc) from exc


def driver_errors() -> tuple[type[Exception], ...]:
    """asyncpg's own exceptions, for where SQLAlchemy lets them through unwrapped (the
    fetches of a server-side cursor)."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def _driver_error(statement: str, params: Any, error: Exception) -> DBAPIError:
    """An asyncpg error as SQLAlchemy's, so callers handle one kind."""
    import asyncpg

    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(statement, params, error)
    return DBAPIError(statement, params, error, connection_invalidated=_connection_lost(error))


def _connection_lost(error: Exception) -> bool:
    import asyncpg

    state = str(getattr(error, "sqlstate", "") or "")
    # InternalClientError: the protocol is in a state asyncpg did not expect (one left by
    # a server that went away mid-reply); nothing more can run on this connection.
    lost_kinds = (
        OSError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        asyncpg.PostgresConnectionError,
    )
    return isinstance(error, lost_kinds) or state in _LOST_STATES or state.startswith("08")


#: A pooled connection that sat unused for longer than this is pinged before it is used.
PING_IDLE_SECONDS = 1.0

_IDLE_SINCE = "eventstore_idle_since"


#: What asyncpg (like libpq) takes as ``target_session_attrs``.
_SESSION_ATTRS = frozenset(
    {"any", "primary", "standby", "prefer-standby", "read-write", "read-only"}
)

#: Query parameters SQLAlchemy's asyncpg adapter reads itself (the rest it passes to
#: ``asyncpg.connect`` as keywords, which takes none of libpq's).
_ADAPTER_QUERY = frozenset({"prepared_statement_cache_size"})


def connect_args_from_query(
    url: URL, connect_args: Mapping[str, Any]
) -> tuple[URL, dict[str, Any]]:
    """The URL without its libpq-style query, and ``connect_args`` that carry it.

    ``?sslmode=require``, ``?application_name=...``, ``?options=-c...`` are how
    PostgreSQL URLs are written, but SQLAlchemy hands every query parameter to
    ``asyncpg.connect`` as a keyword, which refuses them all (a raw ``TypeError`` at the
    first connect). asyncpg reads them from a DSN instead: ``sslmode`` and the other
    ``ssl*`` settings, ``target_session_attrs``, ``passfile``; the rest go to the server
    as settings, which rejects a name it does not know. ``connect_timeout`` becomes
    asyncpg's ``timeout``.
    """
    given = {name: value for name, value in url.query.items() if name not in _ADAPTER_QUERY}
    if not given:
        return url, dict(connect_args)
    repeated = sorted(name for name, value in given.items() if not isinstance(value, str))
    if repeated:
        raise InvalidInputError(f"the database URL gives {', '.join(repeated)} more than once")
    query = {name: value for name, value in given.items() if isinstance(value, str)}
    if "dsn" in connect_args:
        raise InvalidInputError("give PostgreSQL settings in the URL's query or as a dsn, not both")
    args = dict(connect_args)
    if (timeout := query.pop("connect_timeout", None)) is not None:
        try:
            seconds = float(timeout)
        except ValueError:
            raise InvalidInputError(
                f"connect_timeout in the database URL must be seconds, not {timeout!r}"
            ) from None
        if not seconds < float("inf"):
            raise InvalidInputError(
                f"connect_timeout in the database URL must be finite seconds, not {timeout!r}"
            )
        if seconds > 0:
            # libpq's 0 (or less) is "no limit of its own": asyncpg's default stays.
            args["timeout"] = seconds
    attrs = query.get("target_session_attrs")
    if attrs is not None and attrs not in _SESSION_ATTRS:
        raise InvalidInputError(
            f"target_session_attrs in the database URL must be one of "
            f"{', '.join(sorted(_SESSION_ATTRS))}, not {attrs!r}"
        )
    if (password := query.pop("password", None)) is not None:
        if url.password is not None or "password" in args:
            raise InvalidInputError("the database URL gives the password more than once")
        # A keyword, not part of a DSN string that could end up in a message.
        args["password"] = password
    if query:
        args["dsn"] = "postgresql://?" + urlencode(query)
    kept = {name: value for name, value in url.query.items() if name in _ADAPTER_QUERY}
    return url.set(query=kept), args


def configure_engine(engine: AsyncEngine, *, ping_idle_after: float | None) -> None:
    """Ping a pooled connection before use only if it sat idle ``ping_idle_after`` seconds.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout, and its asyncpg ping is three
    round trips (BEGIN, an empty query, ROLLBACK): as many as the whole write
    transaction, which doubled its time. A connection returned moments ago is alive
    unless the server went away in between; then the statement fails as a disconnect,
    SQLAlchemy discards the pool's connections, and the caller gets
    ``StoreUnavailableError`` with nothing written (the worker retries it). Connections
    left idle -- where servers, proxies and firewalls drop them -- are still pinged, and
    a dead one is replaced before use. ``None`` installs nothing.
    """
    if ping_idle_after is None:
        return
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < ping_idle_after:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool discards this connection and checks out another.
                raise DisconnectionError(f"pooled connection is gone: {exc}") from exc
            raise


async def connect_driver(*args: Any, **kwargs: Any) -> Any:
    """``asyncpg.connect`` as SQLAlchemy's dialect calls it (its ``async_creator_fn``),
    never cut short.

    A caller cancelled mid-connect (a request timeout) gets its ``CancelledError`` at
    once, while the connect runs to its end and its connection is closed: cut short,
    asyncpg's SSL negotiation leaves a future failed with "unexpected connection_lost()
    call" that nothing reads, and asyncio logs "Future exception was never retrieved"
    with a traceback for each.
    """
    import asyncpg

    connecting = asyncio.ensure_future(asyncpg.connect(*args, **kwargs))
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        connecting.add_done_callback(_close_unused)
        raise


def _close_unused(connecting: asyncio.Future[Any]) -> None:
    if connecting.cancelled() or connecting.exception() is not None:
        return
    connecting.result().terminate()


def is_deadlock(error: DBAPIError) -> bool:
    """Whether the server broke a deadlock by failing this transaction (all of it was
    rolled back: rerunning it is safe)."""
    return getattr(error.orig, "sqlstate", None) == "40P01"


def is_unique_violation(error: DBAPIError) -> bool:
    """Whether a unique index refused a row (a rerun that looks the row up may succeed)."""
    return getattr(error.orig, "sqlstate", None) == "23505"
