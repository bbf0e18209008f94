"""Everything SQLite-specific: trigger DDL, upsert, the append SQL, connection setup."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as upsert
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, PoolResetState
from sqlalchemy.util import await_

from eventstore.errors import InvalidInputError
from eventstore.sql import AppendHeads, AppendRows, StreamCounts

__all__ = [
    "BUSY_SLICE_MS",
    "CANCELLED_APPEND_ROLLS_BACK",
    "CREATE_TRIGGERS",
    "CURSOR_OPTIONS",
    "DROP_TRIGGERS",
    "INSERT_EVENT",
    "LOCK_FOR_STORE_WIDE_CAP",
    "ONE_EVENT_LOOP",
    "READ_OPTIONS",
    "REPLAY_AFTER",
    "REPLAY_AFTER_LIMITED",
    "ROW_LOCKS",
    "STREAM",
    "STREAM_LIMITED",
    "FileMovedError",
    "append_events",
    "append_in_transaction",
    "check_synchronous",
    "configure_engine",
    "connect_driver",
    "driver_errors",
    "fetch",
    "is_deadlock",
    "is_unique_violation",
    "replay_params",
    "reserve_seqs",
    "stream_params",
    "upsert",
]


def connect_driver(*args: Any, **kwargs: Any) -> Awaitable[aiosqlite.Connection]:
    """``aiosqlite.connect`` as SQLAlchemy's dialect calls it (its ``async_creator_fn``).

    Unlike aiosqlite, a connect that fails (a directory, a read-only file system) returns
    only once aiosqlite's thread has ended. That thread's last act is a call into the
    event loop; a command that reports the error and exits at once would otherwise close
    the loop first, and the thread prints a ``RuntimeError`` traceback after the
    command's one-line error.
    """
    connection = aiosqlite.connect(*args, **kwargs)
    # As SQLAlchemy does for its own connects: a stuck thread never holds up exit.
    connection._thread.daemon = True
    return _connected(connection)


def _opened_read_only(error: BaseException) -> bool:
    """Whether ``error`` says its connection can never write.

    SQLite opens a file it may not write read-only, and the connection stays so after
    the file becomes writable again; a file deleted or moved under an open connection
    gives the same error. Either way, only a new connection can write.
    """
    return "attempt to write a readonly database" in str(error)


def _driver_error(statement: str, params: Any, error: sqlite3.Error) -> DBAPIError:
    """The error SQLAlchemy would have raised, so callers handle one kind; a connection
    that can never write is marked invalidated, so the pool replaces it."""
    wrapped = DBAPIError.instance(statement, params, error, sqlite3.Error)
    assert isinstance(wrapped, DBAPIError)  # an sqlite3.Error always gives one
    if _opened_read_only(error):
        wrapped.connection_invalidated = True
    return wrapped


class FileMovedError(sqlite3.OperationalError):
    """The file at the database's path is no longer the file the store opened.

    In WAL mode SQLite does not notice (it checks ``SQLITE_READONLY_DBMOVED`` only in
    rollback-journal modes): a write to a file deleted, renamed away or replaced under
    an open connection commits to the orphaned inode, and is lost when the connection
    closes. So the store checks before every COMMIT and every read, and refuses.
    Transient: the file moved back in place (same inode) makes the same write succeed,
    and a retry of a refused write is always safe, as nothing was committed.
    """

    #: Read by the store's error mapping: this is a StoreUnavailableError.
    eventstore_transient = True


@dataclass(frozen=True, slots=True)
class _File:
    """The database file an engine's connections opened: its path and (st_dev, st_ino)."""

    path: str
    identity: tuple[int, int]


#: Where a pooled connection's record keeps its _File (none: an in-memory database).
_FILE = "eventstore_sqlite_file"


def _identity(path: str) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_dev, found.st_ino


def _check_file(file: _File) -> None:
    """Raise :class:`FileMovedError` unless ``file.path`` still is the file opened there.

    One ``stat`` (a microsecond or two): SQLite's own check for a moved file compares
    the same two numbers. No other file can get the inode while a connection holds it
    open (the pool keeps its connections when the file moves), so an equal pair means
    the same file.
    """
    try:
        if _identity(file.path) == file.identity:
            return
        happened = "was replaced by another file"
    except FileNotFoundError:
        happened = "was deleted or moved away"
    except OSError as exc:
        happened = f"cannot be checked ({exc.strerror or exc}), and may have moved"
    raise FileMovedError(
        f"the SQLite database file {file.path!r} {happened} while the store had it open; "
        "nothing was written or read. Writing on would commit to a file no longer at that "
        "path, to be lost. Move the original file back to that path, or reopen the store "
        "to use what is there now"
    )


