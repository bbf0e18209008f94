"""A stalled database: producers wait, the queue stays bounded, nothing is dropped."""

from __future__ import annotations

import asyncio
import tracemalloc

from sqlalchemy import text

from eventstore import PersistenceWorker, SqlEventStore, StoreEvent, open_store

MAX_QUEUE = 500
# Held by another connection: every write of the store waits (SQLite: the write lock
# BEGIN IMMEDIATE takes; PostgreSQL: the head rows' table).
_STALL = {"sqlite": None, "postgresql": "LOCK TABLE event_streams IN EXCLUSIVE MODE"}


async def test_stalled_database_bounds_queue_and_memory(sql_url: str) -> None:
    sqlite_options = {"sqlite_busy_timeout_ms": 100} if sql_url.startswith("sqlite") else {}
    async with open_store(sql_url, **sqlite_options) as store:
        assert isinstance(store, SqlEventStore)
        worker = PersistenceWorker(store, max_queue=MAX_QUEUE, max_batch=100, retry_max=0.2)
        stop = asyncio.Event()

        async def producer(p: int) -> None:
            i = 0
            while not stop.is_set():
                await worker.submit(StoreEvent("s", f"st{p}", f"p{p}-{i}", "x" * 200))
                i += 1

        blocker = await store.engine.connect()
        transaction = await blocker.begin()
        if (stall := _STALL[store.engine.dialect.name]) is not None:
            await blocker.execute(text(stall))
        tracemalloc.start()
        try:
            producers = [asyncio.create_task(producer(p)) for p in range(8)]
            await asyncio.sleep(0.5)
            filled = worker.stats
            memory_then = tracemalloc.get_traced_memory()[0]
            await asyncio.sleep(2.0)
            stalled = worker.stats
            growth = tracemalloc.get_traced_memory()[0] - memory_then
        finally:
            tracemalloc.stop()
            await transaction.rollback()
            await blocker.close()
        assert filled.queued == MAX_QUEUE
        # Blocked for two seconds: not one more request was accepted, memory stayed flat.
        assert stalled.submitted == filled.submitted
        assert stalled.queued == MAX_QUEUE
        # The batch the worker holds is neither queued nor settled: it is counted apart.
        assert stalled.committing == 100
        assert stalled.submitted == (
            stalled.committed + stalled.failed + stalled.committing + stalled.queued
        )
        assert growth < 256 * 1024, f"memory grew by {growth} bytes while stalled"

        await asyncio.sleep(0.2)  # the database is back: the producers make progress
        stop.set()
        await asyncio.gather(*producers)
        await worker.close()
        stats = worker.stats
        assert stats.submitted > filled.submitted
        assert stats.queue_high_water == MAX_QUEUE
        assert stats.committed == stats.submitted and stats.failed == 0
        assert stats.committing == 0
        stored = sum([len(await store.get_stream_events("s", f"st{p}")) for p in range(8)])
        assert stored == stats.submitted
