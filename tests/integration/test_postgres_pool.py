"""PostgreSQL pooled connections: pinged when they sat idle, not on every checkout."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import pytest
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import create_async_engine

from eventstore import (
    EventStore,
    EventStoreError,
    SqlEventStore,
    StoreClosedError,
    StoreUnavailableError,
    open_store,
)
from eventstore.sql.postgresql import PING_IDLE_SECONDS


async def _backend_pids(store: SqlEventStore) -> set[int]:
    async with store.engine.connect() as conn:
        own = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        pids = await conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return {own, *(row[0] for row in pids)}


async def _terminate(url: str, pids: set[int]) -> None:
    """End the store's server connections from outside, as a server restart would."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            for pid in pids:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await engine.dispose()


async def test_a_connection_that_died_while_idle_is_replaced_before_use(
    postgres_url: str,
) -> None:
    async with open_store(postgres_url) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e1", 1)
        await _terminate(postgres_url, await _backend_pids(store))
        await asyncio.sleep(PING_IDLE_SECONDS + 0.2)
        # No error: the checkout pings the idle connection and replaces it.
        stored = await store.store_event("s", "a", "e2", 2)
        assert stored.seq == 2


async def test_a_connection_that_died_moments_ago_fails_one_call_cleanly(
    postgres_url: str,
) -> None:
    async with open_store(postgres_url) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e1", 1)
        await _terminate(postgres_url, await _backend_pids(store))
        # Not pinged (used moments ago): the write meets the dead connection, raises the
        # retryable error and writes nothing; the pool drops its dead connections.
        with pytest.raises(StoreUnavailableError):
            await store.store_event("s", "a", "e2", 2)
        stored = await store.store_event("s", "a", "e2", 2)
        assert stored.seq == 2
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1", "e2"]


async def test_an_explicit_pool_pre_ping_pings_every_checkout(postgres_url: str) -> None:
    async with open_store(postgres_url, pool_pre_ping=True) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e1", 1)
        await _terminate(postgres_url, await _backend_pids(store))
        stored = await store.store_event("s", "a", "e2", 2)
        assert stored.seq == 2


def test_a_store_used_from_another_event_loop_says_so(postgres_url: str) -> None:
    store = asyncio.run(_open(postgres_url))

    async def use_elsewhere() -> None:
        with pytest.raises(EventStoreError, match="another event loop than the one it was"):
            await store.store_event("s", "a", "e1", 1)
        with pytest.raises(EventStoreError, match="another event loop"):
            await store.get_stream_events("s", "a")

    asyncio.run(use_elsewhere())


def test_a_store_closed_from_another_event_loop_says_so_and_logs_nothing(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def open_and_use() -> EventStore:
        store = await open_store(postgres_url)
        await store.store_event("s", "a", "e1", 1)  # a pooled connection to drop
        return store

    store = asyncio.run(open_and_use())
    with pytest.raises(EventStoreError, match="closed from another event loop"):
        asyncio.run(store.close())
    # Closing the dead loop's connections would log an ERROR with a traceback for each.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    asyncio.run(store.close())  # closed now: nothing more to say

    async def use() -> None:
        with pytest.raises(StoreClosedError):
            await store.store_event("s", "a", "e2", 2)

    asyncio.run(use())


async def _open(url: str) -> EventStore:
    return await open_store(url)


async def test_calls_cancelled_mid_connect_log_nothing_and_leave_no_connection(
    postgres_url: str,
) -> None:
    """Request timeouts shorter than a connect: each cancelled write discards its
    connection, so the next call connects and is cancelled mid-connect. asyncpg cut short
    in its SSL negotiation used to leave a failed future that nothing read, and asyncio
    logged "Future exception was never retrieved" with a traceback for each; the connect
    now runs to its end and its connection is closed."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        async with open_store(postgres_url, pool_size=2, max_overflow=0) as store:
            assert isinstance(store, SqlEventStore)
            await store.store_event("s", "a", "first", 0)
            for n in range(120):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        store.store_event("s", "a", f"e{n}", n), 0.0002 * (n % 10 + 1)
                    )
            await asyncio.sleep(0.5)  # the connects left running end meanwhile
            gc.collect()  # an unread failed future is reported when collected
            await asyncio.sleep(0)
            stored = await store.get_stream_events("s", "a")
            assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
            # The pool's connections (at most 2) and nothing left behind by the cancels.
            assert len(await _backend_pids(store)) <= 2
    finally:
        loop.set_exception_handler(None)
    assert unhandled == []