def driver_errors() -> tuple[type[Exception], ...]:
    """sqlite3's own exceptions, for where SQLAlchemy lets them through unwrapped."""
    return (sqlite3.Error,)


async def _connected(connection: aiosqlite.Connection) -> aiosqlite.Connection:
    try:
        return await connection
    except (TypeError, ValueError) as exc:
        # sqlite3.connect refusing a value of connect_args ({"timeout": "x"}).
        await asyncio.to_thread(connection._thread.join, 1.0)
        raise InvalidInputError(f"unusable connect_args for SQLite: {exc}") from None
    except BaseException:
        await asyncio.to_thread(connection._thread.join, 1.0)
        raise


#: aiosqlite answers whichever event loop asks: a store may outlive a loop.
ONE_EVENT_LOOP = False

#: An append whose caller is cancelled rolls itself back on aiosqlite's thread (see
#: :func:`append_in_transaction`), so its connection can go back to the pool as it is.
CANCELLED_APPEND_ROLLS_BACK = True

#: No row locks: writers are serialised by ``BEGIN IMMEDIATE`` already.
ROW_LOCKS = False

#: Marks the read-only engine: its connections run each SELECT in autocommit mode.
READ_OPTIONS: dict[str, Any] = {"eventstore_read": True}

#: A long read through a cursor (export): no BEGIN IMMEDIATE, so it never blocks writers;
#: the open SELECT is its own consistent snapshot.
CURSOR_OPTIONS: dict[str, Any] = READ_OPTIONS

#: Write transactions are serialised by BEGIN IMMEDIATE already.
LOCK_FOR_STORE_WIDE_CAP: str | None = None

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

# The append goes straight to aiosqlite, inside the transaction SQLAlchemy began: one
# thread hop per statement, where SQLAlchemy's adapted cursor takes three or four
# (cursor, execute, fetch, close) plus its own per-statement Python. Measured on 64-event
# batches, that halved the append (about 4 ms to 2 ms). The SQL is constant text with
# placeholders only.
#: How every write transaction starts: the write lock up front (see configure_engine).
BEGIN = "BEGIN IMMEDIATE"

#: Longest SQLite waits for the write lock at a time while a write begins: its busy wait
#: cannot be interrupted, so a write waits for the lock in slices this long, up to the
#: store's busy timeout, and a write whose caller gave up (a request timeout) notices
#: within one and frees its connection and thread.
BUSY_SLICE_MS = 50
_BUSY_TIMEOUT = "eventstore_sqlite_busy_timeout_ms"
_SQLITE_BUSY = 5


def _begin(conn: sqlite3.Connection, cancelled: threading.Event, busy_timeout_ms: int) -> bool:
    """On aiosqlite's thread: ``BEGIN IMMEDIATE``, waiting up to ``busy_timeout_ms`` for
    the write lock; ``False`` (no transaction open) once ``cancelled`` is set."""
    if cancelled.is_set():
        # Given up while queued behind another call on this thread: each one cancelled
        # in a row would otherwise wait a slice, and the calls queued behind all of them.
        return False
    deadline = time.monotonic() + busy_timeout_ms / 1000
    _run(conn, f"PRAGMA busy_timeout={min(busy_timeout_ms, BUSY_SLICE_MS)}")
    try:
        while True:
            try:
                _run(conn, BEGIN)
            except _StatementError as exc:
                if getattr(exc.error, "sqlite_errorcode", None) != _SQLITE_BUSY:
                    raise
                if cancelled.is_set():
                    return False
                if time.monotonic() >= deadline:
                    raise
                continue
            if cancelled.is_set():
                conn.rollback()
                return False
            return True
    finally:
        # Other statements (a read during a checkpoint) keep the whole timeout.
        _run(conn, f"PRAGMA busy_timeout={busy_timeout_ms}")


