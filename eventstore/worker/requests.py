"""What a :class:`~eventstore.worker.PersistenceWorker` accepts: writes and a barrier."""

from __future__ import annotations

from dataclasses import dataclass

from eventstore.codec import check_id
from eventstore.errors import InvalidInputError
from eventstore.requests import ClearSession, ClearStream, StoreEvent, UpdateLastEventId


@dataclass(frozen=True, slots=True)
class Flush:
    """A barrier: resolves once every request queued before it has been settled.

    "Settled" means committed, or failed with its own error. It writes nothing.
    """


#: Everything :meth:`PersistenceWorker.submit` takes.
PersistenceRequest = StoreEvent | UpdateLastEventId | ClearStream | ClearSession | Flush

_REQUEST_TYPES = (StoreEvent, UpdateLastEventId, ClearStream, ClearSession, Flush)

#: ``(session_id, stream_id)`` a request writes to; ``stream_id`` is ``None`` for a whole
#: session.
StreamKey = tuple[str, "str | None"]


def stream_key(request: PersistenceRequest) -> StreamKey | None:
    """The stream (or session) ``request`` writes to, after checking its ids.

    Raises :class:`~eventstore.errors.InvalidInputError` for something that is not a
    request or has unusable ids, so it never enters the queue. ``data`` is checked when
    the request is committed (encoding it twice would cost every write).
    """
    if not isinstance(request, _REQUEST_TYPES):
        raise InvalidInputError(
            f"not a persistence request: {request!r} (expected one of "
            f"{', '.join(t.__name__ for t in _REQUEST_TYPES)})"
        )
    if isinstance(request, Flush):
        return None
    session_id = check_id("session_id", request.session_id)
    if isinstance(request, ClearSession):
        return (session_id, None)
    stream_id = check_id("stream_id", request.stream_id)
    if isinstance(request, (StoreEvent, UpdateLastEventId)):
        check_id("event_id", request.event_id)
    return (session_id, stream_id)
