"""The contract every backend implements: :class:`EventStore`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from eventstore.errors import EventStoreError
from eventstore.events import StoredEvent
from eventstore.requests import ClearSession, ClearStream, StoreEvent, WriteRequest

#: What :meth:`EventStore.apply` gives back for one request: a :class:`StoredEvent` for
#: ``StoreEvent``, the number of events removed for ``ClearStream``/``ClearSession``,
#: ``None`` for ``UpdateLastEventId``, or the :class:`EventStoreError` that request alone
#: raised.
ApplyResult = StoredEvent | int | None | EventStoreError


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The head of one stream: its counters and bookkeeping, not its events.

    ``last_seq`` is the seq of the newest event ever stored, ``first_seq`` the seq of the
    oldest still retained (events ``first_seq..last_seq`` are held), ``max_events`` the
    stream's own cap (``None``: the store-wide cap applies), ``last_event_id`` the last
    event the client acknowledged, and the timestamps are epoch milliseconds.
    ``updated_at`` is the time of the stream's last write or touch and never goes back
    (it is the time its next event stored "now" gets at least).
    """

    session_id: str
    stream_id: str
    last_seq: int
    first_seq: int
    max_events: int | None
    last_event_id: str | None
    created_at: int
    updated_at: int


class EventStore(ABC):
    """An append-only store of events under ``(session_id, stream_id)``.

    Guarantees, identical for every backend:

    * **Ordering.** Each stream numbers its events ``seq`` = 1, 2, 3, ... in commit order,
      without gaps, also under concurrent writers. A ``seq`` is never reused while the
      stream exists, even after the cap trims old events. The timestamps of a stream's
      events stored "now" (``StoreEvent.timestamp`` ``None``, as :meth:`store_event`
      stores them) never decrease along ``seq``: a writer that waited for the stream's
      lock, or a clock that stepped back, gets the stream's latest time rather than an
      earlier one. Explicit timestamps are stored as given and are outside this rule.
      :meth:`clear_stream`/:meth:`clear_session` drop the stream entirely; a later write
      to the same ids starts a new stream at ``seq`` 1.
    * **Isolation.** Reads name their session and stream and return only that stream's
      events. No argument value lets one session read another's events.
    * **Idempotent appends.** An event id is unique within its session. Storing the same
      ``(session_id, event_id)`` again with the same stream and equal data returns the
      already stored event and writes nothing (a safe retry); with another stream or
      other data it raises :class:`~eventstore.errors.DuplicateEventError` and the stored
      event is untouched. An event already trimmed by the cap cannot be recognised and
      is stored anew.
    * **Retention.** With a cap (``max_events_per_stream``), after every commit each
      stream holds at most the cap's number of events, the newest ones.
    * **Data.** ``data`` is any JSON value and comes back equal (``"\\u0000"`` inside
      strings, lone surrogates, integers of any size, non-ASCII text). Values that are not
      JSON (``set``, objects, ``NaN``), empty or over-long ids and payloads over
      ``max_event_bytes`` raise :class:`~eventstore.errors.InvalidInputError` before
      anything is written.
    * **Errors.** Every error the store raises on purpose is an
      :class:`~eventstore.errors.EventStoreError`.

    Stores are async context managers; leaving the block closes them.
    """

    #: Largest accepted JSON encoding of ``data`` in bytes.
    max_event_bytes: int

    async def store_event(
        self, session_id: str, stream_id: str, event_id: str, data: Any
    ) -> StoredEvent:
        """Append one event to ``(session_id, stream_id)`` and return it with its ``seq``.

        Returns the stored event (with its ``seq`` and ``timestamp``); a retry of an
        already stored, identical event returns the original. Raises
        :class:`~eventstore.errors.InvalidInputError` for bad ids or data and
        :class:`~eventstore.errors.DuplicateEventError` when the id is taken by other
        content.
        """
        (result,) = await self.apply([StoreEvent(session_id, stream_id, event_id, data)])
        if isinstance(result, EventStoreError):
            raise result
        assert isinstance(result, StoredEvent)
        return result

    @abstractmethod
    async def get_events_after(
        self,
        session_id: str,
        stream_id: str,
        after_event_id: str,
        *,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        """Events of this stream stored after ``after_event_id``, oldest first.

        The list is complete: it holds every event of the stream after the cursor (up to
        ``limit``), read from one consistent snapshot, so a concurrent trim can never
        open a silent gap. An empty list means the cursor is the stream's newest event.

        Raises :class:`~eventstore.errors.UnknownCursorError` when the store does not hold
        ``after_event_id`` in this stream: never stored, trimmed by the cap, an event of
        another stream, or of another session. The caller must then treat its position
        as lost (replay the whole stream or start over); it never gets "everything" or
        another stream's events.
        """

    @abstractmethod
    async def get_stream_events(
        self, session_id: str, stream_id: str, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """All retained events of one stream, oldest first (the first ``limit`` of them).

        An unknown stream gives an empty list.
        """

    async def clear_session(self, session_id: str) -> int:
        """Drop every stream of ``session_id``; return how many events were removed."""
        (result,) = await self.apply([ClearSession(session_id)])
        if isinstance(result, EventStoreError):
            raise result
        assert isinstance(result, int)
        return result

    async def clear_stream(self, session_id: str, stream_id: str) -> int:
        """Drop one stream, leaving the session's other streams; return events removed."""
        (result,) = await self.apply([ClearStream(session_id, stream_id)])
        if isinstance(result, EventStoreError):
            raise result
        assert isinstance(result, int)
        return result

    @abstractmethod
    async def stream_count(self, session_id: str) -> int:
        """How many streams ``session_id`` has (streams with a head, even if trimmed)."""

    @abstractmethod
    async def apply(self, requests: Sequence[WriteRequest]) -> list[ApplyResult]:
        """Commit ``requests`` in order, in one transaction where the backend has them.

        Returns one result per request (see :data:`ApplyResult`). A request that is
        invalid, or that conflicts (a duplicate event id with other content, an
        ``UpdateLastEventId`` for a stream that does not exist), fails alone: its result
        is the exception and every other request is still committed. Errors that are not
        any one request's fault (the database went away) are raised and nothing of the
        call is committed.
        """

    @abstractmethod
    async def get_stream_info(self, session_id: str, stream_id: str) -> StreamInfo | None:
        """The head of one stream, or ``None`` if the stream does not exist."""

    @abstractmethod
    async def get_max_events_per_stream(self) -> int | None:
        """The store-wide per-stream cap (``None``: unlimited).

        A stream's own cap, where one was set, is its :meth:`get_stream_info`'s
        ``max_events``.
        """

    @abstractmethod
    async def set_max_events_per_stream(
        self,
        limit: int | None,
        *,
        session_id: str | None = None,
        stream_id: str | None = None,
    ) -> None:
        """Set the store-wide cap, or with ``session_id`` and ``stream_id`` one stream's.

        ``None`` removes the cap (for a stream: falls back to the store-wide cap). The new
        cap applies at once: streams over it are trimmed in the same commit. Setting the
        cap of a stream that does not exist raises
        :class:`~eventstore.errors.InvalidInputError`.
        """

    @abstractmethod
    async def prune_idle_sessions(self, idle_ms: int) -> int:
        """Drop every session none of whose streams changed in the last ``idle_ms``.

        Returns how many sessions were removed. Meant for sessions the client abandoned.
        """

    @abstractmethod
    async def touch_sessions(self, session_ids: Collection[str]) -> int:
        """Mark every stream of these sessions as changed now; return how many streams.

        A server calls it for the sessions it still serves, so that
        :meth:`prune_idle_sessions` (its own, another replica's, or a cron job's) never
        drops a live session that merely had nothing to send. Unknown sessions are
        skipped.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release the store's resources (connections). Idempotent."""

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
