"""The contract suite on SQLite files and PostgreSQL, plus what only SQL stores promise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from eventstore import (
    ClearStream,
    CorruptDataError,
    EventStore,
    EventStoreError,
    InvalidInputError,
    SchemaError,
    SqlEventStore,
    StoredEvent,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)
from eventstore.sql import store as sql_store_module
from eventstore.sql.engine import create_engine
from tests.contract import EventStoreContract


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, sqlite_url: str) -> None:
        self.url = sqlite_url

    async def open_store(self, **options: Any) -> EventStore:
        return await open_store(self.url, **options)


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url

    async def open_store(self, **options: Any) -> EventStore:
        return await open_store(self.url, **options)


async def test_events_and_cap_survive_reopening(sql_url: str) -> None:
    async with open_store(sql_url, max_events_per_stream=2) as store:
        for i in range(3):
            await store.store_event("s", "a", f"e{i}", i)
    async with open_store(sql_url) as store:
        assert await store.get_max_events_per_stream() == 2
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1", "e2"]
        await store.store_event("s", "a", "e3", 3)
        assert [e.seq for e in await store.get_stream_events("s", "a")] == [3, 4]


async def test_a_process_that_changes_the_shared_cap_says_so(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="eventstore.sql.store"):
        async with open_store(sql_url, max_events_per_stream=1000) as store:
            for i in range(8):
                await store.store_event("s", "a", f"e{i}", i)
        async with open_store(sql_url, max_events_per_stream=1000):
            pass  # unchanged: nothing to say
        async with open_store(sql_url, max_events_per_stream=5):
            pass  # trims the stream of 8
        async with open_store(sql_url, max_events_per_stream=None):
            pass
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    changed = "store-wide max_events_per_stream changed from"
    everyone = "for every process using this database"
    assert said == [
        ("INFO", f"{changed} unlimited to 1000, {everyone}"),
        ("WARNING", f"{changed} 1000 to 5, {everyone}; 1 stream(s) were trimmed to it"),
        ("INFO", f"{changed} 5 to unlimited, {everyone}"),
    ]


async def test_the_trigger_caps_a_manual_insert(sql_url: str) -> None:
    async with open_store(sql_url, max_events_per_stream=2) as store:
        for i in range(2):
            await store.store_event("s", "a", f"e{i}", i)
        assert isinstance(store, SqlEventStore)
        async with store.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp)"
                    " VALUES ('s', 'a', 3, 'manual', '\"m\"', 0)"
                )
            )
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1", "manual"]


async def test_two_engines_50_tasks_on_one_stream_and_50_on_their_own(sql_url: str) -> None:
    # Two connection pools, as two server replicas have: 25 + 25 tasks append to one
    # shared stream and 25 + 25 to a stream each, all at once.
    first = await open_store(sql_url)
    second = await open_store(sql_url)
    per_task = 8
    try:

        async def write(store: EventStore, task: int) -> None:
            for i in range(per_task):
                await store.store_event("s", "shared", f"shared-{task}-{i}", [task, i])
                await store.store_event("s", f"own-{task}", f"own-{task}-{i}", i)

        await asyncio.gather(*(write(first if task % 2 else second, task) for task in range(50)))
        shared = await first.get_stream_events("s", "shared")
        assert [e.seq for e in shared] == list(range(1, 50 * per_task + 1))
        for task in range(50):
            assert [e.data[1] for e in shared if e.data[0] == task] == list(range(per_task))
            own = await second.get_stream_events("s", f"own-{task}")
            assert [(e.seq, e.data) for e in own] == [(i + 1, i) for i in range(per_task)]
        assert await first.stream_count("s") == 51
    finally:
        await first.close()
        await second.close()


async def test_timestamps_never_go_back_along_seq_under_concurrent_writers(
    sql_url: str,
) -> None:
    # Each append reads the clock before it waits for the stream's lock: a writer that
    # waited holds an older "now" than the one that committed first. Two pools (two
    # replicas), 40 tasks, single appends and batches, all on one stream.
    stores = [await open_store(sql_url), await open_store(sql_url)]
    try:

        async def write(store: EventStore, task: int) -> list[StoredEvent]:
            stored = []
            for i in range(10):
                if i % 3:
                    stored.append(await store.store_event("s", "shared", f"{task}-{i}", i))
                    continue
                batch = await store.apply(
                    [StoreEvent("s", "shared", f"{task}-{i}-{k}", k) for k in range(3)]
                )
                stored += [e for e in batch if isinstance(e, StoredEvent)]
            return stored

        returned = await asyncio.gather(*(write(stores[task % 2], task) for task in range(40)))
        events = await stores[0].get_stream_events("s", "shared")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert len(events) == 40 * (6 + 4 * 3)
        stamps = [e.timestamp for e in events]
        backwards = [
            (events[i].seq, stamps[i], stamps[i + 1])
            for i in range(len(stamps) - 1)
            if stamps[i + 1] < stamps[i]
        ]
        assert backwards == []
        # What each append returned is what was stored.
        assert sorted((e.seq, e.timestamp) for part in returned for e in part) == [
            (e.seq, e.timestamp) for e in events
        ]
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_retries_of_one_event_store_it_once(sql_url: str) -> None:
    stores = [await open_store(sql_url) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(s.store_event("s", "a", "same", {"v": 1}) for s in stores for _ in range(5))
        )
        assert {r.seq for r in results} == {1}
        assert len(await stores[0].get_stream_events("s", "a")) == 1
    finally:
        for s in stores:
            await s.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://x/y", "sqlite+pysqlite:///x.db", "not a url", "sqlite+aiosqlite:///:memory:"],
)
async def test_unsupported_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(InvalidInputError):
        await open_store(url)


async def test_url_without_driver_gets_the_async_one(tmp_path: Any) -> None:
    async with open_store(f"sqlite:///{tmp_path}/plain.db") as store:
        assert isinstance(store, SqlEventStore)
        assert store.engine.dialect.driver == "aiosqlite"


async def test_cancelled_appends_leave_no_connection_inside_a_transaction(sql_url: str) -> None:
    # One pooled connection, so every append after a cancelled one reuses it: had a
    # cancelled append left it inside a transaction, the last append would never commit
    # and another store would not see it.
    async with (
        open_store(sql_url, pool_size=1, max_overflow=0) as store,
        open_store(sql_url) as other,
    ):
        tried = []
        for n, delay in enumerate([0.0, 0.0001, 0.0003, 0.0006, 0.001, 0.002, 0.004] * 4):
            tried.append(f"c{n}")
            append = asyncio.create_task(store.store_event("s", "a", f"c{n}", {"n": n}))
            await asyncio.sleep(delay)
            append.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await append
        last = await store.store_event("s", "a", "last", {"n": -1})
        seen = await other.get_stream_events("s", "a")
    assert seen[-1] == last
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert {e.id for e in seen[:-1]} <= set(tried)


async def test_cancelled_replays_leave_the_connection_usable(sql_url: str) -> None:
    async with open_store(sql_url, pool_size=1, max_overflow=0) as store:
        stored = [await store.store_event("s", "a", f"e{n}", {"n": n}) for n in range(200)]
        for delay in [0.0, 0.0001, 0.0003, 0.0006, 0.001, 0.002] * 4:
            replay = asyncio.create_task(store.get_events_after("s", "a", "e0"))
            await asyncio.sleep(delay)
            replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                assert await replay == stored[1:]
            assert await store.get_events_after("s", "a", "e197") == stored[198:]
        last = await store.store_event("s", "a", "last", 1)
        assert await store.get_events_after("s", "a", "e199") == [last]


async def test_a_database_that_cannot_be_opened_is_a_store_error_on_every_path(
    sql_url: str,
) -> None:
    # Reads and appends take their connections straight from the pool, which raises the
    # driver's own error rather than SQLAlchemy's: it must still reach callers as ours.
    url = make_url(sql_url)
    if url.get_backend_name() == "sqlite":
        url = url.set(database=str(Path(url.database or "").parent / "missing" / "x.db"))
    else:
        url = url.set(database="no_such_database")
    store = SqlEventStore(create_engine(url), owns_engine=True)
    calls = [
        store.store_event("s", "a", "e1", 1),
        store.apply([StoreEvent("s", "a", "e1", 1), ClearStream("s", "b")]),
        store.get_events_after("s", "a", "e1"),
        store.get_stream_events("s", "a"),
        store.stream_count("s"),
    ]
    try:
        for call in calls:
            with pytest.raises(EventStoreError) as raised:
                await call
            assert "database" in str(raised.value)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["appends only", "mixed batch"])
async def test_a_write_cancelled_waiting_for_the_sqlite_lock_leaves_nothing_behind(
    sqlite_url: str, kind: str
) -> None:
    # The cancelled BEGIN IMMEDIATE stays queued on aiosqlite's thread; had its connection
    # gone back to the pool, the BEGIN would open a transaction there and keep the write
    # lock for good. Appends-only batches (the driver path) and others (SQLAlchemy's).
    path = sqlite_url.split(":///", 1)[1]
    async with open_store(
        sqlite_url, pool_size=1, max_overflow=0, sqlite_busy_timeout_ms=4000
    ) as store:
        await store.store_event("s", "z", "z0", 0)
        batch: list[Any] = [StoreEvent("s", "a", "e1", 1)]
        if kind == "mixed batch":
            batch.append(UpdateLastEventId("s", "z", "z0"))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            write = asyncio.create_task(store.apply(batch))
            await asyncio.sleep(0.3)
            cancelled_at = time.monotonic()
            write.cancel()
            asyncio.get_running_loop().call_later(1.5, blocker.rollback)
            with pytest.raises(asyncio.CancelledError):
                await write
            if kind == "appends only":
                assert time.monotonic() - cancelled_at < 1.0, "the cancel waited on the lock"
        finally:
            await asyncio.sleep(2.0)  # the blocker lets go; the queued BEGIN runs
            blocker.close()
        probe = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")  # the write lock is free again
            probe.rollback()
        finally:
            probe.close()
        assert (await store.store_event("s", "a", "e2", 2)).seq == 1
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e2"]


@pytest.mark.parametrize("general_path", [False, True], ids=["appends", "general"])
async def test_a_batch_with_more_data_than_one_statement_carries_is_split_in_one_transaction(
    sql_url: str, monkeypatch: pytest.MonkeyPatch, general_path: bool
) -> None:
    # The real bound is 64 Mi characters (a PostgreSQL message may not pass 1 GiB; see
    # test_a_worker_batch_over_a_gibibyte_commits); lowered, the split is cheap to check.
    monkeypatch.setattr("eventstore.sql.store._STATEMENT_DATA_CHARS", 100)
    parts_made: list[int] = []
    statements = sql_store_module._statements

    def counted(fresh: Any) -> Any:
        parts = statements(fresh)
        parts_made.append(len(parts))
        return parts

    monkeypatch.setattr("eventstore.sql.store._statements", counted)
    async with open_store(sql_url, max_events_per_stream=5) as store:
        batch: list[Any] = [
            StoreEvent("s", f"st{i % 3}", f"e{i}", "x" * (10 + i)) for i in range(30)
        ]
        if general_path:
            batch.append(ClearStream("s", "gone"))  # not appends only: the general path
        results = await store.apply(batch)
        assert all(isinstance(r, StoredEvent) or r == 0 for r in results), results
        for st in range(3):
            events = await store.get_stream_events("s", f"st{st}")
            assert [e.id for e in events] == [f"e{i}" for i in range(st, 30, 3)][-5:]
            assert [e.seq for e in events] == list(range(6, 11))
            assert [r.seq for r in results[st:30:3]] == list(range(1, 11))
    # 30 events of 10-39 characters, 100 characters a statement: split, not one statement.
    assert max(parts_made) >= 8, parts_made


async def test_tables_dropped_under_an_open_store_are_a_schema_error(sql_url: str) -> None:
    async with open_store(sql_url) as store, open_store(sql_url) as other:
        assert isinstance(other, SqlEventStore)
        await store.store_event("s", "a", "e0", 0)
        async with other.engine.begin() as conn:  # as a file replaced by an empty one
            await conn.execute(text("DROP TABLE events"))
            await conn.execute(text("DROP TABLE event_streams"))
        with pytest.raises(SchemaError, match=r"lost the event store's tables.*eventstore migrate"):
            await store.store_event("s", "a", "e1", 1)
        with pytest.raises(SchemaError, match="lost the event store's tables"):
            await store.get_stream_events("s", "a")


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        ("[1e999]", "the number 1e999 is beyond a float's range"),
        ('{"x": NaN}', "NaN is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
        ("1" * 5000, "an integer with more than 4300 digits, which Python will not read"),
        (b"[1]", "is bytes, not JSON text"),
    ],
    ids=["1e999", "NaN", "-Infinity", "5000 digits", "BLOB"],
)
async def test_rows_written_around_the_store_that_it_cannot_serve_are_named(
    sql_url: str, stored: str | bytes, said: str
) -> None:
    """Valid JSON (or near it) that no Python value of the store's would write back:
    every read of the stream names the row, and never returns ``inf``, ``nan`` or
    a raw ``TypeError``."""
    if isinstance(stored, bytes) and not sql_url.startswith("sqlite"):
        pytest.skip("a PostgreSQL text column holds no bytes")
    async with open_store(sql_url) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e1", 1)
        await store.store_event("s", "a", "e2", 2)
        async with store.engine.begin() as conn:
            await conn.execute(
                text("UPDATE events SET data = :data WHERE event_id = 'e2'"), {"data": stored}
            )
        for read in (
            store.get_stream_events("s", "a"),
            store.get_events_after("s", "a", "e1"),
        ):
            with pytest.raises(CorruptDataError) as raised:
                await read
            assert str(raised.value).startswith("event 'e2' (session 's', stream 'a', seq 2)")
            assert said in str(raised.value)


async def test_a_close_cancelled_midway_still_closes_the_connections(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A server's shutdown on Ctrl-C cancels the task closing the store: the pool's
    # graceful closes were cut short and each logged "Exception closing connection".
    store = await open_store(sql_url)
    assert isinstance(store, SqlEventStore)
    await asyncio.gather(*(store.store_event("s", f"st{i}", f"e{i}", i) for i in range(4)))
    pool = store.engine.sync_engine.pool
    assert pool.checkedin() > 0  # type: ignore[attr-defined]
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert pool.checkedin() == 0  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
