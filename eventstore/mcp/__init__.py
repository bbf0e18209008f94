"""Session-isolated, durable resumability for the official MCP Python SDK (``pip install mcp``).

The one-liner for a server author::

    from eventstore.mcp import resumable_app

    app = resumable_app(server, "postgresql+asyncpg://user:pass@db/mcp")

Pieces, for other setups: :class:`SessionEventStore` (the SDK ``EventStore`` of one
session), :class:`SessionBinding` / :func:`bind_session_manager` (one adapter per session
of a ``StreamableHTTPSessionManager``, watching its transport's streams so that a resume
while the tool still sends loses nothing, see :mod:`eventstore.mcp.reattach`, and
dropping a session's events once the SDK discards it), :func:`prune_idle_sessions_every`
(heartbeat for live sessions, TTL cleanup of abandoned ones).
Needs mcp 1.30+ (``FastMCP``) or 2.2+ (``MCPServer``); tested with 1.30.0 and 2.3.0.
"""

from eventstore.mcp.adapter import SessionEventStore
from eventstore.mcp.app import resumable_app
from eventstore.mcp.binding import SessionBinding, bind_session_manager
from eventstore.mcp.ids import MAX_EVENT_ID_LENGTH
from eventstore.mcp.ttl import prune_idle_sessions_every

__all__ = [
    "MAX_EVENT_ID_LENGTH",
    "SessionBinding",
    "SessionEventStore",
    "bind_session_manager",
    "prune_idle_sessions_every",
    "resumable_app",
]
