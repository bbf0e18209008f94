from __future__ import annotations

from typing import Any

from eventstore import EventStore, InMemoryEventStore, open_store
from tests.contract import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    async def open_store(self, **options: Any) -> EventStore:
        return await open_store("memory://", **options)


async def test_empty_streams_and_sessions_are_freed() -> None:
    store = InMemoryEventStore(max_events_per_stream=5)
    for session in range(100):
        for stream in range(10):
            for i in range(20):
                await store.store_event(f"s{session}", f"st{stream}", f"{stream}-{i}", i)
    for session in range(100):
        for stream in range(10):
            await store.clear_stream(f"s{session}", f"st{stream}")
    assert store._sessions == {}


async def test_trimmed_events_leave_the_id_index() -> None:
    store = InMemoryEventStore(max_events_per_stream=3)
    for i in range(1000):
        await store.store_event("s", "a", f"e{i}", i)
    session = store._sessions["s"]
    assert len(session.by_event_id) == 3
    assert len(session.streams["a"].entries) < 3 + 64 + 3
