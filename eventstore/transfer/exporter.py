"""Exporting a store as JSON lines in the current format (``eventstore import`` reads it).

One line per event, the fields of :meth:`~eventstore.events.StoredEvent.to_dict`::

    {"session_id":"s1","stream_id":"_default","seq":1,"id":"e1","data":{...},"timestamp":1700000000000}

Lines come session by session, stream by stream, in ``seq`` order, read through one
server-side cursor (one consistent snapshot) in chunks, so memory stays flat for any
number of events and concurrent writers are not blocked.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import IO, Any

from sqlalchemy import func, select

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

#: Rows fetched from the database at a time.
CHUNK = 5000

_DIALECTS: dict[str, ModuleType] = {"postgresql": postgresql, "sqlite": sqlite}
_ev = events.c


async def export_events(
    store: EventStore,
    out: IO[bytes],
    *,
    session_ids: Sequence[str] = (),
    progress: ProgressSink | None = None,
) -> int:
    """Write the events of ``store`` to ``out`` as UTF-8 JSON lines; return how many.

    ``session_ids`` limits the export to those sessions. Only SQL stores can be
    exported: an in-memory store has nothing another process could read. Raises
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
    query = select(_ev.session_id, _ev.stream_id, _ev.seq, _ev.event_id, _ev.data, _ev.timestamp)
    count = select(func.count()).select_from(events)
    if wanted:
        query = query.where(_ev.session_id.in_(wanted))
        count = count.where(_ev.session_id.in_(wanted))
    query = query.order_by(_ev.session_id, _ev.stream_id, _ev.seq)
    written = 0
    failures = read_errors(store.engine.dialect.name)
    try:
        async with store.engine.connect() as conn:
            options = _DIALECTS[conn.dialect.name].CURSOR_OPTIONS
            await conn.execution_options(**options)
            progress.start("exporting", await conn.scalar(count))
            result = await conn.stream(query.execution_options(yield_per=CHUNK))
            async for rows in result.partitions():
                await in_thread(_write, out, rows)
                written += len(rows)
                progress.advance(len(rows))
    except failures as exc:
        raise StoreUnavailableError(f"export failed: {what_failed(exc, failures)}") from exc
    return written


def _write(out: IO[bytes], rows: Sequence[Any]) -> None:
    lines = [
        dumps_line(
            StoredEvent(
                id=row.event_id,
                stream_id=row.stream_id,
                data=_data(row),
                timestamp=row.timestamp,
                session_id=row.session_id,
                seq=row.seq,
            ).to_dict()
        )
        for row in rows
    ]
    write_all(out, ("\n".join(lines) + "\n").encode("utf-8"))


def _data(row: Any) -> Any:
    try:
        return decode_data(row.data)
    except (ValueError, TypeError, EventStoreError) as exc:
        raise EventStoreError(
            f"cannot export event {row.event_id!r} (session {row.session_id!r}, stream "
            f"{row.stream_id!r}, seq {row.seq}): its stored data is not JSON ({exc}); fix or "
            "delete that row"
        ) from None
