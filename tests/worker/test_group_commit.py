"""Many concurrent producers through one worker, on a real SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio

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
