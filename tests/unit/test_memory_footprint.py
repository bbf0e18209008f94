"""The in-memory store's memory stays flat under a per-stream cap."""

from __future__ import annotations

import gc
import itertools
import tracemalloc

from eventstore import InMemoryEventStore

_PAYLOAD = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"p": "x" * 150}}


async def test_traced_memory_is_flat_once_streams_are_at_their_cap() -> None:
    store = InMemoryEventStore(max_events_per_stream=2)
    ids = itertools.count()

    async def one_round() -> int:
        for stream in range(300):
            await store.store_event("s", f"t{stream}", f"e{next(ids)}", _PAYLOAD)
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        for _ in range(2):
            await one_round()
        samples = [await one_round() for _ in range(30)]
    finally:
        tracemalloc.stop()
    # 30 rounds trim 9,000 events; anything they left behind (dead entries awaiting
    # compaction) would add kilobytes per round, far over the few id digits allowed here.
    assert max(samples) - min(samples) < 0.05 * min(samples)
    assert len(await store.get_stream_events("s", "t0")) == 2
