"""The MCP SDK's ``EventStore`` for one session, on top of any :class:`eventstore.EventStore`."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from functools import partial
from typing import Any

import anyio
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventId,
    EventMessage,
    StreamId,
)
from mcp.server.streamable_http import EventStore as SdkEventStore
from mcp.types import JSONRPCMessage
from pydantic import TypeAdapter, ValidationError

from eventstore.codec import check_id
from eventstore.errors import EventStoreError, StoreUnavailableError, UnknownCursorError
from eventstore.events import StoredEvent
from eventstore.mcp.ids import EventIds, is_hashed, parse_event_id, stream_key
from eventstore.mcp.reattach import StreamAttachments
from eventstore.requests import ClearStream, StoreEvent
from eventstore.store import EventStore
from eventstore.worker import PersistenceWorker
from eventstore.worker.retry import OutageRetrier

log = logging.getLogger(__name__)

# mcp 2.x spells JSONRPCMessage as a plain union and 1.x as a RootModel; a TypeAdapter
# parses stored messages back into whichever the installed SDK sends.
_MESSAGE: TypeAdapter[Any] = TypeAdapter(JSONRPCMessage)

#: A resume refused for good -- a session's own cursor trimmed by the cap, a stream that
#: lost an event -- is logged at WARNING at most this often per stream (the SDK client
#: retries it every few hundred milliseconds).
TRIM_WARNING_INTERVAL_SECONDS = 60
#: Reads a replay makes with the stream's live messages flowing, before it holds them
#: for its last read (the tool may go on adding events while the client catches up).
_CATCH_UP_ROUNDS = 3
#: Events a replay reads at once (it sends them before it reads the next page).
REPLAY_PAGE = 500
#: Longest SDK stream id (a JSON-RPC request id) whose stream can be resumed.
MAX_RESUMABLE_STREAM_ID_LENGTH = 1024


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
      ``null``: it is a valid cursor but is never replayed. When the stream's newest
      event already is a priming event with nothing after it (a reconnect that missed
      nothing), its id is returned again instead of storing another row that the
      per-stream cap would count.
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
    * **Replay** first waits for the stream's unsettled writes, then reads the stream
      after the cursor :data:`REPLAY_PAGE` events at a time, one query each, and calls
      ``send_callback`` for each message of a page before reading the next: a replay
      holds one page in memory, and no transaction while the client reads. It returns
      ``None`` and sends nothing when the ``Last-Event-ID`` is malformed, too long, of
      another session, unknown, or trimmed by the store's per-stream cap: the client's
      position is lost, and a partial replay that looks complete is never sent. That is
      logged at debug level, except for a cursor this session minted that the cap
      dropped: a WARNING (at most once a minute per stream), since the SDK client then
      reconnects until its request times out.
    * **Replay of an answered request** ends with its response, even when the stream
      goes on: what follows a response is a new request that reused the id (MCP allows
      that once the first is answered; both share the SDK's stream id), and it is
      replayed only from a cursor of its own; a resume from the response itself replays
      nothing and returns ``None``. Such a replay returns ``None`` once the
      response is sent: nothing follows a response, and
      a stream attached to the resuming connection would stay registered under the
      request id until the client's disconnect is noticed, when the SDK's clean-up of
      that connection removes whatever is registered under the id by then -- the
      stream of a new request sent with the same id right after, which then lost its
      response.
    * **Replay while the tool is still sending.** With :attr:`attachments` (set by
      :class:`~eventstore.mcp.SessionBinding`), a replay whose stream is not attached
      to a live connection catches up, then holds the router's next message for that
      stream until the SDK has re-attached it, after reading what was stored meanwhile
      (see :mod:`eventstore.mcp.reattach`): every message reaches the resuming client
      exactly once, in order. An adapter used without it leaves the SDK's own window
      open: a message stored while the SDK re-attaches the stream is not sent live, and
      the new priming event lands after it.
    * **Finished streams.** With ``finished_stream_ttl``, a request's stream is dropped
      that many seconds after its response was stored, with this adapter's state for
      it. A priming event on it (a resume, or the request id used again) starts that
      wait again, a message stops it (the id's new request), and a drop waits for the
      replays of the stream under way (one that starts during the drop waits for it, and
      then finds nothing). An event of the stream stored while its drop is
      under way waits until the drop can no longer take it (without ``worker``, until
      the stream is cleared), so the id's new request keeps its events. A session with
      many requests then holds only the recent ones. A client that missed the response and
      comes back later finds nothing to resume (``None``), as after a trimmed cursor.
    * **Failures.** A failed write is logged and does not propagate: the SDK would
      otherwise stop routing every later message of the session. The event still goes
      out live, but its stream can no longer be resumed (replays of it return ``None``)
      rather than be replayed with a hole, and once the loss is known its later events
      are not stored.
      Committing calls are shielded from the SDK's cancellation (it cancels stream tasks
      whenever a client goes away), so a transaction is never cut short.
    """

    def __init__(
        self,
        store: EventStore,
        session_id: str,
        *,
        worker: PersistenceWorker | None = None,
        attachments: StreamAttachments | None = None,
        retrier: OutageRetrier | None = None,
        finished_stream_ttl: float | None = None,
    ) -> None:
        self.store = store
        self.worker = worker
        #: Seconds after a request's response is stored that its stream is dropped
        #: (``None``: kept while the session lives).
        self.finished_stream_ttl = finished_stream_ttl
        #: Reruns a write without ``worker`` through a database outage (``None``: a
        #: failed write gives its stream up at once).
        self.retrier = retrier
        #: The transport's stream registry (see :mod:`eventstore.mcp.reattach`); set by
        #: :class:`~eventstore.mcp.SessionBinding`. Without it a replay does not hold the
        #: stream's live messages while the SDK re-attaches it.
        self.attachments = attachments
        self.session_id = check_id("session_id", session_id)
        #: Whether this adapter ever wrote an event (there is something to clear).
        self.stored_any = False
        self._ids = EventIds()
        # Hashed keys cannot be read back into the SDK's stream id, which a replay must
        # return; plain keys are the stream id itself and need no entry.
        self._hashed_streams: dict[str, str] = {}
        # Per stream: how many writes are not yet settled (committed or failed), and the
        # event a replay waits on until there are none (made only when one waits: a
        # future per write cost more memory than the event itself).
        self._in_flight: dict[str, int] = {}
        self._drained: dict[str, asyncio.Event] = {}
        self._broken: set[str] = set()
        # Per stream: (seq, event id, is a priming event) of the newest committed event.
        self._newest: dict[str, tuple[int, str, bool]] = {}
        # Per stream: the first and the last id counter minted (an own cursor lies between).
        self._minted: dict[str, tuple[int, int]] = {}
        # Per stream: when a refused resume of it was last logged at WARNING.
        self._warned: dict[str, float] = {}
        # Per stream: the id counters of the responses stored in it. Nothing of a
        # request follows its response, so a resume from one replays nothing.
        self._responses: dict[str, set[int]] = {}
        # Per stream whose last message is a response: that message's id counter, and
        # the timer that drops the stream.
        self._finished: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        # Per stream being dropped: set once its new events can no longer be caught by
        # the drop, and the drop's task.
        self._dropping: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        # Per stream: replays of it under way (its drop waits for them).
        self._replaying: dict[str, int] = {}
        # Whether a client has had the standalone GET stream (its messages are stored
        # from then on; without attachments to tell, always).
        self._get_stream_seen = False
        self._closed = False

    def __repr__(self) -> str:
        return f"SessionEventStore({self.store!r}, session_id={self.session_id!r})"

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Store ``message`` (``None``: a priming event) in ``stream_id``; return its id."""
        if message is not None and self.attachments is not None:
            # A replay of this stream may be handing it back to the SDK right now: wait
            # until the SDK delivers the stream live again (see eventstore.mcp.reattach).
            await self.attachments.wait(stream_id)
        if message is not None and stream_id == GET_STREAM_KEY and not self._get_stream_opened():
            # No client ever had this session's standalone GET stream, so none holds a
            # cursor into it (a GET without Last-Event-ID gets new messages only), and
            # the SDK delivers this message nowhere: stored, it would only pile up.
            return self._ids.mint_numbered(stream_key(stream_id))[1]
        key = stream_key(stream_id)
        while (dropping := self._dropping.get(key)) is not None and not dropping[0].is_set():
            # The request id came back while its old stream is being dropped: stored
            # now, the new request's events would be deleted with the old ones (and the
            # state kept for the old stream would be handed to the new one).
            await dropping[0].wait()
        if is_hashed(key) and key not in self._hashed_streams and key not in self._broken:
            if len(stream_id) > MAX_RESUMABLE_STREAM_ID_LENGTH:
                # A replay must hand the SDK its stream id back, so the adapter keeps
                # it: a client choosing huge request ids would grow the server with each.
                self._broken.add(key)
                log.debug(
                    "session %s: stream id of %d characters; stream %r is not resumable",
                    self.session_id,
                    len(stream_id),
                    key,
                )
            else:
                self._hashed_streams[key] = stream_id
        if message is None and (reused := self._reusable_priming(key)) is not None:
            # The stream's newest event is already a priming event with nothing after
            # it: the same cursor again, and no second row to count against the cap.
            if self.finished_stream_ttl is not None:
                # Still a resume: its client is back, so a finished stream's wait starts
                # anew (else it is dropped a TTL after the first resume, under a client
                # that just reconnected).
                self._note_message(key, self._minted[key][1], None, False)
            return reused
        counter, event_id = self._ids.mint_numbered(key)
        self._minted[key] = (self._minted.get(key, (counter, counter))[0], counter)
        if key in self._broken or self._closed:
            # Nothing can resume this stream (or the session) any more; writing on
            # would only make its live messages wait for the database.
            return event_id
        try:
            data = None if message is None else _wire_json(message)
        except ValueError as exc:
            # A message pydantic cannot serialise (a lone surrogate in a string): the
            # transport fails to send it too, but that fails one call, while an error
            # raised here would stop the router of the whole session.
            self._lose(key, event_id, exc)
            return event_id
        response = _is_response(data)
        if response:
            self._responses.setdefault(key, set()).add(counter)
        if self.finished_stream_ttl is not None:
            self._note_message(key, counter, data, response)
        request = StoreEvent(self.session_id, key, event_id, data)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self.stored_any = True
        handed_to_worker = accounted = False
        try:
            if self.worker is not None:
                queued = await self.worker.submit(request)
                queued.add_done_callback(partial(self._committed, request))
                handed_to_worker = True
            else:
                stored = await self._store_now(request)
                self._record(key, stored)
            accounted = True
        except EventStoreError as exc:
            self._lose(key, event_id, exc)
            accounted = True
        finally:
            if not accounted:
                # Cancelled while waiting for room in the worker's queue (or an error
                # that is not the store's): never stored, so the stream has a hole.
                self._broken.add(key)
            if not handed_to_worker:
                self._settle(key)
        return event_id

    async def _store_now(self, request: StoreEvent) -> StoredEvent:
        async def attempt() -> StoredEvent:
            # The SDK cancels its stream tasks whenever a client goes away (after a
            # replay, typically while the new priming event is being written); a
            # transaction cut short would cost the pooled connection. The waits between
            # attempts stay cancellable.
            with anyio.CancelScope(shield=True):
                stored = await self.store.store_event(
                    request.session_id, request.stream_id, request.event_id, request.data
                )
            return stored

        try:
            return await attempt()
        except StoreUnavailableError:
            # Only an outage pays for the retrier's bookkeeping.
            if self.retrier is None:
                raise
            return await self.retrier.call(attempt)

    def _get_stream_opened(self) -> bool:
        """Whether a client has had the GET stream (once true, it stays true)."""
        if not self._get_stream_seen:
            self._get_stream_seen = self.attachments is None or self.attachments.attached(
                GET_STREAM_KEY
            )
        return self._get_stream_seen

    def _reusable_priming(self, key: str) -> str | None:
        if key in self._broken or key in self._in_flight:
            return None
        newest = self._newest.get(key)
        return newest[1] if newest is not None and newest[2] else None

    def _record(self, key: str, stored: StoredEvent) -> None:
        newest = self._newest.get(key)
        if newest is None or stored.seq > newest[0]:
            self._newest[key] = (stored.seq, stored.id, stored.data is None)

    def _committed(self, request: StoreEvent, queued: asyncio.Future[StoredEvent]) -> None:
        error = _failure(queued)
        if error is None:
            self._record(request.stream_id, queued.result())
        else:
            self._lose(request.stream_id, request.event_id, error)
        self._settle(request.stream_id)

    def _settle(self, key: str) -> None:
        """One write of stream ``key`` is settled; wake a replay once none is left."""
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
            return
        del self._in_flight[key]
        if (drained := self._drained.pop(key, None)) is not None:
            drained.set()

    async def _writes_settled(self, key: str) -> None:
        while key in self._in_flight:
            drained = self._drained.get(key)
            if drained is None:
                drained = self._drained[key] = asyncio.Event()
            await drained.wait()

    def _lose(self, key: str, event_id: str, error: BaseException) -> None:
        if key in self._broken:
            # An outage fails every queued write at once: one warning per stream.
            log.debug("session %s: also lost event %s", self.session_id, event_id)
            return
        self._broken.add(key)
        log.warning(
            "session %s: could not store event %s of stream %r; the stream can no longer "
            "be resumed: %s",
            self.session_id,
            event_id,
            key,
            error,
        )

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send this session's events after ``last_event_id``; return their stream id.

        Returns ``None`` (nothing sent) when the cursor is not an event this session's
        store holds; see the class docstring.
        """
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            log.debug("session %s: ignoring malformed Last-Event-ID", self.session_id)
            return None
        nonce, counter, key = parsed
        if nonce == self._ids.nonce and counter in self._responses.get(key, ()):
            # The client has the response: what follows it is a new request that reused
            # the id, and attached here, this connection would hold that id.
            self._log_answered(key)
            return None
        while (dropping := self._dropping.get(key)) is not None and not dropping[1].done():
            # Too late for this resume: read now, the stream could vanish between two
            # pages, after some were sent. Once it is dropped, nothing is sent.
            await asyncio.wait({dropping[1]})
        stream_id = self._hashed_streams.get(key) if is_hashed(key) else key
        if stream_id is None:
            log.debug("session %s: Last-Event-ID names no stream of this session", self.session_id)
            return None
        self._replaying[key] = self._replaying.get(key, 0) + 1
        try:
            return await self._replay(key, stream_id, last_event_id, send_callback)
        finally:
            left = self._replaying[key] - 1
            if left:
                self._replaying[key] = left
            else:
                del self._replaying[key]

    async def _replay(
        self, key: str, stream_id: str, last_event_id: str, send_callback: EventCallback
    ) -> StreamId | None:
        forwarded = await self._forward(key, last_event_id, send_callback)
        if forwarded is None:
            return None
        cursor, answered = forwarded
        if answered:
            # Nothing follows a response, so the stream must not be attached to this
            # connection: attached, it would stay registered under the request id
            # until the client's disconnect is noticed, and the SDK's clean-up of this
            # connection then removes whatever is registered under that id by then --
            # the stream of a new request the client sent with the same id right after,
            # which so loses its messages. Unattached, this connection ends after the
            # response, as the SDK's own POST stream does.
            self._log_answered(key)
            return None
        attachments = self.attachments
        if attachments is None or attachments.attached(stream_id):
            # Still attached to an earlier connection: the SDK will not re-attach it to
            # this one, and its live messages keep going where they went.
            return stream_id
        # Catch up while the tool may still be adding events, then hold the stream's
        # live messages for one last read until the SDK has re-attached the stream.
        for _ in range(_CATCH_UP_ROUNDS):
            moved = await self._forward(key, cursor, send_callback)
            if moved is None:
                return None
            if moved[1]:
                self._log_answered(key)
                return None
            if moved[0] == cursor:
                break
            cursor = moved[0]
        while not attachments.close(stream_id):
            # Another replay of this stream is handing it over right now. Returning the
            # stream now would let the SDK attach it to both connections: the later
            # registration orphans the earlier (left open, silent) and this one misses
            # what the gate let through to the other. Wait for that hand-over to end.
            await attachments.wait(stream_id)
            if attachments.attached(stream_id):
                # The other connection has it: this one ends after what it was sent, and
                # its client resumes from there.
                return stream_id
        try:
            sent = await self._forward(key, cursor, send_callback)
        except BaseException:
            attachments.open(stream_id)
            raise
        if sent is None or sent[1]:
            attachments.open(stream_id)
            if sent is not None:
                self._log_answered(key)
            return None
        # No await from here on: the SDK checks its registry as soon as this returns.
        if not attachments.hand_over(stream_id):
            log.debug(
                "session %s: stream %r not handed over in time; the client resumes again",
                self.session_id,
                key,
            )
            return None
        return stream_id

    def _log_answered(self, key: str) -> None:
        log.debug("session %s: stream %r replayed to its response", self.session_id, key)

    async def _forward(
        self, key: str, cursor: str, send_callback: EventCallback
    ) -> tuple[str, bool] | None:
        """Send the stream's events after ``cursor``, :data:`REPLAY_PAGE` at a time.

        Returns the id of the last one (``cursor`` if there were none) and whether the
        last message sent is a response (``False`` if none was sent), or ``None``:
        refuse. Pages keep a replay's memory to one page, however long the stream (with
        no cap) and however slowly the client reads (sending waits for it).
        """
        while True:
            events = await self._read(key, cursor)
            if events is None:
                return None
            read = len(events)
            answer = _first_response(events)
            if answer is not None:
                # Nothing of the request follows its response: what does is a new
                # request that reused the id (MCP allows that once the first was
                # answered), and a cursor of the old request must not replay it.
                del events[answer + 1 :]
            if not await self._send(key, events, send_callback):
                return None
            if events:
                cursor = events[-1].id
            if answer is not None or read < REPLAY_PAGE:
                return cursor, answer is not None

    async def _read(self, key: str, after: str) -> list[StoredEvent] | None:
        """A page of the stream's events after ``after``, once its writes are settled;
        ``None``: refuse."""
        await self._writes_settled(key)
        if key in self._broken:
            self._warn_now_and_then(
                key,
                "session %s: a resume of stream %r is refused: an event of it could not be "
                "stored, so a replay would have a hole (the SDK client keeps reconnecting "
                "until its request times out)",
                self.session_id,
                key,
            )
            return None
        try:
            with anyio.CancelScope(shield=True):
                events = await self.store.get_events_after(
                    self.session_id, key, after, limit=REPLAY_PAGE
                )
        except UnknownCursorError:
            await self._unknown_cursor(key, after)
            return None
        except StoreUnavailableError as exc:
            # This resume only: the client comes back, and the stream may replay then.
            log.warning(
                "session %s: cannot read stream %r to replay it now (the client will "
                "resume again): %s",
                self.session_id,
                key,
                exc,
            )
            return None
        return events

    def _warn_now_and_then(self, key: str, message: str, *args: object) -> None:
        """Log ``message`` at WARNING at most once a minute per stream (the SDK client
        retries a refused resume every few hundred milliseconds), else at debug level."""
        now = time.monotonic()
        if now - self._warned.get(key, -math.inf) < TRIM_WARNING_INTERVAL_SECONDS:
            log.debug(message, *args)
            return
        self._warned[key] = now
        log.warning(message, *args)

    async def _send(
        self, key: str, events: list[StoredEvent], send_callback: EventCallback
    ) -> bool:
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
            return False
        for message in messages:
            await send_callback(message)
        return True

    async def _unknown_cursor(self, key: str, cursor: str) -> None:
        parsed = parse_event_id(cursor)
        minted = self._minted.get(key)
        own = (
            parsed is not None
            and minted is not None
            and parsed[0] == self._ids.nonce
            and minted[0] <= parsed[1] <= minted[1]
        )
        if own and await self._trimmed(key):
            self._warn_now_and_then(
                key,
                "session %s: the client resumed stream %r from event %s, which the "
                "per-stream cap (max_events_per_stream) already dropped; its position "
                "is lost and nothing is replayed (the SDK client keeps reconnecting "
                "until its request times out). Raise the cap above what one stream "
                "sends while a client is away. (Repeats are logged at debug level "
                "for %d s.)",
                self.session_id,
                key,
                cursor,
                TRIM_WARNING_INTERVAL_SECONDS,
            )
            return
        log.debug(
            "session %s: Last-Event-ID %s is not held (unknown, foreign or trimmed)",
            self.session_id,
            cursor,
        )

    async def _trimmed(self, key: str) -> bool:
        try:
            with anyio.CancelScope(shield=True):
                info = await self.store.get_stream_info(self.session_id, key)
        except EventStoreError:
            return False
        return info is not None and info.first_seq > 1

    # -- dropping finished streams -----------------------------------------------------

    def _note_message(self, key: str, counter: int, data: Any, response: bool) -> None:
        """An event of stream ``key``: a response starts its drop timer, a priming event
        on a finished stream starts it again (a resume, or a request id used again), and
        any other message stops it (the id's new request is under way)."""
        finished = self._finished.pop(key, None)
        if finished is not None:
            finished[1].cancel()
        if response or (data is None and finished is not None):
            assert self.finished_stream_ttl is not None
            timer = asyncio.get_running_loop().call_later(
                self.finished_stream_ttl, self._expire, key, counter
            )
            self._finished[key] = (counter, timer)

    def _expire(self, key: str, counter: int) -> None:
        finished = self._finished.get(key)
        if self._closed or finished is None or finished[0] != counter:
            return
        if key in self._replaying:
            # A resume is reading it page by page: dropping it now would cut that short.
            assert self.finished_stream_ttl is not None
            timer = asyncio.get_running_loop().call_later(
                min(self.finished_stream_ttl, 1.0), self._expire, key, counter
            )
            self._finished[key] = (counter, timer)
            return
        del self._finished[key]
        writable = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._drop(key, writable))
        self._dropping[key] = (writable, task)
        task.add_done_callback(partial(self._dropped, key))

    def _dropped(self, key: str, task: asyncio.Task[None]) -> None:
        dropping = self._dropping.get(key)
        if dropping is not None and dropping[1] is task:
            dropping[0].set()
            del self._dropping[key]

    async def _drop(self, key: str, writable: asyncio.Event) -> None:
        """Clear a stream whose request was answered ``finished_stream_ttl`` ago: a
        client that missed the response has resumed by then, or given up.

        New events of the stream wait (see :meth:`store_event`) until ``writable``.
        """
        was_broken = key in self._broken
        try:
            with anyio.CancelScope(shield=True):
                # Its own writes still under way would otherwise land after the clear,
                # or record the old stream's newest event after its state is forgotten.
                await self._writes_settled(key)
                if self.worker is None:
                    await self.store.clear_stream(self.session_id, key)
                    self._forget(key)
                else:
                    # The worker commits in queue order, so events queued after the clear
                    # survive it: the new request need not wait for the commit (which,
                    # in an outage, could take the worker's whole retry time).
                    cleared = await self.worker.submit(ClearStream(self.session_id, key))
                    self._forget(key)
                    writable.set()
                    await cleared
        except EventStoreError as exc:
            if was_broken:
                # Its events may still be there, hole and all.
                self._broken.add(key)
            log.warning(
                "session %s: could not drop the finished stream %r: %s", self.session_id, key, exc
            )
            return
        log.debug("session %s: dropped the finished stream %r", self.session_id, key)

    def _forget(self, key: str) -> None:
        for state in (
            self._hashed_streams,
            self._newest,
            self._minted,
            self._warned,
            self._responses,
        ):
            state.pop(key, None)
        self._broken.discard(key)

    def close(self) -> None:
        """The SDK discarded the session: store nothing more, hold no live message."""
        self._closed = True
        for _, timer in self._finished.values():
            timer.cancel()
        self._finished.clear()
        if self.attachments is not None:
            self.attachments.open_all()

    async def clear(self) -> int:
        """Drop every stored event of this session; return how many were removed.

        With a worker, the writes queued before are committed first, then dropped.
        """
        removed = await (self.worker or self.store).clear_session(self.session_id)
        self._newest.clear()
        return removed


def _is_response(data: Any) -> bool:
    return isinstance(data, dict) and "id" in data and ("result" in data or "error" in data)


def _first_response(events: list[StoredEvent]) -> int | None:
    """The index of the first response in ``events``; ``None`` if there is none."""
    for index, event in enumerate(events):
        if _is_response(event.data):
            return index
    return None


def _failure(future: asyncio.Future[StoredEvent]) -> BaseException | None:
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


def _wire_json(message: JSONRPCMessage) -> Any:
    return json.loads(message.model_dump_json(by_alias=True, exclude_unset=True))
