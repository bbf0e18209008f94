"""Many concurrent producers through one worker, on a real SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from eventstore import PersistenceWorker, StoreEvent, open_store

PRODUCERS = 64
EVENTS_EACH = 500
STREAMS = 200


async def test_64_producers_500_events_200_streams(sql_url: str) -> None:
    submitted: dict[str, list[str]] = {f"st{i}": [] for i in range(STREAMS)}

    async def producer(worker: PersistenceWorker, p: int) -> None:
        for i in range(EVENTS_EACH):
            stream = f"st{(p * 7 + i) % STREAMS}"
            event_id = f"p{p}-{i}"
            future = await worker.submit(StoreEvent("s", stream, event_id, {"p": p, "i": i}))
            # Recorded in the step submit returned in: exactly the queue's order.
            submitted[stream].append(event_id)
            stored = await future
            assert stored.id == event_id

    async with open_store(sql_url, max_events_per_stream=10_000) as store:
        async with PersistenceWorker(store) as worker:
            await asyncio.gather(*(producer(worker, p) for p in range(PRODUCERS)))
        stats = worker.stats
        total = 0
        for stream, expected in submitted.items():
            events = await store.get_stream_events("s", stream)
            assert [e.id for e in events] == expected, stream
            assert [e.seq for e in events] == list(range(1, len(expected) + 1)), stream
            assert all(
                e.data == {"p": int(e.id[1:].split("-")[0]), "i": int(e.id.split("-")[1])}
                for e in events
            )
            total += len(events)
    assert total == PRODUCERS * EVENTS_EACH
    assert stats.committed == total and stats.failed == 0
    # Group commit happened: far fewer transactions than events.
    assert stats.largest_batch > 1
    assert stats.batches < total / 8


@pytest.mark.slow
async def test_a_worker_batch_over_a_gibibyte_commits(sql_url: str) -> None:
    """70 events of 15 MiB (each within the default max_event_bytes) queued at once: one
    batch of 1.05 GiB, more than one PostgreSQL message may carry. It commits, as
    several statements in one transaction, instead of failing as an outage."""
    payload = "z" * (15 * 1024 * 1024)
    async with open_store(sql_url) as store:
        async with PersistenceWorker(store, retry_timeout=5) as worker:
            futures = [
                await worker.submit(StoreEvent("s", "big", f"e{i}", payload)) for i in range(70)
            ]
            stored = await asyncio.gather(*futures)
        assert [e.seq for e in stored] == list(range(1, 71))
        assert worker.stats.batches == 1 and worker.stats.retries == 0
        events = await store.get_stream_events("s", "big", limit=3)
        assert [e.seq for e in events] == [1, 2, 3] and events[0].data == payload
