"""In-process backend: :class:`InMemoryEventStore`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from eventstore.clock import now_ms
from eventstore.codec import (
    DEFAULT_MAX_EVENT_BYTES,
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
    encode_data,
    same_content,
)
from eventstore.errors import (
    DuplicateEventError,
    EventStoreError,
    InvalidInputError,
    StoreClosedError,
    UnknownCursorError,
)
from eventstore.events import StoredEvent
from eventstore.requests import (
    ClearSession,
    ClearStream,
    StoreEvent,
    UpdateLastEventId,
    WriteRequest,
)
from eventstore.store import ApplyResult, EventStore, StreamInfo


class _Entry:
    __slots__ = ("event_id", "seq", "text", "timestamp")

    def __init__(self, event_id: str, seq: int, text: str, timestamp: int) -> None:
        self.event_id = event_id
        self.seq = seq
        self.text = text
        self.timestamp = timestamp


_TRIMMED = _Entry("", 0, "", 0)


class _Stream:
    """Retained events ``entries[start:]`` with seqs ``first_seq..last_seq``.

    A list with a moving start instead of a deque: position ``seq - first_seq`` is an O(1)
    index, so a replay of ``k`` events costs O(k) wherever the cursor is.
    """

    __slots__ = (
        "created_at",
        "entries",
        "last_event_id",
        "last_seq",
        "max_events",
        "start",
        "updated_at",
    )

    def __init__(self, now: int) -> None:
        self.entries: list[_Entry] = []
        self.start = 0
        self.last_seq = 0
        self.max_events: int | None = None
        self.last_event_id: str | None = None
        self.created_at = now
        self.updated_at = now

    @property
    def first_seq(self) -> int:
        if self.start < len(self.entries):
            return self.entries[self.start].seq
        return self.last_seq + 1

    def __len__(self) -> int:
        return len(self.entries) - self.start

    def holds(self, entry: _Entry) -> bool:
        """Whether ``entry`` is retained in this stream (a session's ids span its streams)."""
        position = self.start + entry.seq - self.first_seq
        return self.start <= position < len(self.entries) and self.entries[position] is entry

    def drop_oldest(self, keep: int, index: dict[str, _Entry]) -> None:
        excess = len(self) - keep
        for i in range(self.start, self.start + excess):
            del index[self.entries[i].event_id]
            # A trimmed event's memory goes now, not at the next compaction: under a
            # small cap, thousands of streams would otherwise each hold dead events.
            self.entries[i] = _TRIMMED
        self.start += max(excess, 0)
        # Compacting once the dead prefix is half the list keeps trimming amortised O(1)
        # and the dead slots (8 bytes each) fewer than the retained events.
        if self.start * 2 >= len(self.entries):
            del self.entries[: self.start]
            self.start = 0


class _Session:
    __slots__ = ("by_event_id", "streams")

    def __init__(self) -> None:
        self.streams: dict[str, _Stream] = {}
        # Every retained event of the session by id: the O(1) cursor lookup, and the
        # session-wide uniqueness of event ids.
        self.by_event_id: dict[str, _Entry] = {}


class InMemoryEventStore(EventStore):
    """Events in process memory: ``session -> stream -> events``.

    Fast and exact, lost when the process exits. Every operation runs without awaiting
    in between, so concurrent tasks of one event loop see each operation as atomic; the
    store is not meant to be shared between threads. Streams and sessions without events
    are removed, so keys do not pile up.

    :param max_events_per_stream: store-wide cap (``None``: unlimited).
    :param max_event_bytes: largest accepted JSON encoding of ``data``.
    """

    def __init__(
        self,
        *,
        max_events_per_stream: int | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._cap = check_cap(max_events_per_stream)
        self.max_event_bytes = check_max_event_bytes(max_event_bytes)
        self._sessions: dict[str, _Session] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("this InMemoryEventStore is closed")

    def _cap_of(self, stream: _Stream) -> int | None:
        return stream.max_events if stream.max_events is not None else self._cap

    async def apply(self, requests: Sequence[WriteRequest]) -> list[ApplyResult]:
        self._check_open()
        results: list[ApplyResult] = []
        for request in check_requests(requests):
            try:
                results.append(self._apply_one(request))
            except EventStoreError as exc:
                results.append(exc)
        return results

    def _apply_one(self, request: WriteRequest) -> ApplyResult:
        if isinstance(request, StoreEvent):
            return self._store(request)
        if isinstance(request, ClearStream):
            return self._clear_stream(request.session_id, request.stream_id)
        if isinstance(request, ClearSession):
            return self._clear_session(request.session_id)
        if isinstance(request, UpdateLastEventId):
            self._update_last_event_id(request)
            return None
        raise InvalidInputError(f"not a write request: {request!r}")

    def _store(self, request: StoreEvent) -> StoredEvent:
        session_id = check_id("session_id", request.session_id)
        stream_id = check_id("stream_id", request.stream_id)
        event_id = check_id("event_id", request.event_id)
        text = encode_data(request.data, self.max_event_bytes)
        timestamp = check_timestamp(request.timestamp)
        session = self._sessions.get(session_id)
        if session is not None and (known := session.by_event_id.get(event_id)) is not None:
            stream = session.streams.get(stream_id)
            if stream is not None and stream.holds(known) and same_content(known.text, text):
                return self._event(session_id, stream_id, known)
            raise DuplicateEventError(session_id, event_id)
        now = now_ms()
        if session is None:
            session = self._sessions[session_id] = _Session()
        stream = session.streams.get(stream_id)
        if stream is None:
            stream = session.streams[stream_id] = _Stream(now)
        stream.last_seq += 1
        # Never back, so that events stored "now" keep their order in time when the
        # clock steps back (as the SQL stores keep it).
        if now > stream.updated_at:
            stream.updated_at = now
        entry = _Entry(
            event_id,
            stream.last_seq,
            text,
            stream.updated_at if timestamp is None else timestamp,
        )
        stream.entries.append(entry)
        session.by_event_id[event_id] = entry
        cap = self._cap_of(stream)
        if cap is not None and len(stream) > cap:
            stream.drop_oldest(cap, session.by_event_id)
        return self._event(session_id, stream_id, entry)

    def _clear_stream(self, session_id: str, stream_id: str) -> int:
        check_id("session_id", session_id)
        check_id("stream_id", stream_id)
        session = self._sessions.get(session_id)
        if session is None or stream_id not in session.streams:
            return 0
        stream = session.streams.pop(stream_id)
        for entry in stream.entries[stream.start :]:
            del session.by_event_id[entry.event_id]
        if not session.streams:
            del self._sessions[session_id]
        return len(stream)

    def _clear_session(self, session_id: str) -> int:
        check_id("session_id", session_id)
        session = self._sessions.pop(session_id, None)
        return 0 if session is None else len(session.by_event_id)

    def _update_last_event_id(self, request: UpdateLastEventId) -> None:
        check_id("event_id", request.event_id)
        stream = self._stream(request.session_id, request.stream_id)
        if stream is None:
            raise InvalidInputError(f"stream {request.stream_id!r} does not exist in this session")
        stream.last_event_id = request.event_id
        stream.updated_at = max(stream.updated_at, now_ms())

    def _stream(self, session_id: str, stream_id: str) -> _Stream | None:
        check_id("session_id", session_id)
        check_id("stream_id", stream_id)
        session = self._sessions.get(session_id)
        return None if session is None else session.streams.get(stream_id)

    @staticmethod
    def _event(session_id: str, stream_id: str, entry: _Entry) -> StoredEvent:
        return StoredEvent(
            id=entry.event_id,
            stream_id=stream_id,
            data=decode_data(entry.text),
            timestamp=entry.timestamp,
            session_id=session_id,
            seq=entry.seq,
        )

    def _slice(
        self, session_id: str, stream_id: str, stream: _Stream, begin: int, limit: int | None
    ) -> list[StoredEvent]:
        end = len(stream.entries) if limit is None else begin + limit
        return [self._event(session_id, stream_id, entry) for entry in stream.entries[begin:end]]

    async def get_events_after(
        self,
        session_id: str,
        stream_id: str,
        after_event_id: str,
        *,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        self._check_open()
        check_id("after_event_id", after_event_id)
        limit = check_limit(limit)
        stream = self._stream(session_id, stream_id)
        session = self._sessions.get(session_id)
        cursor = None if session is None else session.by_event_id.get(after_event_id)
        if stream is None or cursor is None or cursor.seq < stream.first_seq:
            raise UnknownCursorError(session_id, stream_id, after_event_id)
        position = stream.start + cursor.seq - stream.first_seq
        if position >= len(stream.entries) or stream.entries[position] is not cursor:
            raise UnknownCursorError(session_id, stream_id, after_event_id)
        return self._slice(session_id, stream_id, stream, position + 1, limit)

    async def get_stream_events(
        self, session_id: str, stream_id: str, *, limit: int | None = None
    ) -> list[StoredEvent]:
        self._check_open()
        limit = check_limit(limit)
        stream = self._stream(session_id, stream_id)
        if stream is None:
            return []
        return self._slice(session_id, stream_id, stream, stream.start, limit)

    async def stream_count(self, session_id: str) -> int:
        self._check_open()
        check_id("session_id", session_id)
        session = self._sessions.get(session_id)
        return 0 if session is None else len(session.streams)

    async def get_stream_info(self, session_id: str, stream_id: str) -> StreamInfo | None:
        self._check_open()
        stream = self._stream(session_id, stream_id)
        if stream is None:
            return None
        return StreamInfo(
            session_id=session_id,
            stream_id=stream_id,
            last_seq=stream.last_seq,
            first_seq=stream.first_seq,
            max_events=stream.max_events,
            last_event_id=stream.last_event_id,
            created_at=stream.created_at,
            updated_at=stream.updated_at,
        )

    async def get_max_events_per_stream(self) -> int | None:
        self._check_open()
        return self._cap

    async def set_max_events_per_stream(
        self,
        limit: int | None,
        *,
        session_id: str | None = None,
        stream_id: str | None = None,
    ) -> None:
        self._check_open()
        limit = check_cap(limit)
        ids = check_cap_stream(session_id, stream_id)
        if ids is None:
            self._cap = limit
            targets = [
                (session, stream)
                for session in self._sessions.values()
                for stream in session.streams.values()
            ]
        else:
            session_id, stream_id = ids
            stream = self._stream(session_id, stream_id)
            if stream is None:
                raise InvalidInputError(
                    f"stream {stream_id!r} does not exist in session {session_id!r}"
                )
            stream.max_events = limit
            targets = [(self._sessions[session_id], stream)]
        for session, stream in targets:
            cap = self._cap_of(stream)
            if cap is not None and len(stream) > cap:
                stream.drop_oldest(cap, session.by_event_id)

    async def prune_idle_sessions(self, idle_ms: int) -> int:
        self._check_open()
        horizon = now_ms() - check_idle_ms(idle_ms)
        idle = [
            session_id
            for session_id, session in self._sessions.items()
            if all(stream.updated_at < horizon for stream in session.streams.values())
        ]
        for session_id in idle:
            del self._sessions[session_id]
        return len(idle)

    async def touch_sessions(self, session_ids: Collection[str]) -> int:
        self._check_open()
        ids = check_session_ids(session_ids)
        now = now_ms()
        touched = 0
        for session_id in ids:
            session = self._sessions.get(session_id)
            if session is None:
                continue
            for stream in session.streams.values():
                stream.updated_at = max(stream.updated_at, now)
                touched += 1
        return touched

    async def close(self) -> None:
        self._closed = True
        self._sessions.clear()

    def __repr__(self) -> str:
        return f"InMemoryEventStore(max_events_per_stream={self._cap!r})"
