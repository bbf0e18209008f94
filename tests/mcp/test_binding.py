"""Plugging into the SDK: one adapter per session, refusals, the app's own store."""

from __future__ import annotations

import httpx
import pytest
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from eventstore import InMemoryEventStore, open_store
from eventstore.mcp import SessionBinding, SessionEventStore, bind_session_manager, resumable_app
from eventstore.mcp.demo.app import Conductor
from eventstore.mcp.demo.loopback import serve_on_loopback
from tests.mcp.conftest import Harness
from tests.mcp.raw import RawSession
from tests.mcp.server import build_test_server


def test_a_stateless_manager_is_refused() -> None:
    manager = StreamableHTTPSessionManager(app=Server("x"), stateless=True)
    with pytest.raises(ValueError, match="stateless"):
        bind_session_manager(manager, InMemoryEventStore())


def test_a_manager_with_its_own_event_store_is_refused() -> None:
    own = SessionEventStore(InMemoryEventStore(), "s")
    manager = StreamableHTTPSessionManager(app=Server("x"), event_store=own)
    with pytest.raises(ValueError, match="already has an event store"):
        bind_session_manager(manager, InMemoryEventStore())


async def test_each_session_gets_an_adapter_bound_to_its_real_id(harness: Harness) -> None:
    a, b = await harness.raw_session(), await harness.raw_session()
    assert a.session_id != b.session_id
    for session in (a, b):
        await session.call_tool(1, "count", label="X", steps=1)
        await harness.settled()
        assert await harness.store.stream_count(session.session_id) == 2  # "0" and "1"


async def test_the_app_opens_and_closes_a_store_given_by_url(sqlite_url: str) -> None:
    server, options = build_test_server(Conductor())
    app = resumable_app(server, sqlite_url, **options)
    binding: SessionBinding = app.state.eventstore_binding
    async with serve_on_loopback(app) as base_url, httpx.AsyncClient(timeout=20) as http:
        session = RawSession(http, f"{base_url}/mcp")
        await session.open()
        await session.call_tool(1, "count", label="U", steps=2)
        assert binding.store is not None
    async with open_store(sqlite_url) as store:
        assert len(await store.get_stream_events(session.session_id, "1")) == 4
