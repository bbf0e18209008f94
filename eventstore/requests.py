"""Write requests: the units a store commits together in one transaction.

:meth:`eventstore.EventStore.apply` takes a sequence of these; the
:class:`~eventstore.worker.PersistenceWorker` queues them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """Append ``data`` as event ``event_id`` to stream ``(session_id, stream_id)``.

    ``timestamp`` (epoch ms, an ``int`` >= 0) is the event's recorded time; ``None``, the
    normal case, means "now" (never earlier than the stream's previous "now", see
    :class:`~eventstore.StoredEvent`). Set it only when copying events that already have
    a time (importing a dump, moving a store), so they keep it. It is not part of the
    event's content: a retry with another timestamp is still the same event. ``data`` is
    left out of the ``repr``, so logs that name a request never carry a user's payload.
    """

    session_id: str
    stream_id: str
    event_id: str
    data: Any = field(repr=False)
    timestamp: int | None = None


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
