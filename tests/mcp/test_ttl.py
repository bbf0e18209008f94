"""TTL: the background pruner, the app's pruning task, and ``eventstore prune``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventstore import InMemoryEventStore, InvalidInputError, SqlEventStore, open_store
from eventstore.cli import main
from eventstore.mcp import prune_idle_sessions_every, resumable_app
from eventstore.mcp.demo.app import Conductor
from tests.mcp.conftest import Harness, eventually, start_harness
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


async def test_the_pruner_touches_live_sessions_before_each_round() -> None:
    store = InMemoryEventStore()
    await store.store_event("live", "1", "e1", 1)
    await store.store_event("gone", "1", "e1", 1)
    async with prune_idle_sessions_every(
        store, idle_seconds=0.2, interval_seconds=0.02, live_sessions=lambda: ["live"]
    ):
        await asyncio.sleep(0.6)
        assert await store.stream_count("gone") == 0
        assert await store.stream_count("live") == 1


async def test_after_an_outage_live_sessions_are_fresh_at_once_and_pruned_only_later(
    sqlite_url: str,
) -> None:
    """A database away longer than the idle time: every session looks idle when it is
    back. The heartbeat comes back within a second, not an interval, and that first
    round prunes nothing (other replicas' heartbeats may still be failing)."""
    async with open_store(sqlite_url, sqlite_busy_timeout_ms=20) as store:
        assert isinstance(store, SqlEventStore)
        for session_id in ("live", "gone"):
            await store.store_event(session_id, "1", "e1", 1)
        async with store.engine.connect() as blocker:
            async with blocker.begin():  # holds SQLite's write lock: the outage
                async with prune_idle_sessions_every(
                    store, idle_seconds=0.5, interval_seconds=2, live_sessions=lambda: ["live"]
                ):
                    await asyncio.sleep(1.0)  # every heartbeat fails; both now look idle
                    await blocker.rollback()  # back
                    await asyncio.sleep(1.2)  # within the retry, well before the interval
                    live = await store.get_stream_info("live", "1")
                    assert live is not None and time.time() * 1000 - live.updated_at < 1500
                    assert await store.stream_count("gone") == 1  # not pruned yet
                    await asyncio.sleep(2.5)  # the next full round prunes
                    assert await store.stream_count("gone") == 0
                    assert await store.stream_count("live") == 1


async def test_the_app_prunes_abandoned_sessions_and_keeps_live_quiet_ones(sql_url: str) -> None:
    """A session with an open GET stream and nothing to send is alive: never pruned."""
    async for harness in start_harness(
        sql_url,
        idle_ttl_seconds=0.4,
        prune_interval_seconds=0.05,
        server_options={"session_idle_timeout": None},
    ):
        # Left behind by a process that died: nobody serves it.
        await harness.store.store_event("abandoned", "1", "e1", {"n": 1})
        session = await harness.raw_session()
        await session.call_tool(1, "count", label="Q", steps=2)
        await harness.settled()
        async with session.listening():

            async def abandoned_pruned(harness: Harness = harness) -> bool:
                return await harness.store.stream_count("abandoned") == 0

            await eventually(abandoned_pruned)
            # Several TTLs without a single write.
            await asyncio.sleep(1.2)
            assert await harness.store.stream_count(session.session_id) == 2
        status, replayed = await session.resume(
            (await harness.store.get_stream_events(session.session_id, "1"))[0].id
        )
        assert status == 200 and replayed[-1].is_response


async def test_the_heartbeat_runs_with_pruning_off_for_other_pruners(sql_url: str) -> None:
    """``idle_ttl_seconds=None``: this replica does not prune, but another one (or cron)
    must still see its live sessions as active."""
    async for harness in start_harness(sql_url, idle_ttl_seconds=None, prune_interval_seconds=0.05):
        session = await harness.raw_session()
        await session.call_tool(1, "count", label="H", steps=2)
        await harness.settled()
        await harness.store.store_event("abandoned", "1", "e1", {"n": 1})
        await asyncio.sleep(0.8)
        # What another replica's pruner, or `eventstore prune --idle 400ms`, does:
        assert await harness.store.prune_idle_sessions(400) == 1
        assert await harness.store.stream_count("abandoned") == 0
        assert await harness.store.stream_count(session.session_id) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_ttl_seconds": -1, "write_retry_seconds": -5}, "write_retry_seconds"),
        ({"idle_ttl_seconds": -1}, "idle_ttl_seconds must be None or a positive"),
        ({"idle_ttl_seconds": float("nan")}, "idle_ttl_seconds"),
        ({"idle_ttl_seconds": True}, "idle_ttl_seconds"),
        ({"write_retry_seconds": -5}, "write_retry_seconds must be a non-negative"),
        ({"write_retry_seconds": "30"}, "write_retry_seconds"),
        ({"prune_interval_seconds": 0}, "prune_interval_seconds must be a positive"),
        ({"finished_stream_ttl_seconds": 0}, "finished_stream_ttl_seconds must be"),
        ({"finished_stream_ttl_seconds": "600"}, "finished_stream_ttl_seconds"),
        ({"prune_interval_seconds": float("inf")}, "prune_interval_seconds"),
        (
            {"idle_ttl_seconds": 3600, "prune_interval_seconds": 1800.5},
            "at least twice prune_interval_seconds",
        ),
        ({"idle_ttl_seconds": 600}, "session_idle_timeout"),
    ],
)
def test_the_app_rejects_unusable_timings_at_construction(
    options: dict[str, object], message: str
) -> None:
    server, http_options = build_test_server(Conductor())
    with pytest.raises(InvalidInputError, match=message):
        resumable_app(server, InMemoryEventStore(), **options, **http_options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (42, "store must be an EventStore, a database URL or None, not int"),
        ("", "url is empty"),
        ("mysql://db/x", "unsupported database URL scheme"),
        ("memory://foo", "memory:// takes no path"),
        ("not a url", "not a database URL"),
    ],
)
def test_the_app_rejects_an_unusable_store_at_construction(store: object, message: str) -> None:
    server, http_options = build_test_server(Conductor())
    with pytest.raises(InvalidInputError, match=message):
        resumable_app(server, store, **http_options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("store", "options", "message"),
    [
        ("memory://", {"store_options": "x"}, "store options must be a mapping"),
        ("memory://", {"store_options": {"bogus": 1}}, "memory:// has no database"),
        ("sqlite:///x.db", {"store_options": {"bogus": 1}}, "unusable store option.*bogus"),
        (None, {"store_options": {"max_events_per_stream": -5}}, "max_events_per_stream"),
        (None, {"store_options": {"max_events_per_stream": "10"}}, "max_events_per_stream"),
        (None, {"store_options": {"create_schema": "no"}}, "create_schema must be True"),
        (
            "postgresql://u@127.0.0.1/db",
            {"store_options": {"sqlite_busy_timeout_ms": 1}},
            "only apply to SQLite",
        ),
        (InMemoryEventStore(), {"store_options": {"max_events_per_stream": 5}}, "open already"),
        ("memory://", {"group_commit": "no"}, "group_commit must be True or False, not 'no'"),
        ("memory://", {"clear_on_delete": None}, "clear_on_delete must be True or False"),
        ("memory://", {"stateless_http": True}, "stateless"),
        ("memory://", {"event_store": InMemoryEventStore()}, "resumable_app.server, store."),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_the_app_rejects_unusable_store_options_and_flags_at_construction(
    store: object, options: dict[str, object], message: str
) -> None:
    server, http_options = build_test_server(Conductor(), **_sdk_option(options))
    with pytest.raises(InvalidInputError, match=message):
        resumable_app(server, store, **options, **http_options)  # type: ignore[arg-type]


def _sdk_option(options: dict[str, object]) -> dict[str, object]:
    """The SDK's own options (``streamable_http_app`` takes them on mcp 2.x, the server
    on 1.x), moved out of ``options``."""
    return {
        name: options.pop(name) for name in ("stateless_http", "event_store") if name in options
    }


def test_a_ttl_of_at_least_the_sdk_idle_timeout_is_accepted() -> None:
    server, http_options = build_test_server(Conductor(), session_idle_timeout=120)
    resumable_app(
        server,
        InMemoryEventStore(),
        idle_ttl_seconds=120,
        prune_interval_seconds=60,
        **http_options,
    )


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
    time.sleep(0.05)  # idle for 50 ms (--idle 0 is refused: it would drop sessions in use)
    dropped = runner.invoke(main, ["prune", "--idle", "10ms", "--url", url])
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


def test_the_app_rejects_what_is_not_a_server_and_unknown_http_options() -> None:
    with pytest.raises(InvalidInputError, match=r"server must be an MCP server .* not str"):
        resumable_app("my-server", "memory://")  # type: ignore[arg-type]

    class OnlyAnApp:
        def streamable_http_app(self) -> None: ...

    with pytest.raises(InvalidInputError, match=r"server must be an MCP server .* OnlyAnApp"):
        resumable_app(OnlyAnApp(), "memory://")  # type: ignore[arg-type]
    server_class = type(build_test_server(Conductor())[0])
    with pytest.raises(InvalidInputError, match="an MCP server instance, not the class"):
        resumable_app(server_class, "memory://")  # type: ignore[arg-type]
    server, http_options = build_test_server(Conductor())
    with pytest.raises(InvalidInputError, match="unusable option for the server's HTTP app"):
        resumable_app(server, "memory://", no_such_http_option=1, **http_options)
