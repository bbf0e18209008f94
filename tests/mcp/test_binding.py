"""Plugging into the SDK: one adapter per session, refusals, the app's own store."""

from __future__ import annotations

import time

import httpx
import pytest
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from eventstore import InMemoryEventStore, StoreClosedError, open_store
from eventstore.mcp import SessionBinding, SessionEventStore, bind_session_manager, resumable_app
from eventstore.mcp.demo.app import Conductor
from eventstore.mcp.demo.loopback import serve_on_loopback
from tests.mcp.conftest import Harness, eventually, start_harness
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
    app = resumable_app(server, sqlite_url, clear_on_delete=False, **options)
    binding: SessionBinding = app.state.eventstore_binding
    async with serve_on_loopback(app) as base_url, httpx.AsyncClient(timeout=20) as http:
        session = RawSession(http, f"{base_url}/mcp")
        await session.open()
        await session.call_tool(1, "count", label="U", steps=2)
        assert binding.store is not None
        opened = binding.store
    with pytest.raises(StoreClosedError):
        await opened.stream_count(session.session_id)
    async with open_store(sqlite_url) as store:
        assert len(await store.get_stream_events(session.session_id, "1")) == 4


async def test_a_session_the_sdk_expires_is_dropped_from_the_store(sql_url: str) -> None:
    """The SDK's idle timeout discards the session: nothing can resume it any more."""
    async for harness in start_harness(sql_url, server_options={"session_idle_timeout": 0.5}):
        expiring, busy = await harness.raw_session(), await harness.raw_session()
        await expiring.call_tool(1, "count", label="X", steps=2)
        await harness.settled()
        assert await harness.store.stream_count(expiring.session_id) == 2

        async def dropped(
            harness: Harness = harness, expiring: RawSession = expiring, busy: RawSession = busy
        ) -> bool:
            # Keep the other session busy: only the idle one expires.
            await busy.call_tool(f"b-{time.monotonic()}", "count", label="B", steps=1)
            return await harness.store.stream_count(expiring.session_id) == 0

        await eventually(dropped)
        assert harness.binding.adapter(expiring.session_id) is None
        # The SDK forgot it too: its id answers 404.
        assert (await expiring.resume("AAAAAAAAAAA.1.1"))[0] == 404
        assert await harness.store.stream_count(busy.session_id) > 0


@pytest.mark.parametrize("clear", [True, False], ids=["clear", "keep"])
async def test_server_shutdown_drops_the_sessions_it_served(sql_url: str, clear: bool) -> None:
    """A restarted server knows none of its old sessions: their events are of no use."""
    server, options = build_test_server(Conductor())
    async with open_store(sql_url) as store:
        app = resumable_app(server, store, idle_ttl_seconds=None, clear_on_delete=clear, **options)
        async with serve_on_loopback(app) as base_url, httpx.AsyncClient(timeout=20) as http:
            sessions = [RawSession(http, f"{base_url}/mcp") for _ in range(3)]
            for session in sessions:
                await session.open()
                await session.call_tool(1, "count", label="S", steps=2)
            await app.state.eventstore_binding.worker.flush()
            assert [await store.stream_count(s.session_id) for s in sessions] == [2, 2, 2]
        expected = 0 if clear else 2
        assert [await store.stream_count(s.session_id) for s in sessions] == [expected] * 3
