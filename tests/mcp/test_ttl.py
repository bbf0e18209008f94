"""TTL: the background pruner, the app's pruning task, and ``eventstore prune``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from eventstore import InMemoryEventStore, InvalidInputError, open_store
from eventstore.cli import main
from eventstore.mcp import prune_idle_sessions_every, resumable_app
from eventstore.mcp.demo.app import Conductor
from eventstore.mcp.demo.loopback import serve_on_loopback
from tests.mcp.conftest import eventually
from tests.mcp.raw import RawSession
from tests.mcp.server import build_test_server


async def test_the_pruner_drops_idle_sessions_and_keeps_busy_ones() -> None:
    store = InMemoryEventStore()
    await store.store_event("idle", "1", "e1", 1)
    async with prune_idle_sessions_every(store, idle_seconds=0.2, interval_seconds=0.02):
        for n in range(40):
            await store.store_event("busy", "1", f"b{n}", n)
            await asyncio.sleep(0.02)
        assert await store.stream_count("idle") == 0
        assert await store.stream_count("busy") == 1


async def test_the_pruner_survives_failing_rounds_and_stops_cleanly() -> None:
    store = InMemoryEventStore()
    async with prune_idle_sessions_every(store, idle_seconds=0, interval_seconds=0.01):
        await store.close()
        await asyncio.sleep(0.05)


async def test_the_pruner_rejects_nonsense_intervals() -> None:
    with pytest.raises(InvalidInputError):
        async with prune_idle_sessions_every(
            InMemoryEventStore(), idle_seconds=1, interval_seconds=0
        ):
            pass


async def test_the_app_prunes_idle_sessions_in_the_background(sqlite_url: str) -> None:
    server, options = build_test_server(Conductor())
    async with open_store(sqlite_url) as store:
        app = resumable_app(
            server, store, idle_ttl_seconds=0.3, prune_interval_seconds=0.05, **options
        )
        async with serve_on_loopback(app) as base_url, httpx.AsyncClient(timeout=20) as http:
            session = RawSession(http, f"{base_url}/mcp")
            await session.open()
            await session.call_tool(1, "count", label="I", steps=2)
            await app.state.eventstore_binding.worker.flush()
            assert await store.stream_count(session.session_id) == 2

            async def pruned() -> bool:
                return await store.stream_count(session.session_id) == 0

            await eventually(pruned)


def seed(url: str, sessions: int) -> None:
    async def write() -> None:
        async with open_store(url) as store:
            for n in range(sessions):
                await store.store_event(f"s{n}", "1", "e", n)

    asyncio.run(write())


def test_prune_command_drops_sessions_idle_for_the_given_time(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/events.sqlite3"
    seed(url, 3)
    runner = CliRunner()
    kept = runner.invoke(main, ["prune", "--idle", "1h", "--url", url])
    assert kept.exit_code == 0, kept.output
    assert "pruned 0 idle session(s)" in kept.output
    dropped = runner.invoke(main, ["prune", "--idle", "0s", "--url", url])
    assert dropped.exit_code == 0, dropped.output
    assert "pruned 3 idle session(s)" in dropped.output


@pytest.mark.parametrize("idle", ["", "1", "1x", "h", "-1h", "1h 30x"])
def test_prune_command_rejects_what_is_not_a_duration(idle: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/events.sqlite3"
    result = CliRunner().invoke(main, ["prune", "--idle", idle, "--url", url])
    assert result.exit_code == 2
    assert "not a duration" in result.output


@pytest.mark.parametrize(
    ("idle", "ms"), [("500ms", 500), ("90s", 90_000), ("1h30m", 5_400_000), ("2d", 172_800_000)]
)
def test_durations(idle: str, ms: int) -> None:
    from eventstore.cli.prune import parse_duration

    assert parse_duration(None, None, idle) == ms  # type: ignore[arg-type]
