"""SQL backend: :class:`SqlEventStore` on SQLAlchemy 2 async (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.util import greenlet_spawn

from eventstore.clock import now_ms
from eventstore.codec import (
    DEFAULT_MAX_EVENT_BYTES,
    MAX_BIGINT,
    check_cap,
    check_cap_stream,
    check_id,
    check_idle_ms,
    check_limit,
    check_max_event_bytes,
    check_requests,
    check_session_ids,
    check_timestamp,
    decode_data,
    encode_checked,
    fast_loads,
    orjson_exact,
    same_content,
)
from eventstore.errors import (
    CorruptDataError,
    DuplicateEventError,
    EventStoreError,
    InvalidInputError,
    SchemaError,
    StoreClosedError,
    StoreUnavailableError,
    UnknownCursorError,
)
from eventstore.events import StoredEvent, make_event
from eventstore.requests import (
    ClearSession,
    ClearStream,
    StoreEvent,
    UpdateLastEventId,
    WriteRequest,
)
from eventstore.sql import AppendHeads, AppendRows, StreamCounts, postgresql, sqlite
from eventstore.sql.engine import display_url
from eventstore.sql.schema import event_ids_in_sessions, event_streams, events, settings
from eventstore.store import ApplyResult, EventStore, StreamInfo

log = logging.getLogger(__name__)

_DIALECTS: dict[str, ModuleType] = {"postgresql": postgresql, "sqlite": sqlite}

# The first attempt skips the duplicate lookup (see _store_run); an id already stored
# fails its INSERT on the unique index and the rerun looks it up. A concurrent writer can
# also commit the same (session_id, event_id) between a rerun's lookup and its INSERT;
# two more reruns cover any realistic interleaving.
_INTEGRITY_RERUNS = 4
# A deadlock the server broke by failing the batch is rerun this often before
# StoreUnavailableError. Heads are always taken in one sorted order, but a batch can still
# wait for another's uncommitted event with the same (session_id, event_id) in another
# stream, a batch split into several statements (_statements) locks its heads part by
# part, and writers other than this store (a manual transaction, an older version during
# a rolling upgrade) lock in their own order.
_DEADLOCK_RERUNS = 3
# Keeps expanding IN lists well below SQLite's and asyncpg's parameter limits.
_LOOKUP_CHUNK = 500
# What _change_setting returns for a cap that is set already.
_UNCHANGED: Any = object()
# Characters of event data one append statement carries at most (so at most 256 MiB of
# UTF-8): a PostgreSQL protocol message, and the data array in it, may not pass 1 GiB.
# A batch with more is appended by several statements, in its one transaction.
_STATEMENT_DATA_CHARS = 64 * 1024 * 1024

_ev = events.c
_hd = event_streams.c

_STREAM_COUNT = select(func.count()).where(_hd.session_id == bindparam("session_id"))
# Statements of the write path are built once: building and cache-keying a fresh
# statement for every append cost more than executing it.
# One session at a time: SQLite scans the whole table for a row-value IN list, while
# session_id = ? AND stream_id IN (...) is a seek on the replay index.
_DELETE_STREAM_EVENTS = delete(events).where(
    _ev.session_id == bindparam("session_id"),
    _ev.stream_id.in_(bindparam("stream_ids", expanding=True)),
)
_DELETE_STREAM_HEADS = delete(event_streams).where(
    _hd.session_id == bindparam("session_id"),
    _hd.stream_id.in_(bindparam("stream_ids", expanding=True)),
)
_TRIM_STREAM = delete(events).where(
    _ev.session_id == bindparam("trim_session"),
    _ev.stream_id == bindparam("trim_stream"),
    _ev.seq <= bindparam("floor"),
)
_MOVE_FIRST_SEQ = (
    update(event_streams)
    .where(
        _hd.session_id == bindparam("trim_session"),
        _hd.stream_id == bindparam("trim_stream"),
        _hd.first_seq <= bindparam("floor"),
    )
    .values(first_seq=bindparam("floor") + 1)
)
_EXISTING_IN_SESSION = select(
    _ev.session_id, _ev.event_id, _ev.stream_id, _ev.seq, _ev.data, _ev.timestamp
).where(
    _ev.session_id == bindparam("session_id"),
    _ev.event_id.in_(bindparam("event_ids", expanding=True)),
)


@dataclass(slots=True)
class _Pending:
    """A validated StoreEvent waiting for its seq (``data`` as a replay gives it back)."""

    index: int
    session_id: str
    stream_id: str
    event_id: str
    data: Any
    text: str
    timestamp: int | None


def _statements(fresh: list[_Pending]) -> list[list[_Pending]]:
    """``fresh`` in order, cut where a statement's data would pass _STATEMENT_DATA_CHARS.

    Nearly always one part. Parts after the first lock their heads after the first's,
    not in one sorted order: two such batches at once may deadlock, which PostgreSQL
    breaks by failing one, which ``apply`` reruns.
    """
    parts: list[list[_Pending]] = [[]]
    size = 0
    for item in fresh:
        if parts[-1] and size + len(item.text) > _STATEMENT_DATA_CHARS:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += len(item.text)
    return parts


def _append_rows(fresh: list[_Pending]) -> tuple[StreamCounts, AppendRows]:
    """The streams' new-event counts (sorted) and the rows, as ``append_events`` takes them.

    Each row carries how many rows of its stream follow it in the batch: its seq is then
    the stream's last_seq after the batch minus that. Sorted, so concurrent batches lock
    head rows in the same order: no deadlocks. A row stored "now" has no timestamp yet:
    the append gives it its stream's, once it holds the stream's lock.
    """
    counts: dict[tuple[str, str], int] = {}
    for item in fresh:
        stream = (item.session_id, item.stream_id)
        counts[stream] = counts.get(stream, 0) + 1
    left = dict(counts)
    rows = []
    for item in fresh:
        stream = (item.session_id, item.stream_id)
        left[stream] -= 1
        rows.append(
            (
                item.session_id,
                item.stream_id,
                item.event_id,
                item.text,
                item.timestamp,
                left[stream],
            )
        )
    return sorted(counts.items()), rows


def _fill_appended(
    fresh: list[_Pending],
    rows: AppendRows,
    heads: AppendHeads,
    results: list[ApplyResult],
) -> None:
    for item, (_, _, _, _, timestamp, later) in zip(fresh, rows, strict=True):
        last, stamp = heads[item.session_id, item.stream_id]
        results[item.index] = make_event(
            item.event_id,
            item.stream_id,
            item.data,
            stamp if timestamp is None else timestamp,
            item.session_id,
            last - later,
        )


def _not_before(now: int) -> ColumnElement[int]:
    """A head's new ``updated_at``: ``now``, unless it holds a later time already.

    Appends stamp the events they store "now" with their head's ``updated_at``; it may
    never go back, or a clock stepped back since would give a later event an earlier
    time.
    """
    return case((_hd.updated_at > now, _hd.updated_at), else_=literal(now, BigInteger))


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated or getattr(exc.orig, "eventstore_transient", False):
        return True
    message = str(exc.orig).lower()
    return any(
        marker in message
        for marker in (
            "database is locked",
            "database or disk is full",
            "disk i/o error",
            "connection",
            "terminating",
            "shutting down",
            "the database system is",
            "cannot connect",
            "deadlock detected",
            "could not serialize",
        )
    )


def _tables_gone(exc: DBAPIError) -> bool:
    # A store is only opened on a current schema: a table missing later went away under it.
    message = str(exc.orig)
    return "no such table" in message or getattr(exc.orig, "sqlstate", None) == "42P01"


def database_error(exc: DBAPIError, doing: str = "") -> EventStoreError:
    """The :mod:`eventstore.errors` form of a driver error; ``doing`` prefixes its message.

    Transient failures (connection lost, server restarting, database locked or full)
    become :class:`StoreUnavailableError`, which says retrying is safe; anything else
    (a file that is not a database, a permission refused) is a plain
    :class:`EventStoreError` that a retry would not change.
    """
    prefix = f"{doing}: " if doing else ""
    if _tables_gone(exc):
        return SchemaError(
            f"{prefix}the database has lost the event store's tables ({exc.orig}): was "
            "it deleted, replaced or downgraded while the store was open? Run "
            "`eventstore migrate` on it once you know why"
        )
    if _is_transient(exc):
        return StoreUnavailableError(f"{prefix or 'database unavailable: '}{exc.orig}")
    hint = ""
    if str(exc.orig) == "unable to open database file":
        # SQLite's whole message, also when only the WAL's side files cannot be made.
        hint = (
            " (SQLite opens a WAL database's -wal and -shm files next to it, even to "
            "read: the file and its directory must exist and be writable; on read-only "
            "media, copy the file elsewhere)"
        )
    return EventStoreError(f"{prefix or 'database error: '}{exc.orig}{hint}")


def _unreachable(exc: OSError | PoolTimeoutError) -> StoreUnavailableError:
    """The error of a call that never got a working connection: nothing was written."""
    if isinstance(exc, PoolTimeoutError):
        return StoreUnavailableError(
            f"database connection pool exhausted: no connection came free within "
            f"pool_timeout ({exc})"
        )
    return StoreUnavailableError(f"database connection failed: {exc}")


def _heads_of(requests: Sequence[WriteRequest]) -> tuple[list[tuple[str, str]], list[str]]:
    """The head rows a batch may lock, for locking them all at once, in order: the
    streams it names (sorted) and the sessions it clears whole.

    The batch's statements lock heads as they go -- a run of appends, a clear, a rerun's
    appends split around a looked-up row -- so two batches could lock two streams in
    opposite orders and deadlock. Taking every head first, existing or to be created,
    sorted as appends sort them, leaves later statements nothing to wait for.
    Requests that are not requests, or have unusable ids, are left out: they fail on
    their own later.
    """
    streams: set[tuple[str, str]] = set()
    whole: set[str] = set()
    for request in requests:
        if not isinstance(request, (StoreEvent, ClearStream, ClearSession, UpdateLastEventId)):
            continue
        try:
            session_id = check_id("session_id", request.session_id)
            if isinstance(request, ClearSession):
                whole.add(session_id)
            else:
                streams.add((session_id, check_id("stream_id", request.stream_id)))
        except InvalidInputError:
            continue
    return sorted(streams), sorted(whole)


def _row_data(row: Sequence[Any], session_id: str, stream_id: str) -> Any:
    """A replay row's decoded data; a row that is not JSON is named, so it can be fixed."""
    try:
        return decode_data(row[2])
    except CorruptDataError as exc:
        raise CorruptDataError(
            f"event {row[0]!r} (session {session_id!r}, stream {stream_id!r}, seq {row[1]}) "
            f"holds data that is not JSON ({exc}); fix or delete that row"
        ) from None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SqlEventStore(EventStore):
    """Events in an SQL database through an SQLAlchemy async engine.

    SQLite (``sqlite+aiosqlite``) is the embedded default: WAL, a busy timeout and one
    writer at a time (``BEGIN IMMEDIATE``). PostgreSQL (``postgresql+asyncpg``) is the
    store several server replicas share. The per-stream cap lives in the database
    (``eventstore_settings`` and each stream's head row) and a trigger enforces it, so
    every writer obeys it.

    Build one with :func:`eventstore.open_store`; this constructor takes an engine whose
    schema is already in place and does not dispose of it unless ``owns_engine``.
    Database failures that are nobody's fault (connection lost, database locked) raise
    :class:`~eventstore.errors.StoreUnavailableError`: retry the call (see that class
    for the one case where the failed call did commit).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        owns_engine: bool = False,
    ) -> None:
        dialect = _DIALECTS.get(engine.dialect.name)
        if dialect is None:
            raise InvalidInputError(
                f"unsupported database dialect {engine.dialect.name!r}; "
                "use sqlite+aiosqlite or postgresql+asyncpg"
            )
        self.engine = engine
        self.max_event_bytes = check_max_event_bytes(max_event_bytes)
        self._dialect = dialect
        self._reader = engine.execution_options(**dialect.READ_OPTIONS)
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._owns_engine = owns_engine
        self._closed = False
        # The loop it is used in (ONE_EVENT_LOOP): the one it is built in, else its first.
        self._loop: asyncio.AbstractEventLoop | None = _running_loop()

    def __repr__(self) -> str:
        return f"SqlEventStore({display_url(self.engine.url)!r})"

    # -- writes ---------------------------------------------------------------------------

    async def apply(self, requests: Sequence[WriteRequest]) -> list[ApplyResult]:
        self._check_open()
        requests = check_requests(requests)
        attempt = 1
        deadlocks = 0
        while True:
            try:
                if attempt == 1 and all(isinstance(request, StoreEvent) for request in requests):
                    appended = await self._append(requests)
                    if appended is not None:
                        return appended
                async with self.engine.begin() as conn:
                    placeholders: set[tuple[str, str]] = set()
                    if self._dialect.ROW_LOCKS:
                        streams, whole = _heads_of(requests)
                        if streams or whole:
                            placeholders = await self._dialect.lock_heads(
                                conn, streams, whole, now_ms()
                            )
                    results = await self._apply_in(
                        conn, requests, lookup=attempt > 1, placeholders=placeholders
                    )
                    if placeholders:
                        await self._dialect.drop_placeholders(conn, placeholders)
                    return results
            except IntegrityError as exc:
                if not self._dialect.is_unique_violation(exc):
                    # A CHECK, a foreign key or a trigger of the host refused a row: no
                    # rerun can change that.
                    raise EventStoreError(f"the database refused the write: {exc.orig}") from exc
                if attempt == _INTEGRITY_RERUNS:
                    raise EventStoreError(
                        f"write kept conflicting with concurrent writers: {exc.orig}"
                    ) from exc
                log.debug("concurrent write conflict, rerunning batch (attempt %d)", attempt)
                attempt += 1
            except DBAPIError as exc:
                # A retrier keeps the error, and the error's frames would keep this
                # attempt's encoded rows, until the cycle collector gets to them: during
                # an outage, a batch's worth of garbage per retry.
                traceback.clear_frames(exc.__traceback__)
                if self._dialect.is_deadlock(exc) and deadlocks < _DEADLOCK_RERUNS:
                    # The server failed this whole transaction to break a deadlock the
                    # store's own lock order cannot rule out (see _DEADLOCK_RERUNS):
                    # nothing of it was written, and the other side has gone on.
                    deadlocks += 1
                    log.info("deadlock with a concurrent writer, rerunning batch: %s", exc.orig)
                    continue
                raise database_error(exc) from exc
            except (OSError, PoolTimeoutError) as exc:
                raise _unreachable(exc) from exc

    async def _append(self, requests: list[StoreEvent]) -> list[ApplyResult] | None:
        """A batch of appends only -- every append and every worker batch, nearly: in one
        transaction on the driver itself, with no duplicate lookup (see _store_run).

        ``None`` for a batch that repeats an id: it goes the general way.
        """
        results: list[ApplyResult] = [None] * len(requests)
        fresh = self._validate(list(enumerate(requests)), results)
        if len({(item.session_id, item.event_id) for item in fresh}) < len(fresh):
            return None
        if fresh:
            now = now_ms()
            parts = _statements(fresh)
            statements = [_append_rows(part) for part in parts]
            async with self._driver(writing=True) as pooled:
                heads = await self._dialect.append_in_transaction(pooled, statements, now)
            for part, (_, rows), part_heads in zip(parts, statements, heads, strict=True):
                _fill_appended(part, rows, part_heads, results)
        return results

    async def _apply_in(
        self,
        conn: AsyncConnection,
        requests: Sequence[WriteRequest],
        *,
        lookup: bool,
        placeholders: Collection[tuple[str, str]] = (),
    ) -> list[ApplyResult]:
        """The requests in order, in ``conn``'s transaction. ``placeholders``: heads that
        ``lock_heads`` created empty (last_seq 0), which are no stream until an event is
        appended to them."""
        results: list[ApplyResult] = [None] * len(requests)
        now = now_ms()
        run: list[tuple[int, StoreEvent]] = []
        for index, request in enumerate(requests):
            if isinstance(request, StoreEvent):
                run.append((index, request))
                continue
            if run:
                await self._store_run(conn, run, results, now, lookup)
                run = []
            try:
                results[index] = await self._apply_other(conn, request, now, placeholders)
            except EventStoreError as exc:
                results[index] = exc
        if run:
            await self._store_run(conn, run, results, now, lookup)
        return results

    async def _apply_other(
        self,
        conn: AsyncConnection,
        request: WriteRequest,
        now: int,
        placeholders: Collection[tuple[str, str]],
    ) -> ApplyResult:
        if isinstance(request, ClearStream):
            session_id = check_id("session_id", request.session_id)
            stream_id = check_id("stream_id", request.stream_id)
            locked = await self._lock_heads(
                conn, and_(_hd.session_id == session_id, _hd.stream_id == stream_id)
            )
            return await self._drop_streams(conn, [key for key, _ in locked])
        if isinstance(request, ClearSession):
            session_id = check_id("session_id", request.session_id)
            locked = await self._lock_heads(conn, _hd.session_id == session_id)
            return await self._drop_streams(conn, [key for key, _ in locked])
        if isinstance(request, UpdateLastEventId):
            session_id = check_id("session_id", request.session_id)
            stream_id = check_id("stream_id", request.stream_id)
            event_id = check_id("event_id", request.event_id)
            where = [_hd.session_id == session_id, _hd.stream_id == stream_id]
            if (session_id, stream_id) in placeholders:
                where.append(_hd.last_seq > 0)
            updated = await conn.execute(
                update(event_streams)
                .where(*where)
                .values(last_event_id=event_id, updated_at=_not_before(now))
            )
            if updated.rowcount == 0:
                raise InvalidInputError(f"stream {stream_id!r} does not exist in this session")
            return None
        raise InvalidInputError(f"not a write request: {request!r}")

    async def _lock_heads(
        self, conn: AsyncConnection, where: Any
    ) -> list[tuple[tuple[str, str], int]]:
        """Lock the head rows matching ``where``; return their keys and ``updated_at``.

        Rows are locked in the order appends lock them, so a clear never deadlocks with a
        writer, and a stream's events are only ever changed under its head's lock: a
        writer that committed before the lock is seen whole, one after it starts a new
        stream. (SQLite writers are serialised already; it has no row locks.)
        """
        rows = await conn.execute(
            select(_hd.session_id, _hd.stream_id, _hd.updated_at)
            .where(where)
            .order_by(_hd.session_id, _hd.stream_id)
            .with_for_update()
        )
        return [((session_id, stream_id), updated) for session_id, stream_id, updated in rows]

    async def _drop_streams(self, conn: AsyncConnection, streams: list[tuple[str, str]]) -> int:
        """Delete the events and head rows of ``streams`` (locked); return events removed.

        Only locked streams are touched: a stream a concurrent writer creates meanwhile
        keeps its head and its events together.
        """
        by_session: dict[str, list[str]] = {}
        for session_id, stream_id in streams:
            by_session.setdefault(session_id, []).append(stream_id)
        removed = 0
        for session_id, stream_ids in by_session.items():
            for start in range(0, len(stream_ids), _LOOKUP_CHUNK):
                params = {
                    "session_id": session_id,
                    "stream_ids": stream_ids[start : start + _LOOKUP_CHUNK],
                }
                result = await conn.execute(_DELETE_STREAM_EVENTS, params)
                removed += int(result.rowcount)
                await conn.execute(_DELETE_STREAM_HEADS, params)
        return removed

    def _validate(
        self, run: list[tuple[int, StoreEvent]], results: list[ApplyResult]
    ) -> list[_Pending]:
        pending: list[_Pending] = []
        for index, request in run:
            try:
                session_id = check_id("session_id", request.session_id)
                stream_id = check_id("stream_id", request.stream_id)
                event_id = check_id("event_id", request.event_id)
                text, replayed = encode_checked(request.data, self.max_event_bytes)
                pending.append(
                    _Pending(
                        index,
                        session_id,
                        stream_id,
                        event_id,
                        replayed,
                        text,
                        check_timestamp(request.timestamp),
                    )
                )
            except EventStoreError as exc:
                results[index] = exc
        return pending

    async def _store_run(
        self,
        conn: AsyncConnection,
        run: list[tuple[int, StoreEvent]],
        results: list[ApplyResult],
        now: int,
        lookup: bool,
    ) -> None:
        """Append consecutive StoreEvents: duplicate check, seq allocation, one INSERT.

        Without ``lookup`` the check against stored events is skipped: ids are almost
        always new, and one that is not fails the INSERT on the unique index, which
        reruns the whole transaction with ``lookup``. That saves a statement per batch
        and the plan of a lookup on a table whose statistics lag behind its growth.
        """
        # A repeated (session_id, event_id) starts a new segment, so the repeat meets the
        # first one's row -- or its trim by the cap -- exactly as a later call would. The
        # repeat is known to exist, hence the lookup.
        segment: list[_Pending] = []
        keys: set[tuple[str, str]] = set()
        for item in self._validate(run, results):
            key = (item.session_id, item.event_id)
            if key in keys:
                await self._store_segment(conn, segment, results, now, lookup)
                segment, keys, lookup = [], set(), True
            segment.append(item)
            keys.add(key)
        if segment:
            await self._store_segment(conn, segment, results, now, lookup)

    async def _store_segment(
        self,
        conn: AsyncConnection,
        segment: list[_Pending],
        results: list[ApplyResult],
        now: int,
        lookup: bool,
    ) -> None:
        """Append StoreEvents with distinct ids: duplicate check, seqs, one INSERT."""
        existing = await self._existing(conn, segment) if lookup else {}
        fresh: list[_Pending] = []
        for position, item in enumerate(segment):
            if (row := existing.get((item.session_id, item.event_id))) is None:
                fresh.append(item)
                continue
            if any(
                (earlier.session_id, earlier.stream_id) == (item.session_id, row.stream_id)
                for earlier in fresh
            ):
                # Events of this batch ahead of it go to the stored row's stream and may
                # trim that row under the cap, as they would if appended by an earlier
                # call. PostgreSQL trims once per statement, after it: append them
                # first, then judge this id against what is left.
                await self._append_fresh(conn, fresh, results, now)
                await self._store_segment(conn, segment[position:], results, now, True)
                return
            if row.stream_id == item.stream_id and same_content(row.data, item.text):
                results[item.index] = StoredEvent(
                    id=item.event_id,
                    stream_id=item.stream_id,
                    data=decode_data(row.data),
                    timestamp=row.timestamp,
                    session_id=item.session_id,
                    seq=row.seq,
                )
            else:
                results[item.index] = DuplicateEventError(item.session_id, item.event_id)
        await self._append_fresh(conn, fresh, results, now)

    async def _append_fresh(
        self, conn: AsyncConnection, fresh: list[_Pending], results: list[ApplyResult], now: int
    ) -> None:
        for part in _statements(fresh) if fresh else []:
            counts, rows = _append_rows(part)
            heads = await self._dialect.append_events(conn, counts, rows, now)
            _fill_appended(part, rows, heads, results)

    async def _existing(
        self, conn: AsyncConnection, pending: list[_Pending]
    ) -> dict[tuple[str, str], Any]:
        by_session: dict[str, set[str]] = {}
        for item in pending:
            by_session.setdefault(item.session_id, set()).add(item.event_id)
        keys = [(s, e) for s, ids in by_session.items() for e in ids]
        found: dict[tuple[str, str], Any] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk: dict[str, list[str]] = {}
            for session_id, event_id in keys[start : start + _LOOKUP_CHUNK]:
                chunk.setdefault(session_id, []).append(event_id)
            if len(chunk) == 1:
                ((session_id, ids),) = chunk.items()
                rows = await conn.execute(
                    _EXISTING_IN_SESSION, {"session_id": session_id, "event_ids": ids}
                )
                for row in rows:
                    found[(row.session_id, row.event_id)] = row
                continue
            rows = await conn.execute(
                select(
                    _ev.session_id, _ev.event_id, _ev.stream_id, _ev.seq, _ev.data, _ev.timestamp
                ).where(event_ids_in_sessions(chunk))
            )
            for row in rows:
                found[(row.session_id, row.event_id)] = row
        return found

    # -- reads ----------------------------------------------------------------------------

    async def get_events_after(
        self,
        session_id: str,
        stream_id: str,
        after_event_id: str,
        *,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        self._check_open()
        # The cursor row and everything after it, in one statement: one snapshot, so a
        # trim running concurrently cannot open a silent gap between finding the cursor
        # and reading on. An empty result means the cursor is not held in this stream.
        params = self._dialect.replay_params(
            check_id("session_id", session_id),
            check_id("stream_id", stream_id),
            check_id("after_event_id", after_event_id),
        )
        limit = check_limit(limit)
        # The cursor's row comes first, so one row more than ``limit`` -- unless that is
        # past a BIGINT, more rows than any stream can hold anyway.
        if limit is None or limit >= MAX_BIGINT:
            rows = await self._fetch(self._dialect.REPLAY_AFTER, params)
        else:
            rows = await self._fetch(self._dialect.REPLAY_AFTER_LIMITED, [*params, limit + 1])
        if not rows or rows[0][0] != after_event_id:
            raise UnknownCursorError(session_id, stream_id, after_event_id)
        return self._events(session_id, stream_id, rows[1:])

    async def get_stream_events(
        self, session_id: str, stream_id: str, *, limit: int | None = None
    ) -> list[StoredEvent]:
        self._check_open()
        params = self._dialect.stream_params(
            check_id("session_id", session_id), check_id("stream_id", stream_id)
        )
        limit = check_limit(limit)
        if limit is None:
            rows = await self._fetch(self._dialect.STREAM, params)
        else:
            rows = await self._fetch(self._dialect.STREAM_LIMITED, [*params, limit])
        return self._events(session_id, stream_id, rows)

    @staticmethod
    def _events(
        session_id: str, stream_id: str, rows: Sequence[Sequence[Any]]
    ) -> list[StoredEvent]:
        # One loop, rows unpacked by position: a replay runs it once per event, and
        # attribute access on a row or a second pass cost a tenth of the replay.
        if orjson_exact([row[2] for row in rows]):
            try:
                return [
                    make_event(row[0], stream_id, fast_loads(row[2]), row[3], session_id, row[1])
                    for row in rows
                ]
            except ValueError:
                pass  # orjson refused a row (escaped lone surrogates): the exact decoder
        return [
            make_event(
                row[0], stream_id, _row_data(row, session_id, stream_id), row[3], session_id, row[1]
            )
            for row in rows
        ]

    async def _fetch(self, statement: str, params: list[Any]) -> list[Any]:
        """A replay read, run on the driver (see the dialect modules' ``fetch``).

        It takes a pooled DBAPI connection rather than a SQLAlchemy ``Connection``: the
        read needs no transaction, and building and resetting a ``Connection`` cost twice
        the pool's own checkout and checkin.
        """
        try:
            async with self._driver(writing=False) as pooled:
                rows: list[Any] = await self._dialect.fetch(pooled, statement, params)
                return rows
        except DBAPIError as exc:
            raise database_error(exc) from exc
        except (OSError, PoolTimeoutError) as exc:
            raise _unreachable(exc) from exc

    @asynccontextmanager
    async def _driver(self, *, writing: bool) -> AsyncIterator[PoolProxiedConnection]:
        """A pooled DBAPI connection, for the paths that talk to the driver directly.

        On a disconnect every connection the pool made before now is retired, as
        SQLAlchemy does (the server went away, not just this one). A write cancelled
        mid-statement retires its connection at once where what state its transaction
        is in is unknown (PostgreSQL); SQLite's rolls itself back and is kept. The
        checkin runs where the pool may await (a reset that rolls back).
        Connections are never kept between calls: one held back from the pool could
        starve writers of a small pool.
        """
        try:
            pooled = await self.engine.raw_connection()
        except self._dbapi_error as exc:
            # Unlike a Connection, raw_connection() raises the driver's own error; the
            # form SQLAlchemy gives it elsewhere, so callers handle one kind.
            raise DBAPIError.instance(
                None,
                None,
                exc,
                self._dbapi_error,
                connection_invalidated=self.engine.dialect.is_disconnect(
                    exc,  # type: ignore[arg-type]  # the DBAPI's Error, typed as PEP 249's
                    None,
                    None,
                ),
            ) from exc
        cancelled = False
        try:
            yield pooled
        except DBAPIError as exc:
            if exc.connection_invalidated:
                await greenlet_spawn(self.engine.sync_engine.pool._invalidate, pooled, exc)
            raise
        except BaseException as exc:
            cancelled = not isinstance(exc, Exception)
            if writing and cancelled and not self._dialect.CANCELLED_APPEND_ROLLS_BACK:
                # Called outside a greenlet, the pool closes the driver connection
                # without waiting: a graceful close would queue behind the cancelled
                # statement.
                pooled.invalidate(exc)
            raise
        finally:
            back = greenlet_spawn(pooled.invalidate if self._closed else pooled.close)
            # (invalidate: the store was closed meanwhile; its engine's pool is gone, and
            # a connection checked in there would be left open, its driver thread too.)
            if cancelled:
                # Shielded: cancelled again while the connection goes back, the check-in
                # would be cut short, and the pool logs that as an ERROR with a traceback.
                await asyncio.shield(back)
            else:
                await back

    async def _read(self, statement: Any, params: dict[str, Any]) -> Sequence[Row[Any]]:
        try:
            async with self._reader.connect() as conn:
                result = await conn.execute(statement, params)
                return result.all()
        except DBAPIError as exc:
            raise database_error(exc) from exc
        except (OSError, PoolTimeoutError) as exc:
            raise _unreachable(exc) from exc

    async def stream_count(self, session_id: str) -> int:
        self._check_open()
        rows = await self._read(_STREAM_COUNT, {"session_id": check_id("session_id", session_id)})
        return int(rows[0][0])

    async def get_stream_info(self, session_id: str, stream_id: str) -> StreamInfo | None:
        self._check_open()
        rows = await self._read(
            select(event_streams).where(
                _hd.session_id == check_id("session_id", session_id),
                _hd.stream_id == check_id("stream_id", stream_id),
            ),
            {},
        )
        if not rows:
            return None
        row = rows[0]
        return StreamInfo(
            session_id=row.session_id,
            stream_id=row.stream_id,
            last_seq=row.last_seq,
            first_seq=row.first_seq,
            max_events=row.max_events,
            last_event_id=row.last_event_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- retention and housekeeping -----------------------------------------------------

    async def get_max_events_per_stream(self) -> int | None:
        self._check_open()
        rows = await self._read(
            select(settings.c.max_events_per_stream).where(settings.c.id == 1), {}
        )
        return None if not rows else rows[0][0]

    async def set_max_events_per_stream(
        self,
        limit: int | None,
        *,
        session_id: str | None = None,
        stream_id: str | None = None,
    ) -> None:
        self._check_open()
        limit = check_cap(limit)
        stream = check_cap_stream(session_id, stream_id)
        store_wide = stream is None
        if stream is not None:
            session_id, stream_id = stream
        old: Any = None
        try:
            async with self.engine.begin() as conn:
                scope: Any
                if store_wide:
                    old = await self._change_setting(conn, limit)
                    if old is _UNCHANGED:
                        return
                    scope = true()
                else:
                    changed = await conn.execute(
                        update(event_streams)
                        .where(_hd.session_id == session_id, _hd.stream_id == stream_id)
                        .values(max_events=limit)
                    )
                    if changed.rowcount == 0:
                        raise InvalidInputError(
                            f"stream {stream_id!r} does not exist in session {session_id!r}"
                        )
                    scope = and_(_hd.session_id == session_id, _hd.stream_id == stream_id)
                trimmed = await self._trim(conn, scope)
        except DBAPIError as exc:
            raise database_error(exc) from exc
        except (OSError, PoolTimeoutError) as exc:
            raise _unreachable(exc) from exc
        if store_wide:
            # Every process on this database goes by the new cap at once: a replica
            # started with a smaller one than its peers trims their streams too.
            log.log(
                logging.WARNING if trimmed else logging.INFO,
                "store-wide max_events_per_stream changed from %s to %s, for every "
                "process using this database%s",
                "unlimited" if old is None else old,
                "unlimited" if limit is None else limit,
                f"; {trimmed} stream(s) were trimmed to it" if trimmed else "",
            )

    async def _change_setting(self, conn: AsyncConnection, limit: int | None) -> Any:
        """Write the store-wide cap and return the one before, or ``_UNCHANGED`` (and no
        lock taken) if it is set already.

        Every replica passes its cap to ``open_store`` at startup: an unchanged cap must
        not stall the others' appends.
        """
        current = await conn.execute(
            select(settings.c.max_events_per_stream).where(settings.c.id == 1).with_for_update()
        )
        row = current.first()
        old = None if row is None else row[0]
        if old == limit:
            return _UNCHANGED
        if self._dialect.LOCK_FOR_STORE_WIDE_CAP is not None:
            await conn.exec_driver_sql(self._dialect.LOCK_FOR_STORE_WIDE_CAP)
        statement = self._dialect.upsert(settings).values(id=1, max_events_per_stream=limit)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[settings.c.id], set_={"max_events_per_stream": limit}
            )
        )
        return old

    async def _trim(self, conn: AsyncConnection, scope: Any) -> int:
        """Apply the current caps to existing streams (the trigger only sees inserts);
        how many streams lost events.

        The streams over their cap are found on the head rows, then each is trimmed by a
        range delete on the replay index (one statement, many parameter sets): never a
        pass over the whole events table.
        """
        store_cap = (
            select(settings.c.max_events_per_stream).where(settings.c.id == 1).scalar_subquery()
        )
        floor = _hd.last_seq - func.coalesce(_hd.max_events, store_cap)
        over = [
            {"trim_session": session_id, "trim_stream": stream_id, "floor": stream_floor}
            for session_id, stream_id, stream_floor in await conn.execute(
                select(_hd.session_id, _hd.stream_id, floor).where(scope, _hd.first_seq <= floor)
            )
        ]
        for start in range(0, len(over), _LOOKUP_CHUNK):
            chunk = over[start : start + _LOOKUP_CHUNK]
            await conn.execute(_TRIM_STREAM, chunk)
            await conn.execute(_MOVE_FIRST_SEQ, chunk)
        return len(over)

    async def prune_idle_sessions(self, idle_ms: int) -> int:
        self._check_open()
        horizon = now_ms() - check_idle_ms(idle_ms)
        # Sessions with a stream idle past the horizon and none written since: two range
        # seeks on the updated_at index, not a pass over every head.
        idle = (
            select(_hd.session_id)
            .where(_hd.updated_at < horizon)
            .except_(select(_hd.session_id).where(_hd.updated_at >= horizon))
        )
        pruned = 0
        try:
            async with self.engine.begin() as conn:
                sessions = [row[0] for row in await conn.execute(idle)]
                for start in range(0, len(sessions), _LOOKUP_CHUNK):
                    locked = await self._lock_heads(
                        conn, _hd.session_id.in_(sessions[start : start + _LOOKUP_CHUNK])
                    )
                    # A stream written since the idle query is locked in its new state:
                    # its session is active again and stays.
                    active = {key[0] for key, updated in locked if updated >= horizon}
                    streams = [key for key, _ in locked if key[0] not in active]
                    await self._drop_streams(conn, streams)
                    pruned += len({session_id for session_id, _ in streams})
        except DBAPIError as exc:
            raise database_error(exc) from exc
        except (OSError, PoolTimeoutError) as exc:
            raise _unreachable(exc) from exc
        return pruned

    async def touch_sessions(self, session_ids: Collection[str]) -> int:
        self._check_open()
        ids = sorted(check_session_ids(session_ids))
        touched = 0
        try:
            async with self.engine.begin() as conn:
                now = now_ms()
                for start in range(0, len(ids), _LOOKUP_CHUNK):
                    chunk = _hd.session_id.in_(ids[start : start + _LOOKUP_CHUNK])
                    locked = await self._lock_heads(conn, chunk)
                    if locked:
                        await conn.execute(
                            update(event_streams).where(chunk).values(updated_at=_not_before(now))
                        )
                    touched += len(locked)
        except DBAPIError as exc:
            raise database_error(exc) from exc
        except (OSError, PoolTimeoutError) as exc:
            raise _unreachable(exc) from exc
        return touched

    # -- lifecycle ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("this SqlEventStore is closed")
        if self._in_another_loop():
            # Its pooled connections would fail in confusing ways (a future of
            # another loop, then "another operation is in progress").
            raise EventStoreError(
                "this store is used from another event loop than the one it was "
                "opened in (a second asyncio.run, another thread); open a store in "
                "each event loop that uses one"
            )

    def _in_another_loop(self) -> bool:
        """Whether this call runs in another loop than the one the pool's connections
        belong to (only for drivers whose connections are bound to one loop)."""
        if not self._dialect.ONE_EVENT_LOOP:
            return False
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        return loop is not self._loop

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_engine and self._in_another_loop():
            # Closing the connections needs the loop they belong to, which may be gone:
            # each would fail with an ERROR and a traceback, and the close would look fine.
            await self.engine.dispose(close=False)
            raise EventStoreError(
                "this store is closed from another event loop than the one it was opened "
                "in (a second asyncio.run, another thread): its connections were dropped "
                "without closing them; close a store in the event loop that opened it"
            )
        if self._owns_engine:
            disposing = asyncio.ensure_future(self.engine.dispose())
            try:
                await asyncio.shield(disposing)
            except asyncio.CancelledError:
                # Cancelled while closing (a server shut down by Ctrl-C): the pool's
                # connections are closed all the same before the cancellation goes on;
                # a close cut short leaves them open and the pool logs an ERROR each.
                await asyncio.wait({disposing})
                raise
