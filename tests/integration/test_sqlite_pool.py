"""SQLite pooled connections: rolled back on return only when a transaction is open."""

from __future__ import annotations

from sqlalchemy import text

from eventstore import SqlEventStore, open_store


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
