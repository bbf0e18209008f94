"""Failures: a row the database refuses, a busy SQLite file, PostgreSQL restarting."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text

from eventstore import (
    EventStoreError,
    PersistenceWorker,
    SqlEventStore,
    StoredEvent,
    StoreEvent,
    StoreUnavailableError,
    open_store,
)
from tests.conftest import PostgresServer

_REFUSE_POISON = {
    "sqlite": (
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON events "
        "WHEN NEW.data LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"
    ),
    "postgresql": (
        "ALTER TABLE events ADD CONSTRAINT refuse_poison CHECK (data NOT LIKE '%poison%')"
    ),
}


async def test_a_row_the_database_refuses_fails_alone(sql_url: str) -> None:
    async with open_store(sql_url) as store:
        assert isinstance(store, SqlEventStore)
        async with store.engine.begin() as conn:
            await conn.execute(text(_REFUSE_POISON[store.engine.dialect.name]))
        async with PersistenceWorker(store, max_delay=0.05) as worker:
            futures = [
                await worker.submit(StoreEvent("s", f"st{i % 5}", f"e{i}", f"ok {i}"))
                for i in range(40)
            ]
            bad = await worker.submit(StoreEvent("s", "st0", "bad", "poison"))
            futures += [
                await worker.submit(StoreEvent("s", f"st{i % 5}", f"e{i}", f"ok {i}"))
                for i in range(40, 80)
            ]
            await worker.flush()
        with pytest.raises(EventStoreError, match="refused"):
            bad.result()
        assert all(isinstance(f.result(), StoredEvent) for f in futures)
        for st in range(5):
            events = await store.get_stream_events("s", f"st{st}")
            assert [e.id for e in events] == [f"e{i}" for i in range(st, 80, 5)]
            assert [e.seq for e in events] == list(range(1, 17))
    # One batch was taken; the splitting committed the 80 others in a few transactions.
    assert worker.stats.committed == 80 and worker.stats.failed == 1


def _lock_sqlite(url: str) -> sqlite3.Connection:
    """Another process's writer: holds the SQLite write lock until rolled back."""
    conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_busy_sqlite_is_retried_until_the_lock_goes(sqlite_url: str) -> None:
    async with open_store(sqlite_url, sqlite_busy_timeout_ms=50) as store:
        async with PersistenceWorker(store, retry_timeout=30, retry_max=0.2) as worker:
            await worker.store_event("s", "a", "e0", 0)
            blocker = _lock_sqlite(sqlite_url)
            try:
                pending = [await worker.submit(StoreEvent("s", "a", f"e{i}", i)) for i in (1, 2)]
                await asyncio.sleep(1.0)
                assert not any(f.done() for f in pending)
                assert worker.stats.retries >= 2
            finally:
                blocker.rollback()
                blocker.close()
            assert [f.seq for f in await asyncio.gather(*pending)] == [2, 3]


async def test_an_outage_longer_than_the_deadline_fails_then_recovers(sqlite_url: str) -> None:
    async with open_store(sqlite_url, sqlite_busy_timeout_ms=50) as store:
        async with PersistenceWorker(store, retry_timeout=0.5, retry_max=0.1) as worker:
            blocker = _lock_sqlite(sqlite_url)
            try:
                with pytest.raises(StoreUnavailableError):
                    await worker.store_event("s", "a", "lost", 1)
            finally:
                blocker.rollback()
                blocker.close()
            # The worker is not stuck: the next request commits.
            assert (await worker.store_event("s", "a", "e1", 1)).seq == 1
        assert worker.stats.failed == 1 and worker.stats.committed == 1


async def test_postgres_restart_mid_run_loses_and_duplicates_nothing(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    cluster = postgres_server.cluster
    if cluster is None:
        pytest.skip("needs the throwaway cluster to stop and start it")
    acked: list[StoredEvent] = []
    restarted = asyncio.Event()

    async def producer(worker: PersistenceWorker, p: int) -> None:
        for i in range(150):
            acked.append(await worker.store_event("s", f"st{p % 4}", f"p{p}-{i}", i))
            if i == 40 and p == 0:
                await asyncio.to_thread(cluster.stop)
                await asyncio.sleep(1.5)
                await asyncio.to_thread(cluster.start)
                restarted.set()

    async with open_store(postgres_url) as store:
        try:
            async with PersistenceWorker(store, retry_timeout=60, retry_max=0.5) as worker:
                await asyncio.gather(*(producer(worker, p) for p in range(16)))
        finally:
            if not restarted.is_set():
                cluster.start()
        assert worker.stats.retries > 0, "the outage was never seen"
        stored = [e for st in range(4) for e in await store.get_stream_events("s", f"st{st}")]
    assert len(acked) == 16 * 150 and worker.stats.failed == 0
    assert sorted(e.id for e in stored) == sorted(e.id for e in acked)
    by_id = {e.id: e for e in stored}
    assert all(by_id[e.id].seq == e.seq for e in acked)
    for st in range(4):
        seqs = [e.seq for e in stored if e.stream_id == f"st{st}"]
        assert seqs == list(range(1, len(seqs) + 1))
