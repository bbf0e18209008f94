"""Plugging the adapter into the SDK: one :class:`SessionEventStore` per real session."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from eventstore.errors import EventStoreError
from eventstore.mcp.adapter import SessionEventStore
from eventstore.mcp.reattach import StreamAttachments
from eventstore.store import EventStore
from eventstore.worker import PersistenceWorker
from eventstore.worker.retry import (
    DEFAULT_INITIAL_SECONDS,
    DEFAULT_MAXIMUM_SECONDS,
    OutageRetrier,
)

log = logging.getLogger(__name__)

#: How long a write rides out a database outage before its event is given up on (its
#: stream then refuses resumes).
DEFAULT_WRITE_RETRY_SECONDS = 30.0


class SessionBinding:
    """Gives every session a ``StreamableHTTPSessionManager`` admits its own adapter.

    The manager builds each session's transport in ``_admit_session`` (mcp 1.30+ and
    2.2+; earlier releases build it inline and cannot be bound) with its single
    ``event_store``; :meth:`attach` wraps that step so the
    new transport gets a :class:`SessionEventStore` bound to the ``mcp-session-id`` the
    manager just assigned. The session's id is known from the very first event (the
    priming event of ``initialize``) on. The adapter also watches the transport's stream
    registry (:class:`~eventstore.mcp.reattach.StreamAttachments`), so that a resume
    while the tool is still sending loses nothing.

    Once the manager discards a session -- the client's ``DELETE``, the SDK's idle
    timeout, a crashed session task, server shutdown -- nothing can resume it any more
    (its id answers 404; SDK sessions live in this process and do not survive it), so
    its events are dropped at once (``clear_on_delete``, the name of old). Only a
    process that dies without shutting down leaves events behind; TTL pruning
    (:func:`eventstore.mcp.prune_idle_sessions_every`, ``eventstore prune --idle``)
    removes those. :meth:`session_ids` lists the sessions still served, for the
    heartbeat that keeps them from being pruned.

    ``store`` (and ``worker``, a :class:`~eventstore.worker.PersistenceWorker` over it
    that writes go through) may be set after construction, by an application that
    opens them in its lifespan; the store must be set before the manager serves its
    first request. Without a worker, a write that meets a database outage is retried
    with backoff until the outage is ``write_retry_seconds`` old; only then is its
    stream given up as not resumable.
    """

    def __init__(
        self,
        store: EventStore | None = None,
        *,
        worker: PersistenceWorker | None = None,
        clear_on_delete: bool = True,
        write_retry_seconds: float = DEFAULT_WRITE_RETRY_SECONDS,
        finished_stream_ttl_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.worker = worker
        self.clear_on_delete = clear_on_delete
        #: Given to every session's adapter (see ``SessionEventStore``'s finished streams).
        self.finished_stream_ttl_seconds = finished_stream_ttl_seconds
        # Shared by every session: the deadline is the outage's, not one write's. Used by
        # the writes that do not go through a worker (which has its own).
        self._retrier = OutageRetrier(
            timeout=write_retry_seconds,
            initial=DEFAULT_INITIAL_SECONDS,
            maximum=DEFAULT_MAXIMUM_SECONDS,
        )
        self._sessions: dict[str, SessionEventStore] = {}

    def adapter(self, session_id: str) -> SessionEventStore | None:
        """The adapter of a live session, or ``None`` once the manager discarded it."""
        return self._sessions.get(session_id)

    def session_ids(self) -> list[str]:
        """The sessions this binding's manager still serves."""
        return list(self._sessions)

    def attach(self, manager: StreamableHTTPSessionManager) -> None:
        """Make ``manager`` give each new session its own :class:`SessionEventStore`.

        Raises ``ValueError`` for a stateless manager (it has no sessions to resume) or
        one that already has an event store, and ``RuntimeError`` for an SDK without the
        session-admission hook (mcp before 1.30, and 2.0 to 2.1).
        """
        if manager.stateless:
            raise ValueError("a stateless session manager has no sessions to resume")
        if manager.event_store is not None:
            raise ValueError(
                "this session manager already has an event store; give the eventstore "
                "store to bind_session_manager() instead of to the server"
            )
        if not hasattr(manager, "_admit_session") or not hasattr(manager, "_discard_session"):
            raise RuntimeError(
                "this mcp version's StreamableHTTPSessionManager has no session admission "
                "hook; eventstore.mcp needs mcp 1.30+ on 1.x or 2.2+ on 2.x "
                "(tested: 1.30.0 and 2.3.0)"
            )
        admit = manager._admit_session
        discard = manager._discard_session

        def admit_bound(
            requestor: AuthorizationContext | None,
        ) -> StreamableHTTPServerTransport | None:
            transport = admit(requestor)
            if transport is not None:
                assert transport.mcp_session_id is not None
                adapter = self._bind(transport.mcp_session_id)
                adapter.attachments = StreamAttachments.watch(transport)
                transport._event_store = adapter
            return transport

        async def discard_and_clear(
            session_id: str, transport: StreamableHTTPServerTransport
        ) -> None:
            # Called however the session ends (DELETE, idle timeout, crash, shutdown, a
            # refused opening request), possibly twice: once discarded, its id answers
            # 404 and nothing can resume it.
            adapter = self._sessions.pop(session_id, None)
            if adapter is not None:
                adapter.close()
            await discard(session_id, transport)
            if adapter is not None and adapter.stored_any and self.clear_on_delete:
                with anyio.CancelScope(shield=True):
                    await _clear(adapter)

        # The SDK builds the manager inside the server's streamable_http_app() and offers
        # no factory hook, so the binding wraps the two methods on this one instance.
        manager._admit_session = admit_bound  # type: ignore[method-assign]
        manager._discard_session = discard_and_clear  # type: ignore[method-assign]

    def _bind(self, session_id: str) -> SessionEventStore:
        if self.store is None:
            raise RuntimeError("SessionBinding.store must be set before the server runs")
        adapter = self._sessions[session_id] = SessionEventStore(
            self.store,
            session_id,
            worker=self.worker,
            retrier=self._retrier,
            finished_stream_ttl=self.finished_stream_ttl_seconds,
        )
        return adapter


async def _clear(adapter: SessionEventStore) -> None:
    try:
        removed = await adapter.clear()
    except EventStoreError as exc:
        log.warning(
            "session %s ended; could not drop its events (TTL pruning will): %s",
            adapter.session_id,
            exc,
        )
        return
    log.debug("session %s ended; dropped %d events", adapter.session_id, removed)


def bind_session_manager(
    manager: StreamableHTTPSessionManager, store: EventStore, **options: Any
) -> SessionBinding:
    """Give each session of ``manager`` its own adapter on ``store``; see :class:`SessionBinding`.

    For a manager you build yourself::

        manager = StreamableHTTPSessionManager(app=server)
        bind_session_manager(manager, store)
    """
    binding = SessionBinding(store, **options)
    binding.attach(manager)
    return binding
