"""SQLite pooled connections: rolled back on return only when a transaction is open."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from eventstore import (
    PersistenceWorker,
    SqlEventStore,
    StoreEvent,
    StoreUnavailableError,
    UpdateLastEventId,
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


def _threads_and_files() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def _write_lock_held(sqlite_url: str) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock, as another process would."""
    blocker = sqlite3.connect(sqlite_url.split(":///", 1)[1], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield blocker
    finally:
        blocker.rollback()
        blocker.close()


class _Peak:
    """The most threads and open files seen since it was made."""

    def __init__(self) -> None:
        self.start = self.most = _threads_and_files()

    def note(self) -> None:
        now = _threads_and_files()
        self.most = (max(self.most[0], now[0]), max(self.most[1], now[1]))

    def assert_pool_bounded(self) -> None:
        # One connection (pool_size=1) and its thread, plus some slack: unbounded, 200
        # cancels made 200 of each.
        assert self.most[0] <= self.start[0] + 2, (self.start, self.most)
        assert self.most[1] <= self.start[1] + 6, (self.start, self.most)


@pytest.mark.parametrize("kind", ["appends only", "mixed batch"])
async def test_writes_cancelled_while_another_connection_holds_the_lock_stay_in_the_pool(
    sqlite_url: str, kind: str
) -> None:
    """Callers giving up on their writes (a request timeout) while another process holds
    SQLite's write lock: each cancelled write used to leave its connection's thread waiting
    out busy_timeout and the pool opened a new connection, thread and file for the next.
    The pool's bound holds now, reads go on, and nothing cancelled commits later."""
    async with open_store(
        sqlite_url, pool_size=1, max_overflow=0, sqlite_busy_timeout_ms=60_000
    ) as store:
        acknowledged = [await store.store_event("s", "a", f"e{n}", n) for n in range(3)]
        peak = _Peak()
        with _write_lock_held(sqlite_url):
            for n in range(200):
                batch: list[Any] = [StoreEvent("s", "a", f"gone{n}", n)]
                if kind == "mixed batch":
                    batch.append(UpdateLastEventId("s", "a", "e0"))
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(store.apply(batch), 0.005)
                if n % 20 == 0:
                    # WAL readers do not wait for the write lock, nor for the one
                    # connection the cancelled writes were using.
                    replay = await asyncio.wait_for(store.get_events_after("s", "a", "e0"), 10)
                    assert replay == acknowledged[1:]
                peak.note()
        peak.assert_pool_bounded()
        await asyncio.sleep(0.5)  # time for anything still queued to commit, wrongly
        last = await store.store_event("s", "a", "last", 1)
        assert last.seq == 4  # the cancelled writes took no seqs
        assert await store.get_stream_events("s", "a") == [*acknowledged, last]
        assert await store.get_events_after("s", "a", "e2") == [last]


async def test_reads_cancelled_while_another_connection_holds_the_lock_stay_in_the_pool(
    sqlite_url: str,
) -> None:
    """WAL readers do not wait for the write lock; a cancelled read's connection goes back
    to the pool, its next call queued behind the one cancelled."""
    async with open_store(sqlite_url, pool_size=1, max_overflow=0) as store:
        acknowledged = [await store.store_event("s", "a", f"e{n}", n) for n in range(50)]
        peak = _Peak()
        with _write_lock_held(sqlite_url):
            for _ in range(200):
                replay = asyncio.create_task(store.get_events_after("s", "a", "e0"))
                await asyncio.sleep(0.005)
                replay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    assert await replay == acknowledged[1:]
                peak.note()
        peak.assert_pool_bounded()
        assert await store.get_events_after("s", "a", "e48") == acknowledged[49:]


async def test_a_write_waiting_for_the_lock_keeps_to_busy_timeout(sqlite_url: str) -> None:
    """The wait for the write lock is cut into slices (so a cancel is seen); together they
    last busy_timeout, and the connection keeps its busy_timeout afterwards."""
    async with open_store(
        sqlite_url, pool_size=1, max_overflow=0, sqlite_busy_timeout_ms=400
    ) as store:
        assert isinstance(store, SqlEventStore)
        with _write_lock_held(sqlite_url) as blocker:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="database is locked"):
                await store.store_event("s", "a", "e1", 1)
            assert time.monotonic() - started >= 0.35
            # Released while a write waits, several slices in: the write goes through.
            asyncio.get_running_loop().call_later(0.2, blocker.rollback)
            assert (await store.store_event("s", "a", "e1", 1)).seq == 1
        async with store.engine.connect() as conn:
            timeout = await conn.exec_driver_sql("PRAGMA busy_timeout")
            assert timeout.scalar_one() == 400


async def test_writes_cancelled_in_a_row_do_not_hold_up_the_next_call(sqlite_url: str) -> None:
    """Each cancelled write queued behind the one waiting for the lock used to wait a
    slice of its own on the connection's thread: after 100 cancels the next read
    waited about 100 slices (4.6 s), and the next write as long on top of busy_timeout."""
    async with open_store(
        sqlite_url, pool_size=1, max_overflow=0, sqlite_busy_timeout_ms=400
    ) as store:
        first = await store.store_event("s", "a", "e0", 0)
        with _write_lock_held(sqlite_url):
            for n in range(100):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(store.store_event("s", "a", f"gone{n}", n), 0.005)
            started = time.monotonic()
            assert await store.get_stream_events("s", "a") == [first]
            assert time.monotonic() - started < 1.5
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="database is locked"):
                await store.store_event("s", "a", "e1", 1)
            assert time.monotonic() - started < 1.5
        assert (await store.store_event("s", "a", "e1", 1)).seq == 2
