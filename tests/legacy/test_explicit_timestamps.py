"""``StoreEvent.timestamp``: imported events keep their original time on every backend."""

from __future__ import annotations

import pytest

from eventstore import InvalidInputError, StoredEvent, StoreEvent, open_store


async def test_an_explicit_timestamp_is_kept_and_is_not_content(store_url: str) -> None:
    async with open_store(store_url) as store:
        first, second, bad = await store.apply(
            [
                StoreEvent("s", "st", "old", {"n": 1}, timestamp=1_000),
                StoreEvent("s", "st", "now", {"n": 2}),
                StoreEvent("s", "st", "bad", {"n": 3}, timestamp=-1),
            ]
        )
        assert isinstance(first, StoredEvent) and isinstance(second, StoredEvent)
        assert first.timestamp == 1_000
        assert second.timestamp > 1_600_000_000_000
        assert isinstance(bad, InvalidInputError)
        events = await store.get_stream_events("s", "st")
        assert [(e.id, e.seq, e.timestamp) for e in events] == [
            ("old", 1, 1_000),
            ("now", 2, second.timestamp),
        ]
        # A retry with another timestamp is the same event: a no-op, not a duplicate.
        (retry,) = await store.apply([StoreEvent("s", "st", "old", {"n": 1}, timestamp=5)])
        assert retry == events[0]


@pytest.mark.parametrize("bad", [True, 1.5, "1000", 2**63])
async def test_a_timestamp_that_is_not_epoch_ms_is_rejected(store_url: str, bad: object) -> None:
    async with open_store(store_url) as store:
        (result,) = await store.apply([StoreEvent("s", "st", "e", 1, timestamp=bad)])  # type: ignore[arg-type]
        assert isinstance(result, InvalidInputError)
        assert await store.get_stream_events("s", "st") == []
