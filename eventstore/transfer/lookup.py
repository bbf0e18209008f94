"""What the import target already holds: looked up before writing, batch by batch.

An import checks every event against the target before writing it, so a re-run (or a
dry run) can tell new events from those an earlier run already stored, and from ids the
target holds with other content.
"""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import DBAPIError

from eventstore.codec import encode_data
from eventstore.errors import StoreUnavailableError
from eventstore.sql import postgresql, sqlite
from eventstore.sql.schema import event_ids_in_sessions, event_streams, events
from eventstore.sql.store import SqlEventStore
from eventstore.store import EventStore
from eventstore.transfer.staging import StagedEvent

#: Keys per lookup statement (two bound parameters each).
LOOKUP_CHUNK = 1000

_DIALECTS: dict[str, ModuleType] = {"postgresql": postgresql, "sqlite": sqlite}
_ev = events.c
_hd = event_streams.c

#: ``(session_id, event_id) -> (stream_id, data as stored)``
Held = dict[tuple[str, str], tuple[str, str]]
#: ``(session_id, stream_id) -> (events the stream holds, its own cap or None)``
Heads = dict[tuple[str, str], tuple[int, int | None]]


class TargetLookup:
    """Finds which of a batch's events the target holds already, and how.

    An SQL store is queried by ``(session_id, event_id)`` (its unique index), across
    every stream of the session. Any other store is read stream by stream
    (``get_stream_events``), which finds an id in the same stream only; an id held in
    another stream then shows up when the write is refused.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.checks = True
        self._stream: tuple[str, str] | None = None
        self._stream_events: Held = {}

    async def held(self, staged: list[StagedEvent]) -> Held:
        if isinstance(self.store, SqlEventStore):
            return await self._held_sql(self.store, staged)
        return await self._held_by_stream(staged)

    async def _held_sql(self, store: SqlEventStore, staged: list[StagedEvent]) -> Held:
        found: Held = {}
        try:
            async with store.engine.connect() as conn:
                await conn.execution_options(**_DIALECTS[conn.dialect.name].READ_OPTIONS)
                for start in range(0, len(staged), LOOKUP_CHUNK):
                    by_session: dict[str, list[str]] = {}
                    for e in staged[start : start + LOOKUP_CHUNK]:
                        by_session.setdefault(e.session_id, []).append(e.event_id)
                    query = select(_ev.session_id, _ev.event_id, _ev.stream_id, _ev.data).where(
                        event_ids_in_sessions(by_session)
                    )
                    for row in await conn.execute(query):
                        found[(row.session_id, row.event_id)] = (row.stream_id, row.data)
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot read the target: {exc.orig}") from exc
        except OSError as exc:
            raise StoreUnavailableError(f"cannot read the target: {exc}") from exc
        return found

    async def _held_by_stream(self, staged: list[StagedEvent]) -> Held:
        found: Held = {}
        for event in staged:
            key = (event.session_id, event.stream_id)
            if key != self._stream:
                self._stream = key
                held = await self.store.get_stream_events(*key)
                self._stream_events = {
                    (e.session_id, e.id): (e.stream_id, encode_data(e.data)) for e in held
                }
            hit = self._stream_events.get((event.session_id, event.event_id))
            if hit is not None:
                found[(event.session_id, event.event_id)] = hit
        return found

    async def heads(self, keys: list[tuple[str, str]]) -> Heads:
        """How many events each existing stream of ``keys`` holds, and its own cap, read
        from the stream heads (one indexed read per :data:`LOOKUP_CHUNK` streams, never
        the events)."""
        if isinstance(self.store, SqlEventStore):
            return await self._heads_sql(self.store, keys)
        found: Heads = {}
        for key in keys:
            info = await self.store.get_stream_info(*key)
            if info is not None:
                found[key] = (info.last_seq - info.first_seq + 1, info.max_events)
        return found

    async def _heads_sql(self, store: SqlEventStore, keys: list[tuple[str, str]]) -> Heads:
        found: Heads = {}
        try:
            async with store.engine.connect() as conn:
                await conn.execution_options(**_DIALECTS[conn.dialect.name].READ_OPTIONS)
                for start in range(0, len(keys), LOOKUP_CHUNK):
                    by_session: dict[str, list[str]] = {}
                    for session_id, stream_id in keys[start : start + LOOKUP_CHUNK]:
                        by_session.setdefault(session_id, []).append(stream_id)
                    query = select(
                        _hd.session_id, _hd.stream_id, _hd.first_seq, _hd.last_seq, _hd.max_events
                    ).where(
                        or_(
                            *(
                                and_(_hd.session_id == session, _hd.stream_id.in_(streams))
                                for session, streams in by_session.items()
                            )
                        )
                    )
                    for row in await conn.execute(query):
                        held = max(0, row.last_seq - row.first_seq + 1)
                        found[(row.session_id, row.stream_id)] = (held, row.max_events)
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot read the target: {exc.orig}") from exc
        except OSError as exc:
            raise StoreUnavailableError(f"cannot read the target: {exc}") from exc
        return found
