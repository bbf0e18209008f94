"""The bad-input catalogue, on every backend.

Every input below gets one of two outcomes, and nothing else:

* a clear :class:`~eventstore.errors.InvalidInputError` (or subclass) raised *before
  anything is written*: the store's footprint is unchanged, no seq was consumed, and the
  same bad request inside an :meth:`~eventstore.EventStore.apply` batch fails alone while
  its neighbours commit;
* or an exact round trip: what was stored comes back equal, with the same types and key
  order, through both reads.

No input may crash a backend with another exception type.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from eventstore import (
    ClearSession,
    ClearStream,
    EventStore,
    InMemoryEventStore,
    InvalidInputError,
    PayloadTooLargeError,
    SqlEventStore,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)
from eventstore.codec import MAX_ID_LENGTH
from eventstore.sql.schema import event_streams, events

MIB = 1024 * 1024


def _nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _nested_dict(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


# -- ids ------------------------------------------------------------------------------------

BAD_IDS: dict[str, Any] = {
    "empty": "",
    "space": " ",
    "whitespace": "\t\n \r",
    "10kB": "x" * 10_000,
    "one-over-limit": "x" * (MAX_ID_LENGTH + 1),
    "nul": "a\x00b",
    "lone-surrogate": "a\ud800",
    "None": None,
    "int": 1,
    "float": 1.5,
    "bool": True,
    "bytes": b"s",
    "list": ["s"],
    "dict": {"s": 1},
}

# Ids that look like SQL, format strings, LIKE patterns or escapes are just ids.
ODD_IDS: dict[str, str] = {
    "quote": "'",
    "double-quote": '"',
    "semicolon": ";",
    "percent": "%",
    "format": "%s %(x)s {0} {x}",
    "backslash": "\\",
    "backslash-quote": "\\'",
    "injection": "x'); DELETE FROM events; --",
    "like-wildcards": "_%",
    "placeholders": "? $1 :name",
    "non-ascii": "żółć 漢字 🎉",
    "newline": "a\nb",
    "leading-space": " a",
    "limit-length": "y" * MAX_ID_LENGTH,
}

# -- data -----------------------------------------------------------------------------------

EXACT_DATA: dict[str, Any] = {
    "nul-string": "\u0000",
    "nul-inside": "a\x00b\x00",
    "nul-key": {"\x00": "\x00"},
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogate": "x\udfffy",
    "surrogate-key": {"\ud83d": 1},
    "pair-and-lone": "🎉\ud800🎉",
    "int-2**64": 2**64,
    "int--2**100": -(2**100),
    "float-max": 1.7976931348623157e308,
    "float-tiny": 5e-324,
    "negative-zero": -0.0,
    "key-order": {"z": 1, "a": 2, "m": {"y": 1, "b": 2}},
    "sql-text": "'); DROP TABLE events; --",
    "escapes": '\\u0000 \\n " \\',
    "nested-500": _nested_list(500),
    "empty-string": "",
    "null": None,
    "10MB": "x" * (10 * MIB),
}

NOT_JSON: dict[str, Any] = {
    "nan": math.nan,
    "infinity": math.inf,
    "-infinity": -math.inf,
    "nested-nan": {"a": [1, {"b": math.nan}]},
    "set": {1, 2},
    "object": object(),
    "bytes": b"data",
    "tuple": (1, 2),
    "nested-tuple": {"a": [1, (2, 3)]},
    "int-key": {1: "a"},
    "none-key": {None: 1},
    "bool-key": {True: 1},
    "tuple-key": {(1,): 1},
    "decimal": decimal.Decimal("1.5"),
    "datetime": datetime.datetime(2024, 1, 1),
    "function": len,
    "int-5000-digits": 10**5000,
    "list-10k-deep": _nested_list(10_000),
    "dict-10k-deep": _nested_dict(10_000),
}


# -- the catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """A call that must raise ``error`` before writing anything."""

    call: Callable[[EventStore], Awaitable[Any]]
    error: type[InvalidInputError] = InvalidInputError
    # The same mistake as a request of a batch, when it can be one.
    request: Any = None


def _rejections() -> dict[str, Rejection]:
    cases: dict[str, Rejection] = {}
    for name, bad in BAD_IDS.items():
        # Every id argument of every operation, and of every write request.
        cases[f"store_event.session_id={name}"] = Rejection(
            lambda s, b=bad: s.store_event(b, "a", "e", 1), request=StoreEvent(bad, "a", "e", 1)
        )
        cases[f"store_event.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.store_event("s", b, "e", 1), request=StoreEvent("s", bad, "e", 1)
        )
        cases[f"store_event.event_id={name}"] = Rejection(
            lambda s, b=bad: s.store_event("s", "a", b, 1), request=StoreEvent("s", "a", bad, 1)
        )
        cases[f"get_events_after.session_id={name}"] = Rejection(
            lambda s, b=bad: s.get_events_after(b, "a", "e1")
        )
        cases[f"get_events_after.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.get_events_after("s", b, "e1")
        )
        cases[f"get_events_after.after_event_id={name}"] = Rejection(
            lambda s, b=bad: s.get_events_after("s", "a", b)
        )
        cases[f"get_stream_events.session_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_events(b, "a")
        )
        cases[f"get_stream_events.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_events("s", b)
        )
        cases[f"clear_stream.session_id={name}"] = Rejection(
            lambda s, b=bad: s.clear_stream(b, "a"), request=ClearStream(bad, "a")
        )
        cases[f"clear_stream.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.clear_stream("s", b), request=ClearStream("s", bad)
        )
        cases[f"clear_session.session_id={name}"] = Rejection(
            lambda s, b=bad: s.clear_session(b), request=ClearSession(bad)
        )
        cases[f"stream_count.session_id={name}"] = Rejection(lambda s, b=bad: s.stream_count(b))
        cases[f"get_stream_info.session_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_info(b, "a")
        )
        cases[f"get_stream_info.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_info("s", b)
        )
        cases[f"set_max_events_per_stream.session_id={name}"] = Rejection(
            lambda s, b=bad: s.set_max_events_per_stream(1, session_id=b, stream_id="a")
        )
        cases[f"set_max_events_per_stream.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.set_max_events_per_stream(1, session_id="s", stream_id=b)
        )
        cases[f"UpdateLastEventId.event_id={name}"] = Rejection(
            lambda s, b=bad: _apply_one(s, UpdateLastEventId("s", "a", b)),
            request=UpdateLastEventId("s", "a", bad),
        )
    for name, data in NOT_JSON.items():
        cases[f"store_event.data={name}"] = Rejection(
            lambda s, d=data: s.store_event("s", "a", "e", d),
            request=StoreEvent("s", "a", "e", data),
        )
    for name, limit in {"zero": 0, "negative": -1, "float": 1.5, "str": "3", "bool": True}.items():
        cases[f"get_events_after.limit={name}"] = Rejection(
            lambda s, x=limit: s.get_events_after("s", "a", "e1", limit=x)
        )
        cases[f"get_stream_events.limit={name}"] = Rejection(
            lambda s, x=limit: s.get_stream_events("s", "a", limit=x)
        )
        cases[f"set_max_events_per_stream.limit={name}"] = Rejection(
            lambda s, x=limit: s.set_max_events_per_stream(x)
        )
        cases[f"set_max_events_per_stream.stream-limit={name}"] = Rejection(
            lambda s, x=limit: s.set_max_events_per_stream(x, session_id="s", stream_id="a")
        )
    for name, idle in {"negative": -1, "float": 0.5, "str": "10", "None": None}.items():
        cases[f"prune_idle_sessions.idle_ms={name}"] = Rejection(
            lambda s, x=idle: s.prune_idle_sessions(x)
        )
    for name, timestamp in {"negative": -1, "float": 1.5, "str": "0", "huge": 2**63}.items():
        request = StoreEvent("s", "a", "e", 1, timestamp=timestamp)
        cases[f"StoreEvent.timestamp={name}"] = Rejection(
            lambda s, r=request: _apply_one(s, r), request=request
        )
    for name, requests in {"None": None, "str": "abc", "dict": {"a": 1}, "int": 5}.items():
        cases[f"apply.requests={name}"] = Rejection(lambda s, r=requests: s.apply(r))
    for name, item in {"dict": {"session_id": "s"}, "None": None, "str": "StoreEvent"}.items():
        cases[f"apply.item={name}"] = Rejection(lambda s, i=item: _apply_one(s, i), request=item)
    cases["set_max_events_per_stream.missing-stream"] = Rejection(
        lambda s: s.set_max_events_per_stream(1, session_id="s", stream_id="missing")
    )
    cases["UpdateLastEventId.missing-stream"] = Rejection(
        lambda s: _apply_one(s, UpdateLastEventId("s", "missing", "e1")),
        request=UpdateLastEventId("s", "missing", "e1"),
    )
    return cases


async def _apply_one(store: EventStore, request: Any) -> Any:
    """Apply one request and raise its error, as the convenience methods do."""
    (result,) = await store.apply([request])
    if isinstance(result, Exception):
        raise result
    return result


REJECTIONS = _rejections()
BATCHABLE = {name: case for name, case in REJECTIONS.items() if case.request is not None}


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
        second_id = (odd + "2")[-MAX_ID_LENGTH:]
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
        {"max_events_per_stream": 0},
        {"max_events_per_stream": "10"},
    ],
    ids=lambda o: repr(o),
)
async def test_bad_open_options_are_clear_errors(store_url: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        await open_store(store_url, **options)


@pytest.mark.parametrize("url", [123, b"memory://", ["memory://"]], ids=repr)
async def test_a_url_that_is_not_a_string_is_a_clear_error(url: Any) -> None:
    with pytest.raises(InvalidInputError, match="url must be a str"):
        await open_store(url)
