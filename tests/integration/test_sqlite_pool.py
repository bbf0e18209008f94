"""SQLite pooled connections: rolled back on return only when a transaction is open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from eventstore import (
    PersistenceWorker,
    SqlEventStore,
    StoreEvent,
    StoreUnavailableError,
    open_store,
)


async def test_a_transaction_left_open_is_rolled_back_when_returned(sqlite_url: str) -> None:
    async with open_store(sqlite_url, sqlite_busy_timeout_ms=200) as store:
        assert isinstance(store, SqlEventStore)
        async with store.engine.connect() as conn:
            # Behind SQLAlchemy's back, so only the pool's reset can end it.
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.execute("BEGIN IMMEDIATE")
            await driver.execute(
                "INSERT INTO eventstore_settings (id, max_events_per_stream) VALUES (1, 5) "
                "ON CONFLICT (id) DO UPDATE SET max_events_per_stream = 5"
            )
            assert driver.in_transaction
        # The write lock is free again and the uncommitted change is gone.
        stored = await store.store_event("s", "a", "e1", 1)
        assert stored.seq == 1
        assert await store.get_max_events_per_stream() is None
        async with store.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            assert not driver.in_transaction
            rows = await conn.execute(text("SELECT count(*) FROM events"))
            assert rows.scalar_one() == 1


async def test_connections_opened_read_only_are_replaced_once_the_file_is_writable(
    sqlite_url: str,
) -> None:
    """SQLite opens a file it may not write read-only, for good. (``query_only`` stands in
    for the file's permissions, which root ignores.)"""
    async with open_store(sqlite_url) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e0", 0)
        writable = False

        @event.listens_for(store.engine.sync_engine, "connect")
        def _opened(dbapi_connection: Any, _record: Any) -> None:
            if not writable:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA query_only = ON")
                cursor.close()

        await store.engine.dispose()  # every connection from here on is opened read-only
        with pytest.raises(StoreUnavailableError, match="readonly database"):
            await store.store_event("s", "a", "e1", 1)  # the append, on the driver
        with pytest.raises(StoreUnavailableError, match="readonly database"):
            await store.set_max_events_per_stream(5)  # a statement through SQLAlchemy
        async with PersistenceWorker(store, retry_timeout=10) as worker:
            queued = await worker.submit(StoreEvent("s", "a", "e1", 1))
            await asyncio.sleep(0.3)
            assert not queued.done() and worker.stats.retries > 0  # riding it out
            writable = True  # the file is writable again: new connections can write
            assert (await queued).seq == 2
        await store.set_max_events_per_stream(5)
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e0", "e1"]
