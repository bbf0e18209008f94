"""mcp-eventstore: resumable, session- and stream-keyed event storage for MCP servers."""

from eventstore.errors import (
    CorruptDataError,
    DuplicateEventError,
    EventStoreError,
    InvalidInputError,
    PayloadTooLargeError,
    SchemaError,
    StoreClosedError,
    StoreUnavailableError,
    UnknownCursorError,
)
from eventstore.events import DEFAULT_STREAM_ID, StoredEvent
from eventstore.memory import InMemoryEventStore
from eventstore.open import open_store
from eventstore.requests import (
    ClearSession,
    ClearStream,
    StoreEvent,
    UpdateLastEventId,
    WriteRequest,
)
from eventstore.sql.store import SqlEventStore
from eventstore.store import ApplyResult, EventStore, StreamInfo
from eventstore.worker import Flush, PersistenceRequest, PersistenceWorker, WorkerStats

__all__ = [
    "DEFAULT_STREAM_ID",
    "ApplyResult",
    "ClearSession",
    "ClearStream",
    "CorruptDataError",
    "DuplicateEventError",
    "EventStore",
    "EventStoreError",
    "Flush",
    "InMemoryEventStore",
    "InvalidInputError",
    "PayloadTooLargeError",
    "PersistenceRequest",
    "PersistenceWorker",
    "SchemaError",
    "SqlEventStore",
    "StoreClosedError",
    "StoreEvent",
    "StoreUnavailableError",
    "StoredEvent",
    "StreamInfo",
    "UnknownCursorError",
    "UpdateLastEventId",
    "WorkerStats",
    "WriteRequest",
    "open_store",
]
