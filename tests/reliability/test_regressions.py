"""Shrunk failures of the stateful property test, kept as explicit tests on every backend.

Each test is the minimal step sequence hypothesis reported, replayed through the same
model comparison, plus a plain assertion of the outcome the contract asks for.
"""

from __future__ import annotations

from typing import Any

import pytest

from eventstore import (
    DuplicateEventError,
    InvalidInputError,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)


async def test_an_id_held_in_a_longer_sibling_stream_is_a_duplicate(store_url: str) -> None:
    """Memory store crashed with IndexError: it looked the id up in the wrong stream.

    Shrunk example: e2, e1 on ``_GET_stream`` (seqs 1, 2), e3 on ``"1"`` (seq 1), then
    e1 again on ``"1"`` -- its seq 2 is past the end of the shorter stream.
    """
    async with open_store(store_url) as store:
        await store.store_event("s1", "_GET_stream", "e2", 0)
        await store.apply([UpdateLastEventId("s1", "1", "e1")])
        await store.store_event("s1", "_GET_stream", "e1", 0)
        await store.store_event("s1", "1", "e3", 0)
        (result,) = await store.apply([StoreEvent("s1", "1", "e1", 0)])
        assert isinstance(result, DuplicateEventError)
        assert [e.id for e in await store.get_stream_events("s1", "1")] == ["e3"]
        assert [e.id for e in await store.get_stream_events("s1", "_GET_stream")] == ["e2", "e1"]


@pytest.mark.parametrize(
    ("first", "again"),
    [(False, 0), (True, 1), (1, 1.0), (0.0, -0.0), ({"a": [True]}, {"a": [1]})],
    ids=["false-0", "true-1", "1-1.0", "0.0--0.0", "nested-true-1"],
)
async def test_a_retry_with_other_json_is_a_duplicate_not_the_same_event(
    store_url: str, first: Any, again: Any
) -> None:
    """Python's ``False == 0`` made a retry with other JSON count as the same event.

    Shrunk example: ``e1`` stored as ``false``, then ``e1`` with ``0`` returned the stored
    event, so the caller believed ``0`` was stored.
    """
    async with open_store(store_url) as store:
        await store.store_event("s1", "1", "e1", first)
        with pytest.raises(DuplicateEventError):
            await store.store_event("s1", "1", "e1", again)
        (event,) = await store.get_stream_events("s1", "1")
        assert type(event.data) is type(first) and event.data == first
        # Key order is still not a difference.
        await store.store_event("s1", "1", "e2", {"a": 1, "b": 2})
        assert (await store.store_event("s1", "1", "e2", {"b": 2, "a": 1})).seq == 2


async def test_a_batch_applies_in_order_even_when_the_cap_trims_inside_it(
    store_url: str,
) -> None:
    """The SQL store treated a repeated id in one batch as a retry of a trimmed event.

    With cap 1, ``[e1, e2, e1]`` in order: e2 trims e1, so the second e1 is a new event
    (seq 3) -- exactly what three separate calls do. The SQL store answered the second
    e1 with the trimmed seq 1 and kept e2.
    """
    async with open_store(store_url, max_events_per_stream=1) as store:
        batch = [StoreEvent("s", "a", "e1", 1), StoreEvent("s", "a", "e2", 2)]
        results = await store.apply([*batch, StoreEvent("s", "a", "e1", 1)])
        assert [(r.id, r.seq) for r in results] == [("e1", 1), ("e2", 2), ("e1", 3)]  # type: ignore[union-attr]
        assert [(e.id, e.seq) for e in await store.get_stream_events("s", "a")] == [("e1", 3)]
    async with open_store(store_url) as store:
        # Without a trim in between, the repeat is a retry: one event, one answer.
        results = await store.apply([StoreEvent("t", "a", "x", 1), StoreEvent("t", "a", "x", 1)])
        assert results[0] == results[1]
        assert len(await store.get_stream_events("t", "a")) == 1


async def test_a_stream_cap_with_a_non_str_session_id_is_refused(store_url: str) -> None:
    """The memory store turned ``session_id=1`` into ``"1"`` and capped that session."""
    async with open_store(store_url) as store:
        await store.store_event("1", "a", "e1", 1)
        await store.store_event("1", "a", "e2", 2)
        with pytest.raises(InvalidInputError, match="session_id must be a str"):
            await store.set_max_events_per_stream(1, session_id=1, stream_id="a")  # type: ignore[arg-type]
        assert len(await store.get_stream_events("1", "a")) == 2
