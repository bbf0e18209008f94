"""A tiny reference model of the :class:`eventstore.EventStore` contract.

Plain dicts and lists, no cleverness: each method states the documented rule directly,
so a backend that disagrees with it on any step has a bug (or the contract is unclear).
Results are either the expected value or the *class* of the expected error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eventstore import (
    ClearSession,
    ClearStream,
    DuplicateEventError,
    InvalidInputError,
    StoreEvent,
    UnknownCursorError,
    UpdateLastEventId,
    WriteRequest,
)

Outcome = Any  # an expected value, or an EventStoreError subclass


def canonical(data: Any) -> str:
    """One text per JSON value: key order ignored, ``1``, ``1.0`` and ``true`` distinct."""
    return json.dumps(data, sort_keys=True, ensure_ascii=True, allow_nan=False)


@dataclass(frozen=True)
class ModelEvent:
    session_id: str
    stream_id: str
    event_id: str
    seq: int
    data: Any


@dataclass
class ModelStream:
    last_seq: int = 0
    events: list[ModelEvent] = field(default_factory=list)
    max_events: int | None = None
    last_event_id: str | None = None

    @property
    def first_seq(self) -> int:
        return self.events[0].seq if self.events else self.last_seq + 1


@dataclass
class ReferenceStore:
    cap: int | None = None
    streams: dict[tuple[str, str], ModelStream] = field(default_factory=dict)

    # -- writes ---------------------------------------------------------------------------

    def apply(self, requests: list[WriteRequest]) -> list[Outcome]:
        """Each request in order; a failing one fails alone."""
        return [self._apply_one(request) for request in requests]

    def _apply_one(self, request: WriteRequest) -> Outcome:
        if isinstance(request, StoreEvent):
            return self.store_event(
                request.session_id, request.stream_id, request.event_id, request.data
            )
        if isinstance(request, ClearStream):
            return self.clear_stream(request.session_id, request.stream_id)
        if isinstance(request, ClearSession):
            return self.clear_session(request.session_id)
        assert isinstance(request, UpdateLastEventId)
        stream = self.streams.get((request.session_id, request.stream_id))
        if stream is None:
            return InvalidInputError
        stream.last_event_id = request.event_id
        return None

    def store_event(self, session_id: str, stream_id: str, event_id: str, data: Any) -> Outcome:
        held = self._held(session_id, event_id)
        if held is not None:
            if held.stream_id == stream_id and canonical(held.data) == canonical(data):
                return held
            return DuplicateEventError
        stream = self.streams.setdefault((session_id, stream_id), ModelStream())
        stream.last_seq += 1
        event = ModelEvent(session_id, stream_id, event_id, stream.last_seq, data)
        stream.events.append(event)
        self._trim(stream)
        return event

    def clear_stream(self, session_id: str, stream_id: str) -> int:
        stream = self.streams.pop((session_id, stream_id), None)
        return 0 if stream is None else len(stream.events)

    def clear_session(self, session_id: str) -> int:
        removed = 0
        for key in [key for key in self.streams if key[0] == session_id]:
            removed += len(self.streams.pop(key).events)
        return removed

    def set_cap(
        self, cap: int | None, session_id: str | None = None, stream_id: str | None = None
    ) -> Outcome:
        if session_id is None:
            self.cap = cap
            targets = list(self.streams.values())
        else:
            stream = self.streams.get((session_id, str(stream_id)))
            if stream is None:
                return InvalidInputError
            stream.max_events = cap
            targets = [stream]
        for stream in targets:
            self._trim(stream)
        return None

    def _trim(self, stream: ModelStream) -> None:
        cap = stream.max_events if stream.max_events is not None else self.cap
        if cap is not None and len(stream.events) > cap:
            del stream.events[: len(stream.events) - cap]

    # -- reads ----------------------------------------------------------------------------

    def _held(self, session_id: str, event_id: str) -> ModelEvent | None:
        for (session, _), stream in self.streams.items():
            if session == session_id:
                for event in stream.events:
                    if event.event_id == event_id:
                        return event
        return None

    def stream_events(
        self, session_id: str, stream_id: str, limit: int | None = None
    ) -> list[ModelEvent]:
        stream = self.streams.get((session_id, stream_id))
        events = [] if stream is None else stream.events
        return events if limit is None else events[:limit]

    def events_after(
        self, session_id: str, stream_id: str, cursor: str, limit: int | None = None
    ) -> Outcome:
        events = self.stream_events(session_id, stream_id)
        for position, event in enumerate(events):
            if event.event_id == cursor:
                rest = events[position + 1 :]
                return rest if limit is None else rest[:limit]
        return UnknownCursorError

    def stream_count(self, session_id: str) -> int:
        return sum(1 for session, _ in self.streams if session == session_id)

    def stream_info(self, session_id: str, stream_id: str) -> ModelStream | None:
        return self.streams.get((session_id, stream_id))
