"""The one-liner: an MCP server's own Starlette app, made resumable on an event store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette

from eventstore.mcp.binding import SessionBinding
from eventstore.mcp.ttl import prune_idle_sessions_every
from eventstore.open import open_store
from eventstore.store import EventStore
from eventstore.worker import PersistenceWorker

#: Default TTL of a session nobody touched, and how often to look for them.
DEFAULT_IDLE_TTL_SECONDS = 3600.0
DEFAULT_PRUNE_INTERVAL_SECONDS = 300.0
#: How long a queued write rides out a database outage before its event is given up on
#: (its stream then refuses resumes). Live messages do not wait for it.
DEFAULT_WRITE_RETRY_SECONDS = 30.0


class StreamableHttpServer(Protocol):
    """What :func:`resumable_app` needs of a server: ``MCPServer`` (2.x), ``FastMCP`` (1.x),
    or the low-level ``Server`` (2.x)."""

    def streamable_http_app(self, **options: Any) -> Starlette: ...

    @property
    def session_manager(self) -> StreamableHTTPSessionManager: ...


def resumable_app(
    server: StreamableHttpServer,
    store: EventStore | str | None = None,
    *,
    store_options: Mapping[str, Any] | None = None,
    group_commit: bool = True,
    write_retry_seconds: float = DEFAULT_WRITE_RETRY_SECONDS,
    idle_ttl_seconds: float | None = DEFAULT_IDLE_TTL_SECONDS,
    prune_interval_seconds: float = DEFAULT_PRUNE_INTERVAL_SECONDS,
    clear_on_delete: bool = True,
    **http_options: Any,
) -> Starlette:
    """The server's Streamable HTTP app, with session-isolated, durable resumability.

    ::

        server = MCPServer("my-server")          # mcp 2.x; FastMCP("my-server") on 1.x
        app = resumable_app(server, "postgresql+asyncpg://user:pass@db/mcp")
        # uvicorn my_module:app

    ``store`` is an open :class:`~eventstore.EventStore` (you close it), or a database
    URL / ``None`` (``$EVENTSTORE_DATABASE_URL``, else the embedded SQLite file) that the
    app opens at startup, with ``store_options`` (see :func:`eventstore.open_store`; e.g.
    ``{"create_schema": False}`` when Alembic owns the schema), and closes at shutdown.

    The app is the server's own ``streamable_http_app(**http_options)`` -- auth,
    DNS-rebinding protection and custom routes stay as the SDK sets them up (on mcp 1.x,
    ``FastMCP(...)`` takes those options instead) -- whose session manager gives every
    session its own :class:`~eventstore.mcp.SessionEventStore`
    (:class:`~eventstore.mcp.SessionBinding`).

    With ``group_commit`` (the default) every write is queued in one
    :class:`~eventstore.worker.PersistenceWorker`: the SDK sends an event without waiting
    for the database, the events of all sessions share transactions, and a write rides
    out a database outage of up to ``write_retry_seconds`` before its stream is given up
    as not resumable (see :class:`~eventstore.mcp.SessionEventStore` for why a queued
    write is as safe as a committed one here). ``group_commit=False`` commits each event
    before the SDK may send it.

    While the app runs, sessions idle for ``idle_ttl_seconds`` are pruned every
    ``prune_interval_seconds`` (``None``: no pruning task; run ``eventstore prune``
    instead). A session the client ends with ``DELETE`` is dropped at once unless
    ``clear_on_delete`` is false. ``app.state.eventstore_binding`` is the
    :class:`~eventstore.mcp.SessionBinding` (its live sessions' adapters).
    """
    app = server.streamable_http_app(**http_options)
    binding = SessionBinding(
        store if isinstance(store, EventStore) else None, clear_on_delete=clear_on_delete
    )
    binding.attach(server.session_manager)
    owns_store = not isinstance(store, EventStore)
    url = None if isinstance(store, EventStore) else store
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with AsyncExitStack() as stack:
            if owns_store:
                binding.store = await stack.enter_async_context(
                    open_store(url, **(store_options or {}))
                )
            active = binding.store
            assert active is not None
            if group_commit:
                binding.worker = await stack.enter_async_context(
                    PersistenceWorker(active, retry_timeout=write_retry_seconds)
                )
            if idle_ttl_seconds is not None:
                await stack.enter_async_context(
                    prune_idle_sessions_every(
                        active,
                        idle_seconds=idle_ttl_seconds,
                        interval_seconds=prune_interval_seconds,
                    )
                )
            async with inner(app) as state:
                yield state

    app.router.lifespan_context = lifespan
    app.state.eventstore_binding = binding
    return app
