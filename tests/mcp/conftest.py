"""Fixtures: a real resumable MCP server under uvicorn on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from eventstore import EventStore, open_store
from eventstore.mcp import SessionBinding, resumable_app
from eventstore.mcp.demo.app import Conductor
from eventstore.mcp.demo.gate import ResumeGate
from eventstore.mcp.demo.loopback import serve_on_loopback
from tests.mcp.raw import READ_TIMEOUT, RawSession
from tests.mcp.server import build_test_server


@dataclass
class Harness:
    """A running server: its endpoint, store, resume gate and tool conductor."""

    base_url: str
    store: EventStore
    binding: SessionBinding
    gate: ResumeGate
    conductor: Conductor
    http: httpx.AsyncClient

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/mcp"

    async def settled(self) -> None:
        """Wait until every write the server queued so far is committed."""
        if self.binding.worker is not None:
            await self.binding.worker.flush()

    async def raw_session(self) -> RawSession:
        """A new, initialized session spoken by hand."""
        session = RawSession(self.http, self.endpoint)
        await session.open()
        return session


async def start_harness(
    url: str,
    *,
    store_options: dict[str, Any] | None = None,
    server_options: dict[str, Any] | None = None,
    **app_options: Any,
) -> AsyncIterator[Harness]:
    """Serve the test server on ``url`` (``resumable_app(..., **app_options)``).

    ``server_options`` (``session_idle_timeout=...``) go to the SDK's server or app.
    """
    conductor = Conductor()
    server, http_options = build_test_server(conductor, **(server_options or {}))
    async with open_store(url, **(store_options or {})) as store:
        app = resumable_app(
            server, store, **{"idle_ttl_seconds": None, **app_options, **http_options}
        )
        gate = ResumeGate(app)
        async with (
            serve_on_loopback(gate) as base_url,
            httpx.AsyncClient(timeout=READ_TIMEOUT) as http,
        ):
            yield Harness(base_url, store, app.state.eventstore_binding, gate, conductor, http)


@pytest.fixture
async def harness(sql_url: str) -> AsyncIterator[Harness]:
    """The test server on a fresh SQLite file, then on a fresh PostgreSQL database."""
    async for running in start_harness(sql_url):
        yield running


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)
