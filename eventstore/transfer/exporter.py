"""Exporting a store as JSON lines in the current format (``eventstore import`` reads it).

One line per event, the fields of :meth:`~eventstore.events.StoredEvent.to_dict`::

    {"session_id":"s1","stream_id":"_default","seq":1,"id":"e1","data":{...},"timestamp":1700000000000}

Lines come session by session, stream by stream, in ``seq`` order, read through one
server-side cursor (one consistent snapshot) in fetches sized by rows and by bytes, so
memory stays flat for any number of events, and bounded for large ones, and concurrent
writers are not blocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import ModuleType
from typing import IO, Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from eventstore.codec import check_id, decode_data
from eventstore.errors import EventStoreError, InvalidInputError, StoreUnavailableError
from eventstore.events import StoredEvent
from eventstore.sql import postgresql, sqlite
from eventstore.sql.schema import events
from eventstore.sql.store import SqlEventStore
from eventstore.store import EventStore
from eventstore.transfer.output import write_all
from eventstore.transfer.progress import NoProgress, ProgressSink
from eventstore.transfer.records import dumps_line
from eventstore.transfer.streaming import read_errors, what_failed
from eventstore.transfer.threads import in_thread

#: Most rows fetched from the database at a time.
CHUNK = 5000
#: About how much stored data one fetch brings in: rows per fetch follow the size of the
#: rows just read (:class:`FetchSize`), so 20 MB rows come one at a time, small ones
#: :data:`CHUNK` at a time. A fixed 5000 rows of 5-20 MB each took 1.5 GB.
FETCH_BYTES = 8 * 1024 * 1024
#: Lines gathered before a write (fewer system calls for small rows, no copy of big ones).
WRITE_BYTES = 1024 * 1024

_DIALECTS: dict[str, ModuleType] = {"postgresql": postgresql, "sqlite": sqlite}
_ev = events.c


class _Row(NamedTuple):
    """One exported row, whichever driver fetched it."""

    session_id: str
    stream_id: str
    seq: int
    event_id: str
    data: str
    timestamp: int


class FetchSize:
    """How many rows to fetch next, so that a fetch holds about :data:`FETCH_BYTES`.

    It starts at one row and at most doubles from one fetch to the next, up to
    :data:`CHUNK`, and never asks for more rows than :data:`FETCH_BYTES` holds of the
    largest row of the last fetch. Rows are sized before they are fetched only by the
    rows before them: after a long run of small rows, one fetch of large ones can still
    exceed the budget (it shrinks again at once).
    """

    def __init__(self) -> None:
        self.rows = 1

    def update(self, sizes: Iterable[int]) -> None:
        """Size the next fetch from the sizes (characters of data) of the last one."""
        largest = max(sizes, default=0)
        self.rows = max(1, min(CHUNK, 2 * self.rows, FETCH_BYTES // max(largest, 1)))


async def export_events(
    store: EventStore,
    out: IO[bytes],
    *,
    session_ids: Sequence[str] = (),
    progress: ProgressSink | None = None,
) -> int:
    """Write the events of ``store`` to ``out`` as UTF-8 JSON lines; return how many.

    ``session_ids`` limits the export to those sessions. Only SQL stores can be
    exported: an in-memory store has nothing another process could read. Memory stays
    bounded by the number of rows and by their size (:class:`FetchSize`). Raises
    :class:`~eventstore.errors.InvalidInputError` for another store or a bad session id,
    :class:`~eventstore.errors.StoreUnavailableError` when the database fails, and
    :class:`~eventstore.errors.EventStoreError` naming the row when a row's data is not
    JSON (written by something other than this library); what was written to ``out``
    until then is incomplete.
    """
    if not isinstance(store, SqlEventStore):
        raise InvalidInputError(
            f"only SQL stores can be exported, not {type(store).__name__}; an in-memory "
            "store lives and dies with its process"
        )
    progress = progress or NoProgress()
    wanted = [check_id("session_id", session_id) for session_id in session_ids]
    count = select(func.count()).select_from(events)
    if wanted:
        count = count.where(_ev.session_id.in_(wanted))
    written = 0
    failures = read_errors(store.engine.dialect.name)
    try:
        async with store.engine.connect() as conn:
            options = _DIALECTS[conn.dialect.name].CURSOR_OPTIONS
            await conn.execution_options(**options)
            progress.start("exporting", await conn.scalar(count))
            fetch = _postgresql_rows if conn.dialect.name == "postgresql" else _sqlite_rows
            async for rows in fetch(conn, wanted):
                await in_thread(_write, out, rows)
                written += len(rows)
                progress.advance(len(rows))
                del rows  # written: free before the next fetch
    except failures as exc:
        raise StoreUnavailableError(f"export failed: {what_failed(exc, failures)}") from exc
    return written


async def _sqlite_rows(conn: AsyncConnection, wanted: list[str]) -> AsyncIterator[list[_Row]]:
    """The rows in export order, through one cursor (one snapshot), fetched by size."""
    query = select(_ev.session_id, _ev.stream_id, _ev.seq, _ev.event_id, _ev.data, _ev.timestamp)
    if wanted:
        query = query.where(_ev.session_id.in_(wanted))
    result = await conn.stream(query.order_by(_ev.session_id, _ev.stream_id, _ev.seq))
    size = FetchSize()
    # aiosqlite's cursor fetches exactly as many rows as asked for.
    while rows := [_Row._make(row) for row in await result.fetchmany(size.rows)]:
        size.update(len(row.data) for row in rows)
        yield rows
        del rows  # not held while the next fetch comes in: that would double the peak


async def _postgresql_rows(conn: AsyncConnection, wanted: list[str]) -> AsyncIterator[list[_Row]]:
    """The rows in export order, through one server-side cursor in the connection's
    read-only transaction (begun by the count), fetched by size.

    On asyncpg itself: SQLAlchemy's adapted cursor reads ahead 50 rows whenever its
    buffer runs dry, whatever was asked for -- 50 rows of 20 MB are 1 GB.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    if wanted:
        cursor = await driver.cursor(postgresql.EXPORT_SESSIONS, wanted)
    else:
        cursor = await driver.cursor(postgresql.EXPORT)
    size = FetchSize()
    while rows := [_Row._make(row) for row in await cursor.fetch(size.rows)]:
        size.update(len(row.data) for row in rows)
        yield rows
        del rows  # not held while the next fetch comes in: that would double the peak


def _write(out: IO[bytes], rows: Sequence[_Row]) -> None:
    pending: list[bytes] = []
    gathered = 0
    for row in rows:
        line = dumps_line(
            StoredEvent(
                id=row.event_id,
                stream_id=row.stream_id,
                data=_data(row),
                timestamp=row.timestamp,
                session_id=row.session_id,
                seq=row.seq,
            ).to_dict()
        )
        pending.append((line + "\n").encode("utf-8"))
        gathered += len(pending[-1])
        if gathered >= WRITE_BYTES:
            write_all(out, b"".join(pending))
            pending.clear()
            gathered = 0
    if pending:
        write_all(out, b"".join(pending))


def _data(row: _Row) -> Any:
    try:
        return decode_data(row.data)
    except (ValueError, TypeError, EventStoreError) as exc:
        raise EventStoreError(
            f"cannot export event {row.event_id!r} (session {row.session_id!r}, stream "
            f"{row.stream_id!r}, seq {row.seq}): its stored data is not JSON ({exc}); fix or "
            "delete that row"
        ) from None
