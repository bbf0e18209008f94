"""The bad-input catalogue (``catalogue.py``), on every backend.

Every input gets one of two outcomes, and nothing else:

* a clear :class:`~eventstore.errors.InvalidInputError` (or subclass) raised *before
  anything is written*: the store's footprint is unchanged, no seq was consumed, and the
  same bad request inside an :meth:`~eventstore.EventStore.apply` batch fails alone while
  its neighbours commit;
* or an exact round trip: what was stored comes back equal, with the same types and key
  order, through every read.

No input may crash a backend with another exception type. Each backend runs the whole
catalogue in one test that names every failing case.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from eventstore import (
    EventStore,
    InMemoryEventStore,
    InvalidInputError,
    PayloadTooLargeError,
    SqlEventStore,
    StoreEvent,
    open_store,
)
from eventstore.codec import MAX_ID_BYTES
from eventstore.sql.schema import event_streams, events
from tests.reliability.catalogue import BATCHABLE, EXACT_DATA, MIB, ODD_IDS, REJECTIONS

# -- helpers ----------------------------------------------------------------------------------


async def footprint(store: EventStore) -> tuple[int, int]:
    """(streams, events) in the whole store, whatever session or stream they are under."""
    if isinstance(store, SqlEventStore):
        async with store.engine.connect() as conn:
            stream_rows = await conn.scalar(select(func.count()).select_from(event_streams))
            event_rows = await conn.scalar(select(func.count()).select_from(events))
        return int(stream_rows or 0), int(event_rows or 0)
    assert isinstance(store, InMemoryEventStore)
    # No public API lists sessions; the test peeks so a write under any key is seen.
    sessions = store._sessions.values()
    return (
        sum(len(session.streams) for session in sessions),
        sum(len(session.by_event_id) for session in sessions),
    )


async def seed(store: EventStore) -> None:
    await store.store_event("s", "a", "e1", {"n": 1})
    await store.store_event("s", "a", "e2", {"n": 2})
    await store.store_event("s", "b", "b1", "other stream")
    await store.store_event("t", "a", "e1", "other session")


async def snapshot(store: EventStore) -> Any:
    """Everything a rejected call could have touched, seqs and caps included."""
    return (
        await footprint(store),
        [
            (
                [(e.id, e.seq, e.data) for e in await store.get_stream_events(session, stream)],
                await store.get_stream_info(session, stream),
            )
            for session, stream in (("s", "a"), ("s", "b"), ("t", "a"))
        ],
        await store.get_max_events_per_stream(),
    )


def same_value(actual: Any, expected: Any) -> bool:
    """Equal, with the same types all the way down, dict key order and the sign of 0.0."""
    pending = [(actual, expected)]
    while pending:
        one, other = pending.pop()
        if type(one) is not type(other):
            return False
        if isinstance(other, dict):
            if list(one) != list(other):
                return False
            pending.extend((one[key], other[key]) for key in other)
        elif isinstance(other, list):
            if len(one) != len(other):
                return False
            pending.extend(zip(one, other, strict=True))
        elif isinstance(other, float):
            if one != other or math.copysign(1, one) != math.copysign(1, other):
                return False
        elif one != other:
            return False
    return True


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    opened = await open_store(store_url)
    try:
        await seed(opened)
        yield opened
    finally:
        await opened.close()


# -- the tests: one per backend, every case inside, every failing case reported by name ------


async def test_every_bad_input_is_rejected_before_any_write(store: EventStore) -> None:
    failures: list[str] = []
    before = await snapshot(store)
    for name, case in REJECTIONS.items():
        try:
            await case.call(store)
        except case.error as exc:
            if not str(exc):
                failures.append(f"{name}: {type(exc).__name__} without a message")
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
        else:
            failures.append(f"{name}: accepted")
        if await snapshot(store) != before:
            failures.append(f"{name}: the store changed")
            before = await snapshot(store)
    assert not failures, "\n".join(failures)
    assert len(REJECTIONS) > 250


async def test_every_bad_request_fails_alone_in_its_batch(store: EventStore) -> None:
    failures: list[str] = []
    for name, case in BATCHABLE.items():
        results = await store.apply(
            [StoreEvent("s", "c", "before", 1), case.request, StoreEvent("s", "c", "after", 2)]
        )
        if not isinstance(results[1], case.error):
            failures.append(f"{name}: {results[1]!r}"[:300])
        neighbours = [(r.id, r.seq) for r in (results[0], results[2])]  # type: ignore[union-attr]
        stored = [e.id for e in await store.get_stream_events("s", "c")]
        if neighbours != [("before", 1), ("after", 2)] or stored != ["before", "after"]:
            failures.append(f"{name}: neighbours {neighbours}, stored {stored}")
        await store.clear_stream("s", "c")
    assert not failures, "\n".join(failures)
    assert await footprint(store) == (3, 4)


async def test_odd_ids_round_trip(store: EventStore) -> None:
    failures: list[str] = []
    for name, odd in ODD_IDS.items():
        second_id = odd[1:] + "2" if len(odd.encode()) >= MAX_ID_BYTES else odd + "2"
        await store.store_event(odd, odd, odd, odd)
        await store.store_event(odd, odd, second_id, [odd])
        replay = [
            (e.session_id, e.stream_id, e.id, e.data)
            for e in await store.get_stream_events(odd, odd)
        ]
        after = [e.id for e in await store.get_events_after(odd, odd, odd)]
        if replay != [(odd, odd, odd, odd), (odd, odd, second_id, [odd])] or after != [second_id]:
            failures.append(f"{name}: replay {replay!r}, after the first {after!r}")
        if await store.stream_count(odd) != 1 or await store.clear_session(odd) != 2:
            failures.append(f"{name}: wrong stream count or clear")
        # The neighbours are untouched (an injected statement would have changed them).
        if await footprint(store) != (3, 4):
            failures.append(f"{name}: the rest of the store changed")
    assert not failures, "\n".join(failures)


async def test_data_round_trips_exactly(store: EventStore) -> None:
    failures: list[str] = []
    for name, data in EXACT_DATA.items():
        await store.store_event("s", "x", "cursor", None)
        returned = await store.store_event("s", "x", "exact", data)
        (batched,) = await store.apply([StoreEvent("s", "y", "exact-in-batch", data)])
        (resumed,) = await store.get_events_after("s", "x", "cursor")
        (_, read) = await store.get_stream_events("s", "x")
        (read_batched,) = await store.get_stream_events("s", "y")
        for how, event in (
            ("returned", returned),
            ("batch result", batched),
            ("resumed", resumed),
            ("replayed", read),
            ("replayed from batch", read_batched),
        ):
            if not same_value(event.data, data):  # type: ignore[union-attr]
                failures.append(f"{name}: {how} value differs")
        await store.clear_stream("s", "x")
        await store.clear_stream("s", "y")
    assert not failures, "\n".join(failures)


async def test_max_event_bytes_is_exact_at_10_mib(store_url: str) -> None:
    """A 10 MiB payload: accepted at ``max_event_bytes=10 MiB``, refused one byte below."""
    payload = "x" * (10 * MIB - 2)  # the JSON text adds two quotes
    async with open_store(store_url, max_event_bytes=10 * MIB) as store:
        assert (await store.store_event("s", "a", "fits", payload)).seq == 1
        assert (await store.get_stream_events("s", "a"))[0].data == payload
    async with open_store(store_url, max_event_bytes=10 * MIB - 1) as store:
        with pytest.raises(PayloadTooLargeError, match="max_event_bytes"):
            await store.store_event("s", "a", "too-big", payload)
        results = await store.apply(
            [StoreEvent("s", "a", "too-big", payload), StoreEvent("s", "a", "small", 1)]
        )
        assert isinstance(results[0], PayloadTooLargeError)
        assert [e.id for e in await store.get_stream_events("s", "a", limit=5)] in (
            ["small"],  # memory:// is a new, empty store
            ["fits", "small"],
        )


@pytest.mark.parametrize(
    "options",
    [
        {"max_event_bytes": 0},
        {"max_event_bytes": "big"},
        {"max_event_bytes": None},
        {"max_event_bytes": 256 * MIB + 1},  # more than every backend can write
        {"max_events_per_stream": 0},
        {"max_events_per_stream": "10"},
    ],
    ids=lambda o: repr(o),
)
async def test_bad_open_options_are_clear_errors(store_url: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(options))):
        await open_store(store_url, **options)


@pytest.mark.parametrize("url", [123, b"memory://", ["memory://"]], ids=repr)
async def test_a_url_that_is_not_a_string_is_a_clear_error(url: Any) -> None:
    with pytest.raises(InvalidInputError, match="url must be a str"):
        await open_store(url)


async def test_an_integer_too_long_for_json_is_named_without_python_advice(
    store: EventStore,
) -> None:
    with pytest.raises(InvalidInputError, match="an integer with more than 4300 digits") as raised:
        await store.store_event("long-int", "a", "e", {"n": 10**5000})
    assert "set_int_max_str_digits" not in str(raised.value)
    assert await store.get_stream_events("long-int", "a") == []


@pytest.mark.parametrize(
    ("data", "pair", "joined"),
    [
        ("\ud800\udfff", "'\\ud800\\udfff'", "'\\U000103ff'"),
        ({"k": "\ud83d\ude00"}, "'\\ud83d\\ude00'", "'\U0001f600'"),
        ({"\ud800\udc00": 1}, "'\\ud800\\udc00'", "'\U00010000'"),
        (["ok", {"k": ["x\udbff\udfffy"]}], "'\\udbff\\udfff'", "'\\U0010ffff'"),
    ],
    ids=["str", "value", "key", "nested"],
)
async def test_a_surrogate_pair_as_two_code_points_is_named_as_such(
    store: EventStore, data: Any, pair: str, joined: str
) -> None:
    # It used to be blamed on a tuple or a non-str key, which the data did not hold.
    with pytest.raises(InvalidInputError) as raised:
        await store.store_event("pair", "a", "e", data)
    assert str(raised.value).startswith(
        f"data would not replay as given: a string in it holds the surrogate code points "
        f"{pair} as two characters, which JSON and UTF-8 join into the one character {joined};"
    )
    assert await store.get_stream_events("pair", "a") == []


@pytest.mark.parametrize("data", [(1, 2), {1: "a"}, {"k": ["\ud800", (1,)]}], ids=repr)
async def test_a_tuple_or_a_key_that_is_not_a_str_is_named_as_such(
    store: EventStore, data: Any
) -> None:
    with pytest.raises(InvalidInputError, match="it holds a tuple or a dict key that is not a"):
        await store.store_event("tuple", "a", "e", data)


@pytest.mark.parametrize("event_id", ["a\ud800", "a\ud83d\ude00"], ids=["lone", "pair"])
async def test_an_id_with_surrogates_says_so(store: EventStore, event_id: str) -> None:
    with pytest.raises(InvalidInputError, match="event_id contains surrogate code points"):
        await store.store_event("fresh", "a", event_id, 1)
    assert await store.stream_count("fresh") == 0
