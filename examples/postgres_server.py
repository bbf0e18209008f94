"""A resumable MCP server on PostgreSQL: the SDK's own server plus one line of eventstore.

From the repository root (see examples/README.md)::

    export EVENTSTORE_DATABASE_URL=postgresql+asyncpg://mcp:secret@localhost:5432/mcp
    alembic upgrade head
    uvicorn examples.postgres_server:app --host 127.0.0.1 --port 8000

Clients that lose their connection mid-call reconnect with ``Last-Event-ID`` and get
exactly the events they missed, and never another session's. Replicas may share the
database, but an MCP session lives in the process that created it: route a session's
requests to one replica (sticky sessions; see the README), or a resume elsewhere gets
``404 Session not found``.
"""

import asyncio
import os

# mcp 2.x. On mcp 1.x: from mcp.server.fastmcp import Context, FastMCP as MCPServer
from mcp.server.mcpserver import Context, MCPServer

from eventstore.mcp import resumable_app

server = MCPServer("resumable-example")


@server.tool()
async def countdown(start: int, ctx: Context) -> str:
    """Count down from ``start``, one progress notification per step."""
    for step, n in enumerate(range(start, 0, -1), 1):
        await ctx.report_progress(step, start, f"{n}...")
        await asyncio.sleep(1)
    return "liftoff"


app = resumable_app(
    server,
    os.environ["EVENTSTORE_DATABASE_URL"],
    # Alembic owns the schema (`alembic upgrade head`): refuse to start without it.
    store_options={"create_schema": False},
    # Milliseconds a disconnected client waits before it resumes. (mcp 1.x: pass
    # retry_interval to FastMCP(...) instead.)
    retry_interval=1000,
)
