"""The pre-stream, session-only API on top of a stream-keyed store.

Before streams, a store was ``session_id -> list of events``. :class:`LegacyEventStore`
offers that API over any :class:`~eventstore.store.EventStore`, so code that has not been
ported keeps working while its data already lives in the new store. See MIGRATION.md for
the porting steps.
"""

from __future__ import annotations

import warnings
from typing import Any

from eventstore.codec import check_id
from eventstore.events import DEFAULT_STREAM_ID, StoredEvent
from eventstore.store import EventStore

_warned = False


def _warn_once() -> None:
    # Once per process: a wrapper built per request would otherwise flood the logs.
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        "LegacyEventStore is the pre-stream, session-only API kept for unported callers; "
        "call EventStore.store_event(session_id, stream_id, event_id, data) and friends "
        "instead (see MIGRATION.md)",
        DeprecationWarning,
        stacklevel=3,
    )


class LegacyEventStore:
    """The old session-keyed API (``store_event(session_id, event_id, data)``, ...).

    Deprecated: the first instance created in a process emits one
    :class:`DeprecationWarning`. Every session's events live in one stream of the wrapped
    ``store``, ``stream_id`` (by default :data:`~eventstore.events.DEFAULT_STREAM_ID`,
    the stream ``eventstore import`` puts legacy data in), so events written through this
    wrapper, events imported from a legacy dump, and events read by ported code through
    ``store.get_stream_events(session_id, stream_id)`` are the same events.

    Everything the wrapped store guarantees holds here: per-session order, isolation
    between sessions, idempotent retries of an identical event, the retention cap (which
    now bounds the session's stream), and the same exceptions. The one deliberate change
    from the legacy store: an ``after_event_id`` the store does not hold raises
    :class:`~eventstore.errors.UnknownCursorError` instead of answering with a list that
    looks like success.

    The wrapper owns nothing: closing the store stays the caller's job.
    """

    def __init__(self, store: EventStore, stream_id: str = DEFAULT_STREAM_ID) -> None:
        self.store = store
        self.stream_id = check_id("stream_id", stream_id)
        _warn_once()

    async def store_event(self, session_id: str, event_id: str, data: Any) -> StoredEvent:
        """Append an event to the session and return it (a retry returns the original).

        Raises :class:`~eventstore.errors.InvalidInputError` for bad ids or data and
        :class:`~eventstore.errors.DuplicateEventError` when ``event_id`` already names
        other content in this session.
        """
        return await self.store.store_event(session_id, self.stream_id, event_id, data)

    async def get_events_after(self, session_id: str, after_event_id: str) -> list[StoredEvent]:
        """The session's events stored after ``after_event_id``, oldest first.

        Raises :class:`~eventstore.errors.UnknownCursorError` when the session does not
        hold ``after_event_id`` (never stored, trimmed by the cap, another session's).
        """
        return await self.store.get_events_after(session_id, self.stream_id, after_event_id)

    async def get_all_events(self, session_id: str) -> list[StoredEvent]:
        """Every retained event of the session, oldest first; ``[]`` for an unknown one."""
        return await self.store.get_stream_events(session_id, self.stream_id)

    async def clear_session(self, session_id: str) -> int:
        """Drop the session (every stream of it); return how many events were removed."""
        return await self.store.clear_session(session_id)

    def __repr__(self) -> str:
        return f"LegacyEventStore({self.store!r}, stream_id={self.stream_id!r})"
