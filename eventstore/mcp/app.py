"""The one-liner: an MCP server's own Starlette app, made resumable on an event store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette

from eventstore.codec import check_seconds
from eventstore.errors import InvalidInputError
from eventstore.mcp.binding import DEFAULT_WRITE_RETRY_SECONDS, SessionBinding
from eventstore.mcp.ttl import prune_idle_sessions_every
from eventstore.open import check_options, open_store
from eventstore.store import EventStore
from eventstore.worker import PersistenceWorker

#: Default TTL of a session nobody touched, and how often to look for them.
DEFAULT_IDLE_TTL_SECONDS = 3600.0
DEFAULT_PRUNE_INTERVAL_SECONDS = 300.0
#: A request's stream is dropped this long after its response: a client that lost the
#: response resumes within its retry interval, seconds, not minutes.
DEFAULT_FINISHED_STREAM_TTL_SECONDS = 600.0


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
    finished_stream_ttl_seconds: float | None = DEFAULT_FINISHED_STREAM_TTL_SECONDS,
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
    write is as safe as a committed one here). The queue holds at most 10,000 writes;
    when the database falls that far behind, storing waits for room, and with it the
    SDK's message routing of the sessions writing then (backpressure: live messages are
    delayed, never dropped). ``group_commit=False`` commits each event before the SDK may
    send it, retrying through an outage of up to ``write_retry_seconds`` too (the
    message waits meanwhile).

    A request's stream is dropped ``finished_stream_ttl_seconds`` after its response
    was stored (default 10 minutes; ``None`` keeps it while the session lives), so a
    long session holds its recent requests' events, not all of them.

    Once the SDK discards a session (the client's ``DELETE``, the manager's
    ``session_idle_timeout``, a crashed session, server shutdown) nothing can resume it,
    and its events are dropped at once unless ``clear_on_delete`` is false. Every
    ``prune_interval_seconds`` (first at startup) the app marks the sessions it still
    serves as active in the store -- a heartbeat, which runs also with
    ``idle_ttl_seconds=None`` so that another replica's pruning or a cron
    ``eventstore prune`` never drops them -- and then prunes sessions idle for
    ``idle_ttl_seconds`` (left behind by a process that died; ``None``: this app does
    not prune). ``idle_ttl_seconds`` must be at least twice ``prune_interval_seconds``
    and at least the session manager's ``session_idle_timeout``;
    :class:`~eventstore.errors.InvalidInputError` says so at construction, as it does
    for a ``store`` that is no store nor a usable URL, ``store_options`` that
    :func:`~eventstore.open_store` would refuse before connecting (or any, next to an
    open store), ``group_commit``/``clear_on_delete`` that are not bools, a stateless
    server or one with an event store of its own, and a negative or non-finite
    ``write_retry_seconds``, ``idle_ttl_seconds`` or ``prune_interval_seconds``.
    ``app.state.eventstore_binding`` is the :class:`~eventstore.mcp.SessionBinding`
    (its live sessions' adapters).
    """
    if isinstance(server, type):
        raise InvalidInputError(
            f"server must be an MCP server instance, not the class {server.__name__}: "
            f"create one first ({server.__name__}('my-server'))"
        )
    if not callable(getattr(server, "streamable_http_app", None)) or not hasattr(
        type(server), "session_manager"
    ):
        raise InvalidInputError(
            "server must be an MCP server with a Streamable HTTP app (MCPServer, FastMCP or "
            f"the low-level Server), not {type(server).__name__}"
        )
    if isinstance(store, EventStore):
        if store_options:
            raise InvalidInputError(
                "store_options configure a store the app opens from a URL; this store is "
                "open already: give the options where it was opened"
            )
    else:
        if store is not None and not isinstance(store, str):
            raise InvalidInputError(
                f"store must be an EventStore, a database URL or None, not {type(store).__name__}"
            )
        # What the app could never open fails now, not at startup.
        check_options(store, {} if store_options is None else store_options)
    for name, flag in (("group_commit", group_commit), ("clear_on_delete", clear_on_delete)):
        if not isinstance(flag, bool):
            raise InvalidInputError(f"{name} must be True or False, not {flag!r}")
    check_seconds("write_retry_seconds", write_retry_seconds, allow_zero=True)
    if finished_stream_ttl_seconds is not None:
        check_seconds(
            "finished_stream_ttl_seconds",
            finished_stream_ttl_seconds,
            allow_zero=False,
            allow_none=True,
        )
    check_seconds("prune_interval_seconds", prune_interval_seconds, allow_zero=False)
    if idle_ttl_seconds is not None:
        check_seconds("idle_ttl_seconds", idle_ttl_seconds, allow_zero=False, allow_none=True)
    try:
        app = server.streamable_http_app(**http_options)
    except TypeError as exc:
        # An option the SDK's streamable_http_app does not take: name it, not a traceback.
        raise InvalidInputError(f"unusable option for the server's HTTP app: {exc}") from None
    manager = server.session_manager
    if manager.stateless:
        raise InvalidInputError(
            "a stateless server (stateless_http=True) has no sessions to resume"
        )
    if manager.event_store is not None:
        raise InvalidInputError(
            "this server has an event store already (event_store=...); give the store to "
            "resumable_app(server, store) instead"
        )
    if idle_ttl_seconds is not None:
        _check_ttl(idle_ttl_seconds, prune_interval_seconds, server.session_manager)
    binding = SessionBinding(
        store if isinstance(store, EventStore) else None,
        clear_on_delete=clear_on_delete,
        write_retry_seconds=write_retry_seconds,
        finished_stream_ttl_seconds=finished_stream_ttl_seconds,
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
            await stack.enter_async_context(
                prune_idle_sessions_every(
                    active,
                    idle_seconds=idle_ttl_seconds,
                    interval_seconds=prune_interval_seconds,
                    live_sessions=binding.session_ids,
                )
            )
            async with inner(app) as state:
                yield state

    app.router.lifespan_context = lifespan
    app.state.eventstore_binding = binding
    return app


def _check_ttl(
    idle_ttl_seconds: float, prune_interval_seconds: float, manager: StreamableHTTPSessionManager
) -> None:
    if idle_ttl_seconds < 2 * prune_interval_seconds:
        raise InvalidInputError(
            f"idle_ttl_seconds ({idle_ttl_seconds!r}) must be at least twice "
            f"prune_interval_seconds ({prune_interval_seconds!r}): live sessions are marked "
            "active only once per interval, and a shorter TTL would prune them"
        )
    idle_timeout = getattr(manager, "session_idle_timeout", None)
    if idle_timeout is not None and idle_ttl_seconds < idle_timeout:
        raise InvalidInputError(
            f"idle_ttl_seconds ({idle_ttl_seconds!r}) must be at least the session "
            f"manager's session_idle_timeout ({idle_timeout!r} s): a session the SDK still "
            "keeps must not lose its events first"
        )
