"""The MCP SDK's ``EventStore`` for one session, on top of any :class:`eventstore.EventStore`."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import anyio
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, StreamId
from mcp.server.streamable_http import EventStore as SdkEventStore
from mcp.types import JSONRPCMessage
from pydantic import TypeAdapter, ValidationError

from eventstore.codec import check_id
from eventstore.errors import EventStoreError, UnknownCursorError
from eventstore.events import StoredEvent
from eventstore.mcp.ids import EventIds, is_hashed, stream_key, stream_key_of
from eventstore.requests import StoreEvent
from eventstore.store import EventStore
from eventstore.worker import PersistenceWorker

log = logging.getLogger(__name__)

# mcp 2.x spells JSONRPCMessage as a plain union and 1.x as a RootModel; a TypeAdapter
# parses stored messages back into whichever the installed SDK sends.
_MESSAGE: TypeAdapter[Any] = TypeAdapter(JSONRPCMessage)


class SessionEventStore(SdkEventStore):
    """Resumability for one MCP session: what the SDK's transport calls to store and replay.

    The SDK hands a single ``EventStore`` to every session and never says which session is
    calling, while its stream ids (``"1"`` for every session's first tool call,
    ``"_GET_stream"``) repeat across sessions. This adapter is bound to one real
    ``mcp-session-id`` and reads and writes only that session's streams of ``store``, so a
    resume can never return another session's events. Give each session its own adapter:
    :func:`eventstore.mcp.bind_session_manager` does that for the SDK's session manager.

    * **Events.** A message is stored as the JSON the transport puts on the wire
      (``model_dump_json(by_alias=True, exclude_unset=True)``) and parsed back with the
      SDK's JSON-RPC message type. A priming event (``message is None``) is stored as
      ``null``: it is a valid cursor but is never replayed.
    * **Ids** (:mod:`eventstore.mcp.ids`) are opaque to clients, at most
      :data:`~eventstore.mcp.ids.MAX_EVENT_ID_LENGTH` characters, unique within the
      session, and name their stream.
    * **Writes.** Without ``worker``, :meth:`store_event` returns once the event is
      committed. With a :class:`~eventstore.worker.PersistenceWorker` over ``store`` it
      returns once the write is queued there (in order; the worker commits the events of
      all sessions together and rides out brief database outages), so the SDK does not
      wait for the database before it sends the event. An event only queued is lost only
      if the process dies, and the SDK's session, which lives in that process, dies with
      it: nothing could resume it anyway.
    * **Replay** first waits for the stream's queued writes, then reads the stream after
      the cursor in one query and calls ``send_callback`` for each message, holding no
      transaction while the client reads. It returns ``None`` and sends nothing (logged
      at debug level) when the ``Last-Event-ID`` is malformed, too long, of another
      session, unknown, or trimmed by the store's per-stream cap: the client's position
      is lost, and a partial replay that looks complete is never sent.
    * **Failures.** A failed write is logged and does not propagate: the SDK would
      otherwise stop routing every later message of the session. The event still goes
      out live, but its stream can no longer be resumed (replays of it return ``None``)
      rather than be replayed with a hole, and once the loss is known its later events
      are not stored.
      Committing calls are shielded from the SDK's cancellation (it cancels stream tasks
      whenever a client goes away), so a transaction is never cut short.
    """

    def __init__(
        self, store: EventStore, session_id: str, *, worker: PersistenceWorker | None = None
    ) -> None:
        self.store = store
        self.worker = worker
        self.session_id = check_id("session_id", session_id)
        self._ids = EventIds()
        # Hashed keys cannot be read back into the SDK's stream id, which a replay must
        # return; plain keys are the stream id itself and need no entry.
        self._hashed_streams: dict[str, str] = {}
        self._queued: dict[str, set[asyncio.Future[StoredEvent]]] = {}
        self._broken: set[str] = set()

    def __repr__(self) -> str:
        return f"SessionEventStore({self.store!r}, session_id={self.session_id!r})"

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Store ``message`` (``None``: a priming event) in ``stream_id``; return its id."""
        key = stream_key(stream_id)
        if is_hashed(key):
            self._hashed_streams[key] = stream_id
        event_id = self._ids.mint(key)
        if key in self._broken:
            # Nothing can resume this stream any more; writing on would only make its
            # live messages wait for the database.
            return event_id
        request = StoreEvent(
            self.session_id, key, event_id, None if message is None else _wire_json(message)
        )
        try:
            if self.worker is not None:
                self._track(request, await self.worker.submit(request))
            else:
                # The SDK cancels its stream tasks whenever a client goes away (after a
                # replay, typically while the new priming event is being written); a
                # transaction cut short would cost the pooled connection.
                with anyio.CancelScope(shield=True):
                    await self.store.store_event(self.session_id, key, event_id, request.data)
        except EventStoreError as exc:
            self._lose(request, exc)
        return event_id

    def _track(self, request: StoreEvent, queued: asyncio.Future[StoredEvent]) -> None:
        pending = self._queued.setdefault(request.stream_id, set())
        pending.add(queued)

        def settled(future: asyncio.Future[StoredEvent]) -> None:
            pending.discard(future)
            if not pending and self._queued.get(request.stream_id) is pending:
                del self._queued[request.stream_id]
            error = _failure(future)
            if error is not None:
                self._lose(request, error)

        queued.add_done_callback(settled)

    def _lose(self, request: StoreEvent, error: BaseException) -> None:
        if request.stream_id in self._broken:
            # An outage fails every queued write at once: one warning per stream.
            log.debug("session %s: also lost event %s", self.session_id, request.event_id)
            return
        self._broken.add(request.stream_id)
        log.warning(
            "session %s: could not store event %s of stream %r; the stream can no longer "
            "be resumed: %s",
            self.session_id,
            request.event_id,
            request.stream_id,
            error,
        )

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send this session's events after ``last_event_id``; return their stream id.

        Returns ``None`` (nothing sent) when the cursor is not an event this session's
        store holds; see the class docstring.
        """
        key = stream_key_of(last_event_id)
        if key is None:
            log.debug("session %s: ignoring malformed Last-Event-ID", self.session_id)
            return None
        stream_id = self._hashed_streams.get(key) if is_hashed(key) else key
        if stream_id is None:
            log.debug("session %s: Last-Event-ID names no stream of this session", self.session_id)
            return None
        pending = self._queued.get(key)
        if pending:
            done, _ = await asyncio.wait(set(pending))
            if any(_failure(future) is not None for future in done):
                self._broken.add(key)
        if key in self._broken:
            log.debug("session %s: stream %r lost an event; not resumable", self.session_id, key)
            return None
        try:
            with anyio.CancelScope(shield=True):
                events = await self.store.get_events_after(self.session_id, key, last_event_id)
        except UnknownCursorError:
            log.debug(
                "session %s: Last-Event-ID %s is not held (unknown, foreign or trimmed)",
                self.session_id,
                last_event_id,
            )
            return None
        try:
            messages = [
                EventMessage(_MESSAGE.validate_python(event.data), event.id)
                for event in events
                if event.data is not None
            ]
        except ValidationError as exc:
            log.warning(
                "session %s: stream %r holds an event that is not a JSON-RPC message; "
                "not resumable: %s",
                self.session_id,
                key,
                exc,
            )
            return None
        for message in messages:
            await send_callback(message)
        return stream_id

    async def clear(self) -> int:
        """Drop every stored event of this session; return how many were removed.

        With a worker, the writes queued before are committed first, then dropped.
        """
        return await (self.worker or self.store).clear_session(self.session_id)


def _failure(future: asyncio.Future[StoredEvent]) -> BaseException | None:
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


def _wire_json(message: JSONRPCMessage) -> Any:
    return json.loads(message.model_dump_json(by_alias=True, exclude_unset=True))
