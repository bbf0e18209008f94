"""Every exception the store raises on purpose.

All of them derive from :class:`EventStoreError`, so ``except EventStoreError`` catches
everything the library means to tell you, while programming errors (``TypeError`` from a
wrong call shape, ``AssertionError``) still surface as themselves.
"""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every error raised by :mod:`eventstore`."""


class InvalidInputError(EventStoreError, ValueError):
    """An argument was rejected before anything was written.

    Raised for empty or over-long ids, ids that are not ``str``, data that is not a JSON
    value (``set``, arbitrary objects, ``NaN``/``Infinity``, nesting too deep), and payloads
    larger than ``max_event_bytes``.
    """


class PayloadTooLargeError(InvalidInputError):
    """The JSON encoding of ``data`` is larger than the store's ``max_event_bytes``."""


class UnknownCursorError(EventStoreError, LookupError):
    """``after_event_id`` is not an event the store holds for that session and stream.

    This covers an id that was never stored, one trimmed by the per-stream cap, one that
    belongs to another stream of the session, and one that belongs to another session
    (deliberately indistinguishable from "never stored", so a session cannot probe
    another's ids). A caller that gets this error must not assume it has seen everything:
    the correct recovery is a full replay with :meth:`EventStore.get_stream_events` or a
    fresh stream.
    """

    def __init__(self, session_id: str, stream_id: str, event_id: str) -> None:
        super().__init__(
            f"event id {event_id!r} is not held for stream {stream_id!r} of this session "
            "(never stored, trimmed by the retention cap, or of another stream)"
        )
        self.session_id = session_id
        self.stream_id = stream_id
        self.event_id = event_id


class DuplicateEventError(EventStoreError):
    """The ``(session_id, event_id)`` is already stored with another stream or other data.

    Storing the exact same event again is a no-op (a safe retry); this error means the
    caller reused an id for different content. The stored event is left untouched.
    """

    def __init__(self, session_id: str, event_id: str) -> None:
        super().__init__(
            f"event id {event_id!r} is already stored in this session with a different "
            "stream or different data"
        )
        self.session_id = session_id
        self.event_id = event_id


class StoreClosedError(EventStoreError):
    """The store (or worker) was closed; no further operation is accepted."""


class StoreUnavailableError(EventStoreError):
    """The database could not be reached or failed transiently (connection lost, busy,
    a SQLite file deleted, moved or replaced under the open store).

    Retry the same call. Almost always nothing was committed. The exception is a
    connection lost while its COMMIT was under way: the write may have committed without
    the store hearing back. A retry of the same events is still safe, because stores are
    idempotent on ``(session_id, event_id)``: an event already there is returned as
    stored. One case stays: if the per-stream cap trimmed that event between the lost
    COMMIT and the retry, its id is free again and the retry appends it once more.
    """


class SchemaError(EventStoreError):
    """The database schema is missing, outdated, or not one this version understands.

    The message says which command brings it up to date (``eventstore migrate``).
    """


class CorruptDataError(EventStoreError):
    """A stored event's data is not JSON, so it cannot be read back.

    The store never writes such a row; one can only come from around it (a manual
    ``INSERT``, a writer of the pre-stream version). The message names the event, its
    session, stream and seq: fix or delete that row. Reads of its stream fail until then.
    """
