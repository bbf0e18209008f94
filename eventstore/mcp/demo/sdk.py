"""The few places where mcp 1.x and 2.x differ for the demo: server class, client streams."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


def sdk_version() -> str:
    """The installed ``mcp`` distribution's version."""
    return version("mcp")


def new_server(
    name: str, *, retry_interval_ms: int, **http_options: Any
) -> tuple[Any, dict[str, Any]]:
    """A high-level MCP server and the options its ``streamable_http_app()`` takes.

    ``http_options`` (e.g. ``session_idle_timeout``) and the retry interval go where
    the SDK takes them -- mcp 2.x: ``MCPServer``, options for ``streamable_http_app``;
    mcp 1.x: ``FastMCP``, options for the constructor.
    """
    options = {"retry_interval": retry_interval_ms, **http_options}
    try:
        module = importlib.import_module("mcp.server.mcpserver")
    except ImportError:
        fastmcp = importlib.import_module("mcp.server.fastmcp")
        return fastmcp.FastMCP(name, **options), {}
    return module.MCPServer(name), options


def context_type() -> Any:
    """The ``Context`` class a tool declares to get progress reporting."""
    try:
        return importlib.import_module("mcp.server.mcpserver").Context
    except ImportError:
        return importlib.import_module("mcp.server.fastmcp").Context


@asynccontextmanager
async def client_session(url: str) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session on the Streamable HTTP endpoint ``url``.

    Leaving the block ends the session (the SDK client sends ``DELETE``).
    """
    async with streamable_http_client(url) as streams:
        # 1.x yields (read, write, get_session_id), 2.x (read, write).
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session
