"""The contract suite on SQLite files and PostgreSQL, plus what only SQL stores promise."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from eventstore import EventStore, InvalidInputError, SqlEventStore, open_store
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