INSERT_EVENT = (
    "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


@lru_cache(maxsize=64)
def reserve_seqs(streams: int) -> str:
    """Add each stream's new-event count to its head row (made by its first event).

    ``updated_at`` never goes back: "now" was read before ``BEGIN IMMEDIATE`` waited for
    the write lock, so the writer that committed meanwhile may have stored a later one,
    and the clock may step back. Rows stored "now" take the ``updated_at`` it returns.
    """
    # Only placeholders are spliced in; the values are bound.
    values = ", ".join(["(?, ?, ?, 1, ?, ?)"] * streams)
    return (
        "INSERT INTO event_streams AS h "  # noqa: S608
        "(session_id, stream_id, last_seq, first_seq, created_at, updated_at) "
        f"VALUES {values} "
        "ON CONFLICT (session_id, stream_id) DO UPDATE "
        "SET last_seq = h.last_seq + excluded.last_seq, "
        "updated_at = max(h.updated_at, excluded.updated_at) "
        "RETURNING session_id, stream_id, last_seq, updated_at"
    )


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
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        return await driver._execute(  # type: ignore[no-any-return]
            _reserve_and_insert, driver._conn, counts, rows, now
        )
    except _StatementError as exc:
        raise _driver_error(exc.statement, None, exc.error) from exc.error


async def append_in_transaction(
    pooled: PoolProxiedConnection,
    statements: list[tuple[StreamCounts, AppendRows]],
    now: int,
) -> list[AppendHeads]:
    """:func:`append_events` for each of ``statements``, in one transaction of its own, on
    a pooled connection's driver; the heads after each.

    ``BEGIN IMMEDIATE``, the two statements (per part) and ``COMMIT`` run as one call on
    aiosqlite's thread: one hand-off, where a call per statement handed the transaction
    back and forth four times, and each time it waited for the event loop (busy with
    producers) while holding the write lock. A failure rolls back before it is raised.
    A caller cancelled before the call reaches ``COMMIT`` (say, while ``BEGIN`` waits
    for the write lock) has it roll back instead: a cancelled append leaves nothing.
    """
    driver = pooled.driver_connection
    assert driver is not None
    cancelled = threading.Event()
    try:
        # aiosqlite's _execute (what each of its public calls is built on) runs a function
        # on its thread; its public API has one call per statement.
        return await driver._execute(  # type: ignore[no-any-return]
            _transaction,
            driver._conn,
            statements,
            now,
            cancelled,
            pooled.info.get(_FILE),
            pooled.info.get(_BUSY_TIMEOUT, BUSY_SLICE_MS),
        )
    except BaseException:
        cancelled.set()
        raise


def _transaction(
    conn: sqlite3.Connection,
    statements: list[tuple[StreamCounts, AppendRows]],
    now: int,
    cancelled: threading.Event,
    file: _File | None,
    busy_timeout_ms: int,
) -> list[AppendHeads]:
    """On aiosqlite's thread: the whole append transaction, committed only if ``file``
    (``None``: in memory) is still at its path."""
    try:
        if not _begin(conn, cancelled, busy_timeout_ms):
            return []
        heads = []
        for counts, rows in statements:
            if cancelled.is_set():
                break
            heads.append(_reserve_and_insert(conn, counts, rows, now))
        if cancelled.is_set():
            conn.rollback()
            return []
        try:
            # Last, under the write lock: a file moved while BEGIN waited is seen too.
            if file is not None:
                _check_file(file)
            conn.commit()
        except sqlite3.Error as exc:
            raise _StatementError("COMMIT", exc) from exc
    except BaseException as exc:
        if conn.in_transaction:
            # The pool's reset retries a failed rollback, and discards the connection if
            # that fails too; the error worth raising is the one that got us here.
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
        if isinstance(exc, _StatementError):
            # Converted here, on the thread: converted by the caller, the error's context
            # would be this frame, every row with it, kept while the worker retries.
            raise _driver_error(exc.statement, None, exc.error) from exc.error
        raise
    return heads


class _StatementError(Exception):
    """A statement's sqlite3 error, raised on aiosqlite's thread with the statement."""

    def __init__(self, statement: str, error: sqlite3.Error) -> None:
        self.statement = statement
        self.error = error


def _run(conn: sqlite3.Connection, statement: str, params: Any = ()) -> list[Any]:
    try:
        return conn.execute(statement, params).fetchall()
    except sqlite3.Error as exc:
        raise _StatementError(statement, exc) from exc


def _reserve_and_insert(
    conn: sqlite3.Connection, counts: StreamCounts, rows: AppendRows, now: int
) -> AppendHeads:
    """On aiosqlite's thread: allocate the seqs on the head rows, insert the events."""
    params: list[Any] = []
    for (session_id, stream_id), count in counts:
        params += (session_id, stream_id, count, now, now)
    heads = {
        (session_id, stream_id): (last, stamp)
        for session_id, stream_id, last, stamp in _run(conn, reserve_seqs(len(counts)), params)
    }
    inserted = []
    for session_id, stream_id, event_id, data, ts, later in rows:
        last, stamp = heads[session_id, stream_id]
        inserted.append(
            (session_id, stream_id, last - later, event_id, data, stamp if ts is None else ts)
        )
    _run_many(conn, INSERT_EVENT, inserted)
    return heads


def _run_many(conn: sqlite3.Connection, statement: str, rows: list[Any]) -> None:
    try:
        conn.executemany(statement, rows)
    except sqlite3.Error as exc:
        raise _StatementError(statement, exc) from exc


# Reads go straight to aiosqlite too: one thread hop, where SQLAlchemy's cursor takes
# several (each a thread hand-off, about as long as the whole indexed query).
REPLAY_AFTER = (
    "SELECT event_id, seq, data, timestamp FROM events "
    "WHERE session_id = ? AND stream_id = ? AND seq >= "
    "(SELECT seq FROM events WHERE session_id = ? AND event_id = ? AND stream_id = ?) "
    "ORDER BY seq"
)
REPLAY_AFTER_LIMITED = REPLAY_AFTER + " LIMIT ?"
STREAM = (
    "SELECT event_id, seq, data, timestamp FROM events "
    "WHERE session_id = ? AND stream_id = ? ORDER BY seq"
)
STREAM_LIMITED = STREAM + " LIMIT ?"


def replay_params(session_id: str, stream_id: str, cursor: str) -> list[Any]:
    """The parameters of :data:`REPLAY_AFTER` (``LIMIT``'s goes last)."""
    return [session_id, stream_id, session_id, cursor, stream_id]


def stream_params(session_id: str, stream_id: str) -> list[Any]:
    """The parameters of :data:`STREAM` (``LIMIT``'s goes last)."""
    return [session_id, stream_id]


async def fetch(pooled: PoolProxiedConnection, statement: str, params: list[Any]) -> list[Any]:
    """Run a read on the driver of a pooled connection: its rows, as tuples."""
    driver = pooled.driver_connection
    assert driver is not None
    try:
        # As execute_fetchall, one hop, with the file's check on the thread.
        return await driver._execute(  # type: ignore[no-any-return]
            _fetch_checked, driver._conn, statement, params, pooled.info.get(_FILE)
        )
    except sqlite3.Error as exc:
        raise _driver_error(statement, params, exc) from exc


def _fetch_checked(
    conn: sqlite3.Connection, statement: str, params: list[Any], file: _File | None
) -> list[Any]:
    """On aiosqlite's thread: the rows, unless the file moved (they would be stale)."""
    if file is not None:
        _check_file(file)
    return conn.execute(statement, params).fetchall()


_SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


def check_synchronous(synchronous: object) -> str:
    """Validate ``sqlite_synchronous``: one of SQLite's modes, in any case."""
    mode = synchronous.upper() if isinstance(synchronous, str) else None
    if mode not in _SYNCHRONOUS_MODES:
        raise InvalidInputError(
            f"sqlite_synchronous must be one of {', '.join(sorted(_SYNCHRONOUS_MODES))}, "
            f"not {synchronous!r}"
        )
    return mode


def configure_engine(
    engine: AsyncEngine,
    *,
    busy_timeout_ms: int = 10_000,
    synchronous: str = "FULL",
    reset_open_transactions: bool = False,
) -> None:
    """WAL, a busy timeout, and an explicit ``BEGIN IMMEDIATE`` for every write transaction.

    pysqlite's own implicit BEGIN is turned off: it starts a deferred transaction, and
    two deferred writers that both read first deadlock into SQLITE_BUSY. ``BEGIN
    IMMEDIATE`` takes the write lock up front, so writers queue on ``busy_timeout``.
    Reads (connections with :data:`READ_OPTIONS`) get no BEGIN: each SELECT is its own
    consistent snapshot.

    With ``reset_open_transactions`` (for an engine made with
    ``pool_reset_on_return=None``), a connection going back to the pool is rolled back
    only if a transaction is still open on it. The pool's own reset rolls back every
    time: a thread hop on aiosqlite after each commit and each read, for nothing.
    """
    mode = check_synchronous(synchronous)
    pragmas = (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        f"PRAGMA synchronous={mode}",
    )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # The same for statements SQLAlchemy runs: a disconnect retires the pool's
        # connections, all of which may have been opened while the file was read-only.
        if _opened_read_only(context.original_exception):
            context.is_disconnect = True

    # The file the engine's first connection opened. Every later connection must open
    # that same file, and every read and commit checks it is still at its path (see
    # FileMovedError): never a write to a file that is no longer there, never a read of
    # one. Connections are kept when it moves: they hold its inode, so that no new file
    # can get its number, and they serve again if it is moved back. Nor does the engine
    # open a file put in its place, or create an empty one where it was deleted: only a
    # new store (a restart) takes on what is at the path now, and creates the schema
    # only if told to.
    opened: list[_File] = []

    @event.listens_for(engine.sync_engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        if opened:
            # Before SQLite opens, or creates, whatever is at the path now.
            _check_file(opened[0])

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        record.info[_BUSY_TIMEOUT] = int(busy_timeout_ms)
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        # The path as SQLite resolved it ("" in memory), also for a file: URI.
        cursor.execute("PRAGMA database_list")
        path = next((row[2] for row in cursor.fetchall() if row[1] == "main"), "")
        cursor.close()
        if not path:
            return
        if not opened:
            opened.append(_File(path, _identity(path)))
        # (A failed connect event closes the connection: the pool sees to it.)
        _check_file(opened[0])
        record.info[_FILE] = opened[0]

    if reset_open_transactions:

        @event.listens_for(engine.sync_engine, "reset")
        def _on_reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
            # in_transaction is read without a hop; not asyncio-safe means the pool is
            # discarding the connection outside the event loop and must not await.
            if (
                state.asyncio_safe
                and not state.transaction_was_reset
                and record.driver_connection.in_transaction
            ):
                dbapi_connection.rollback()

    def _check_file_of(conn: Connection, statement: str) -> None:
        file = conn.connection.info.get(_FILE)
        if file is not None:
            try:
                _check_file(file)
            except FileMovedError as exc:
                raise _driver_error(statement, None, exc) from exc

    @event.listens_for(engine.sync_engine, "commit")
    def _on_commit(conn: Connection) -> None:
        # SQLAlchemy raises what a commit listener raises as it is; the transaction
        # stays open until the pool's reset rolls it back.
        _check_file_of(conn, "COMMIT")

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("eventstore_read"):
            # Each of its SELECTs is on its own: checked once, here, on the event loop.
            _check_file_of(conn, "BEGIN")
        else:
            # On the driver: one thread hop, where exec_driver_sql takes three.
            driver = conn.connection.driver_connection
            assert driver is not None
            cancelled = threading.Event()
            busy_timeout = conn.connection.info.get(_BUSY_TIMEOUT, BUSY_SLICE_MS)
            try:
                await_(driver._execute(_begin, driver._conn, cancelled, busy_timeout))
            except _StatementError as exc:
                raise _driver_error(exc.statement, None, exc.error) from exc.error
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Cancelled while waiting for the write lock. The BEGIN on aiosqlite's
                    # thread gives up within a slice (see BUSY_SLICE_MS); SQLAlchemy
                    # discards a connection cut short anyway.
                    cancelled.set()
                    conn.invalidate(exc)
                raise


def is_deadlock(error: DBAPIError) -> bool:
    """Never: one writer at a time, which waits out ``busy_timeout`` instead."""
    return False


def is_unique_violation(error: DBAPIError) -> bool:
    """Whether a unique index refused a row (a rerun that looks the row up may succeed)."""
    return str(error.orig).startswith("UNIQUE constraint failed")
