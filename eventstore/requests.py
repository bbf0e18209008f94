"""Write requests: the units a store commits together in one transaction.

:meth:`eventstore.EventStore.apply` takes a sequence of these; the
:class:`~eventstore.worker.PersistenceWorker` queues them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """Append ``data`` as event ``event_id`` to stream ``(session_id, stream_id)``."""

    session_id: str
    stream_id: str
    event_id: str
    data: Any


@dataclass(frozen=True, slots=True)
class UpdateLastEventId:
    """Record ``event_id`` as the last event the client acknowledged on that stream."""

    session_id: str
    stream_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class ClearStream:
    """Drop one stream and all its events."""

    session_id: str
    stream_id: str


@dataclass(frozen=True, slots=True)
class ClearSession:
    """Drop every stream of a session."""

    session_id: str


WriteRequest = StoreEvent | UpdateLastEventId | ClearStream | ClearSession
