"""The contract suite: every backend's test class subclasses :class:`EventStoreContract`.

A subclass provides ``open_store(**options)``; everything here must hold for every
backend, identically.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import math
import types
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

import eventstore.clock
from eventstore import (
    ClearStream,
    DuplicateEventError,
    EventStore,
    EventStoreError,
    InvalidInputError,
    PayloadTooLargeError,
    StoreClosedError,
    StoreEvent,
    UnknownCursorError,
    UpdateLastEventId,
)
from eventstore.codec import MAX_NESTING


class _Colour(enum.Enum):
    RED = "red"


@dataclass
class _Point:
    x: int
    y: int


class _EqualsRaises:
    """Encodable by neither JSON library; comparing it raises."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing this")

    __hash__ = object.__hash__


class EventStoreContract:
    async def open_store(self, **options: Any) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = await self.open_store()
        try:
            yield store
        finally:
            await store.close()

    # -- ordering -------------------------------------------------------------------------

    async def test_seq_starts_at_one_and_grows_by_one(self, store: EventStore) -> None:
        stored = [await store.store_event("s", "st", f"e{i}", {"n": i}) for i in range(5)]
        assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
        events = await store.get_stream_events("s", "st")
        assert [(e.id, e.seq, e.data) for e in events] == [
            (f"e{i}", i + 1, {"n": i}) for i in range(5)
        ]
        assert all(e.session_id == "s" and e.stream_id == "st" for e in events)
        assert all(isinstance(e.timestamp, int) and e.timestamp > 1_600_000_000_000 for e in events)

    async def test_get_events_after_returns_the_rest_of_that_stream(
        self, store: EventStore
    ) -> None:
        for i in range(6):
            await store.store_event("s", "a", f"a{i}", i)
            await store.store_event("s", "b", f"b{i}", -i)
        after = await store.get_events_after("s", "a", "a2")
        assert [e.id for e in after] == ["a3", "a4", "a5"]
        assert [e.seq for e in after] == [4, 5, 6]
        assert await store.get_events_after("s", "a", "a5") == []

    async def test_limit_on_reads(self, store: EventStore) -> None:
        for i in range(10):
            await store.store_event("s", "a", f"e{i}", i)
        assert [e.id for e in await store.get_events_after("s", "a", "e2", limit=3)] == [
            "e3",
            "e4",
            "e5",
        ]
        assert [e.id for e in await store.get_stream_events("s", "a", limit=2)] == ["e0", "e1"]
        # The largest limit accepted: the replay reads one row more (the cursor's).
        largest = 2**63 - 1
        assert len(await store.get_events_after("s", "a", "e2", limit=largest)) == 7
        assert len(await store.get_stream_events("s", "a", limit=largest)) == 10
        for bad in (0, -1, 1.5, "3", True, 2**63):
            with pytest.raises(InvalidInputError):
                await store.get_stream_events("s", "a", limit=bad)  # type: ignore[arg-type]

    async def test_timestamps_stored_now_never_go_back_when_the_clock_does(
        self, store: EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The store's clock is eventstore.clock.now_ms; only its time source is replaced.
        now = [2_000_000_000_000]
        monkeypatch.setattr(
            eventstore.clock, "time", types.SimpleNamespace(time_ns=lambda: now[0] * 1_000_000)
        )
        start = now[0]
        first = await store.store_event("s", "a", "e1", 1)
        assert first.timestamp == start
        now[0] = start - 60_000  # an NTP step back of a minute
        second = await store.store_event("s", "a", "e2", 2)
        assert second.timestamp == start
        # A batch of appends only, with an explicit timestamp (kept as given) and a new
        # stream (its own time: the guarantee is per stream).
        batch = await store.apply(
            [
                StoreEvent("s", "a", "e3", 3),
                StoreEvent("s", "a", "e4", 4, timestamp=5),
                StoreEvent("s", "b", "b1", 1),
                StoreEvent("s", "a", "e5", 5),
            ]
        )
        assert [e.timestamp for e in batch if not isinstance(e, Exception)] == [
            start,
            5,
            start - 60_000,
            start,
        ]
        # Head updates that are not appends do not move a stream's time back either, on
        # their own or in a batch with appends (the SQL stores' general write path).
        now[0] = start + 1_000
        await store.touch_sessions(["s"])
        now[0] = start - 120_000
        await store.apply([UpdateLastEventId("s", "a", "e5")])
        await store.touch_sessions(["s"])
        mixed = await store.apply(
            [UpdateLastEventId("s", "a", "e5"), StoreEvent("s", "a", "e6", 6)]
        )
        assert [getattr(e, "timestamp", None) for e in mixed] == [None, start + 1_000]
        info = await store.get_stream_info("s", "a")
        assert info is not None and info.updated_at == start + 1_000
        now[0] = start + 2_000  # the clock catches up: its own time again
        last = await store.store_event("s", "a", "e7", 7)
        assert last.timestamp == start + 2_000
        events = await store.get_stream_events("s", "a")
        assert [(e.id, e.timestamp) for e in events] == [
            ("e1", start),
            ("e2", start),
            ("e3", start),
            ("e4", 5),
            ("e5", start),
            ("e6", start + 1_000),
            ("e7", start + 2_000),
        ]

    # -- isolation ------------------------------------------------------------------------

    async def test_streams_of_a_session_do_not_leak(self, store: EventStore) -> None:
        await store.store_event("s", "a", "x1", "a-data")
        await store.store_event("s", "b", "x2", "b-data")
        assert [e.data for e in await store.get_stream_events("s", "a")] == ["a-data"]
        assert [e.data for e in await store.get_stream_events("s", "b")] == ["b-data"]
        assert await store.get_stream_events("s", "c") == []

    async def test_equal_stream_ids_in_two_sessions_do_not_leak(self, store: EventStore) -> None:
        await store.store_event("alice", "1", "e1", "alice's")
        await store.store_event("bob", "1", "e1", "bob's")
        await store.store_event("bob", "1", "e2", "bob's second")
        alice = await store.get_stream_events("alice", "1")
        assert [(e.session_id, e.data) for e in alice] == [("alice", "alice's")]
        assert await store.get_events_after("alice", "1", "e1") == []
        assert [e.data for e in await store.get_events_after("bob", "1", "e1")] == ["bob's second"]

    async def test_cursor_of_another_stream_is_unknown(self, store: EventStore) -> None:
        await store.store_event("s", "a", "a1", 1)
        await store.store_event("s", "b", "b1", 2)
        await store.store_event("s", "b", "b2", 3)
        with pytest.raises(UnknownCursorError) as info:
            await store.get_events_after("s", "a", "b1")
        assert (info.value.session_id, info.value.stream_id, info.value.event_id) == (
            "s",
            "a",
            "b1",
        )

    async def test_cursor_of_another_session_is_unknown(self, store: EventStore) -> None:
        await store.store_event("alice", "1", "secret-cursor", "alice 1")
        await store.store_event("alice", "1", "after", "alice 2")
        await store.store_event("bob", "1", "bob-1", "bob 1")
        with pytest.raises(UnknownCursorError):
            await store.get_events_after("bob", "1", "secret-cursor")

    async def test_never_stored_cursor_is_unknown(self, store: EventStore) -> None:
        await store.store_event("s", "a", "e1", 1)
        with pytest.raises(UnknownCursorError):
            await store.get_events_after("s", "a", "nope")
        with pytest.raises(UnknownCursorError):
            await store.get_events_after("nobody", "a", "e1")

    async def test_unknown_cursor_error_is_an_event_store_error(self) -> None:
        assert issubclass(UnknownCursorError, EventStoreError)

    # -- cleanup --------------------------------------------------------------------------

    async def test_clear_stream_leaves_siblings(self, store: EventStore) -> None:
        for stream in ("a", "b", "c"):
            for i in range(3):
                await store.store_event("s", stream, f"{stream}{i}", i)
        await store.store_event("other", "a", "o1", 1)
        assert await store.stream_count("s") == 3
        assert await store.clear_stream("s", "b") == 3
        assert await store.stream_count("s") == 2
        assert await store.get_stream_events("s", "b") == []
        assert len(await store.get_stream_events("s", "a")) == 3
        assert len(await store.get_stream_events("other", "a")) == 1
        with pytest.raises(UnknownCursorError):
            await store.get_events_after("s", "b", "b0")
        assert await store.clear_stream("s", "b") == 0

    async def test_clear_session_leaves_other_sessions(self, store: EventStore) -> None:
        for session in ("s1", "s2"):
            for stream in ("a", "b"):
                await store.store_event(session, stream, f"{stream}-1", 1)
                await store.store_event(session, stream, f"{stream}-2", 2)
        assert await store.clear_session("s1") == 4
        assert await store.stream_count("s1") == 0
        assert await store.stream_count("s2") == 2
        assert len(await store.get_stream_events("s2", "a")) == 2
        assert await store.clear_session("s1") == 0

    async def test_a_cleared_stream_starts_again_at_seq_one(self, store: EventStore) -> None:
        await store.store_event("s", "a", "e1", 1)
        await store.store_event("s", "a", "e2", 2)
        await store.clear_stream("s", "a")
        again = await store.store_event("s", "a", "e1", "new content is fine now")
        assert again.seq == 1

    async def test_stream_count(self, store: EventStore) -> None:
        assert await store.stream_count("s") == 0
        await store.store_event("s", "a", "1", None)
        await store.store_event("s", "b", "2", None)
        await store.store_event("s", "b", "3", None)
        assert await store.stream_count("s") == 2

    # -- retention ------------------------------------------------------------------------

    async def test_cap_is_exact_oldest_first_and_seq_keeps_growing(self) -> None:
        store = await self.open_store(max_events_per_stream=3)
        try:
            for i in range(1, 8):
                await store.store_event("s", "a", f"e{i}", i)
                events = await store.get_stream_events("s", "a")
                assert len(events) == min(i, 3)
                assert [e.seq for e in events] == list(range(max(1, i - 2), i + 1))
            await store.store_event("s", "b", "b1", 1)
            assert len(await store.get_stream_events("s", "b")) == 1
            info = await store.get_stream_info("s", "a")
            assert info is not None and (info.first_seq, info.last_seq) == (5, 7)
            assert await store.get_max_events_per_stream() == 3
        finally:
            await store.close()

    async def test_trimmed_cursor_is_unknown_never_a_partial_replay(self) -> None:
        store = await self.open_store(max_events_per_stream=2)
        try:
            for i in range(1, 6):
                await store.store_event("s", "a", f"e{i}", i)
            with pytest.raises(UnknownCursorError):
                await store.get_events_after("s", "a", "e2")
            assert [e.id for e in await store.get_events_after("s", "a", "e4")] == ["e5"]
        finally:
            await store.close()

    async def test_an_id_trimmed_earlier_in_the_same_batch_is_free_again(self) -> None:
        # As if the batch's requests were separate calls: "x" trims "old" from stream
        # "a" (cap 1), so "old" may then be stored anew in another stream, and a retry
        # of its content in "a" is a new event too, not the trimmed original.
        store = await self.open_store(max_events_per_stream=1)
        try:
            await store.apply([StoreEvent("s", "a", "old", 0), StoreEvent("s", "a", "old2", 0)])
            results = await store.apply(
                [
                    StoreEvent("s", "a", "x", 1),
                    StoreEvent("s", "b", "old2", 2),
                    StoreEvent("s", "a", "y", 3),
                ]
            )
            assert [(r.stream_id, r.id, r.seq) for r in results] == [  # type: ignore[union-attr]
                ("a", "x", 3),
                ("b", "old2", 1),
                ("a", "y", 4),
            ]
            again = await store.apply([StoreEvent("s", "a", "z", 4), StoreEvent("s", "a", "y", 3)])
            assert [(r.id, r.seq) for r in again] == [("z", 5), ("y", 6)]  # type: ignore[union-attr]
            assert [e.id for e in await store.get_stream_events("s", "a")] == ["y"]
            assert [e.id for e in await store.get_stream_events("s", "b")] == ["old2"]
        finally:
            await store.close()

    async def test_lowering_the_cap_trims_at_once(self, store: EventStore) -> None:
        for i in range(10):
            await store.store_event("s", "a", f"a{i}", i)
            await store.store_event("s", "b", f"b{i}", i)
        await store.set_max_events_per_stream(4)
        assert [e.seq for e in await store.get_stream_events("s", "a")] == [7, 8, 9, 10]
        assert [e.seq for e in await store.get_stream_events("s", "b")] == [7, 8, 9, 10]
        await store.set_max_events_per_stream(None)
        for i in range(10, 20):
            await store.store_event("s", "a", f"a{i}", i)
        assert len(await store.get_stream_events("s", "a")) == 14

    async def test_per_stream_cap_overrides_the_store_cap(self, store: EventStore) -> None:
        await store.set_max_events_per_stream(5)
        for i in range(3):
            await store.store_event("s", "small", f"s{i}", i)
            await store.store_event("s", "big", f"b{i}", i)
        await store.set_max_events_per_stream(2, session_id="s", stream_id="small")
        assert [e.seq for e in await store.get_stream_events("s", "small")] == [2, 3]
        for i in range(3, 8):
            await store.store_event("s", "small", f"s{i}", i)
            await store.store_event("s", "big", f"b{i}", i)
        assert [e.seq for e in await store.get_stream_events("s", "small")] == [7, 8]
        assert [e.seq for e in await store.get_stream_events("s", "big")] == [4, 5, 6, 7, 8]
        info = await store.get_stream_info("s", "small")
        assert info is not None and info.max_events == 2
        with pytest.raises(InvalidInputError):
            await store.set_max_events_per_stream(2, session_id="s", stream_id="missing")

    async def test_a_stream_cap_needs_both_ids(self, store: EventStore) -> None:
        await store.store_event("s", "a", "e1", 1)
        for ids in ({"session_id": "s"}, {"stream_id": "a"}):
            with pytest.raises(InvalidInputError, match="needs both session_id and stream_id"):
                await store.set_max_events_per_stream(1, **ids)
        # Nothing changed: neither the store-wide cap nor the stream's.
        assert await store.get_max_events_per_stream() is None
        info = await store.get_stream_info("s", "a")
        assert info is not None and info.max_events is None

    async def test_invalid_caps_are_rejected(self, store: EventStore) -> None:
        for bad in (0, -3, 2.5, "10", True):
            with pytest.raises(InvalidInputError):
                await store.set_max_events_per_stream(bad)  # type: ignore[arg-type]

    # -- data -----------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "data",
        [
            "nul \u0000 inside",
            {"k": "\u0000", "nested": ["\u0000\u0000", {"x": "a\u0000b"}]},
            2**63,
            -(2**80) - 7,
            3.141592653589793,
            1e-300,
            "non-ASCII: żółć 漢字 🎉",
            {"z": 1, "a": 2, "m": [None, True, False]},
            "lone surrogate \ud800 survives",
            [],
            {},
            "",
            None,
            [[[[[[["deep"]]]]]]],
        ],
        ids=lambda d: repr(d)[:30],
    )
    async def test_data_round_trips_exactly(self, store: EventStore, data: Any) -> None:
        await store.store_event("s", "a", "e", data)
        (event,) = await store.get_stream_events("s", "a")
        assert event.data == data
        assert type(event.data) is type(data)
        if isinstance(data, dict):
            assert list(event.data) == list(data)

    @pytest.mark.parametrize(
        "data",
        [
            {1, 2},
            object(),
            math.nan,
            math.inf,
            {"x": -math.inf},
            b"bytes",
            {("tuple",): 1},
            (1, 2),
            {1: "int key"},
            [_Colour.RED],
            _Point(1, 2),
            datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc),
            uuid.UUID(int=7),
            orjson.Fragment(b'{"not": json'),
            [_EqualsRaises()],
        ],
        ids=[
            "set",
            "object",
            "nan",
            "inf",
            "nested-inf",
            "bytes",
            "tuple-key",
            "tuple",
            "int-key",
            "enum",
            "dataclass",
            "datetime",
            "uuid",
            "orjson-fragment",
            "eq-raises",
        ],
    )
    async def test_non_json_data_is_rejected_before_any_write(
        self, store: EventStore, data: Any
    ) -> None:
        with pytest.raises(InvalidInputError):
            await store.store_event("s", "a", "bad", data)
        assert await store.stream_count("s") == 0
        assert (await store.store_event("s", "a", "bad", "fine")).seq == 1

    async def test_deep_nesting_is_a_clear_error(self, store: EventStore) -> None:
        for depth in (MAX_NESTING + 1, 10_000):
            deep: Any = "leaf"
            for _ in range(depth):
                deep = [deep]
            with pytest.raises(InvalidInputError, match=f"nested more than {MAX_NESTING}"):
                await store.store_event("s", "a", "deep", deep)
        assert await store.stream_count("s") == 0

    async def test_data_at_the_nesting_limit_replays_from_a_deep_stack(
        self, store: EventStore
    ) -> None:
        # A 20-digit integer sends the decode to the json module, which recurses.
        deep: Any = 2**64
        for _ in range(MAX_NESTING):
            deep = [deep]
        await store.store_event("s", "a", "deep", deep)

        async def read_from_depth(frames: int) -> list[Any]:
            if frames:
                return await read_from_depth(frames - 1)
            return [e.data for e in await store.get_stream_events("s", "a")]

        assert await read_from_depth(500) == [deep]

    async def test_oversize_payload_is_rejected(self) -> None:
        store = await self.open_store(max_event_bytes=1000)
        try:
            await store.store_event("s", "a", "ok", "x" * 990)
            with pytest.raises(PayloadTooLargeError, match="max_event_bytes"):
                await store.store_event("s", "a", "big", "x" * 1000)
            assert len(await store.get_stream_events("s", "a")) == 1
        finally:
            await store.close()

    @pytest.mark.parametrize(
        "ids",
        [
            ("", "a", "e"),
            ("s", "", "e"),
            ("s", "a", ""),
            ("  ", "a", "e"),
            ("s", "\t\n", "e"),
            ("s", "a", "x" * 10_000),
            ("s\u0000", "a", "e"),
            ("s", "a", "e\ud800"),
            (None, "a", "e"),
            ("s", 1, "e"),
            ("s", "a", b"e"),
        ],
        ids=lambda i: repr(i)[:30],
    )
    async def test_bad_ids_are_rejected(self, store: EventStore, ids: tuple[Any, ...]) -> None:
        with pytest.raises(InvalidInputError):
            await store.store_event(*ids, {"d": 1})
        with pytest.raises(InvalidInputError):
            await store.get_events_after(*ids)
        assert await store.stream_count("s") == 0

    async def test_ids_with_sql_and_format_characters_are_just_ids(self, store: EventStore) -> None:
        nasty = "x'; DROP TABLE events; -- %s %(a)s \\ \" `"
        await store.store_event(nasty, nasty, nasty, nasty)
        await store.store_event(nasty, nasty, nasty + "2", 2)
        assert [e.data for e in await store.get_events_after(nasty, nasty, nasty)] == [2]
        assert await store.stream_count(nasty) == 1

    # -- idempotency ----------------------------------------------------------------------

    async def test_same_event_twice_is_one_event(self, store: EventStore) -> None:
        first = await store.store_event("s", "a", "e1", {"a": 1, "b": [1, 2]})
        again = await store.store_event("s", "a", "e1", {"b": [1, 2], "a": 1})
        assert again.seq == first.seq == 1
        assert len(await store.get_stream_events("s", "a")) == 1
        assert (await store.store_event("s", "a", "e2", 2)).seq == 2

    async def test_same_id_other_content_is_an_error_and_keeps_the_first(
        self, store: EventStore
    ) -> None:
        await store.store_event("s", "a", "e1", "first")
        with pytest.raises(DuplicateEventError):
            await store.store_event("s", "a", "e1", "second")
        with pytest.raises(DuplicateEventError):
            await store.store_event("s", "b", "e1", "first")
        assert [e.data for e in await store.get_stream_events("s", "a")] == ["first"]
        assert await store.get_stream_events("s", "b") == []
        # The same id in another session is another event.
        assert (await store.store_event("t", "a", "e1", "other session")).seq == 1

    # -- batches --------------------------------------------------------------------------

    async def test_apply_isolates_failures_and_keeps_order(self, store: EventStore) -> None:
        await store.store_event("s", "a", "taken", "original")
        results = await store.apply(
            [
                StoreEvent("s", "a", "1", 1),
                StoreEvent("s", "a", "taken", "different"),
                StoreEvent("s", "a", "2", {1, 2}),
                StoreEvent("s", "a", "", 3),
                StoreEvent("s", "a", "3", 3),
                StoreEvent("s", "a", "3", 3),
                StoreEvent("s", "a", "3", "conflict in batch"),
                StoreEvent("s", "b", "4", 4),
                UpdateLastEventId("s", "missing", "x"),
            ]
        )
        assert [type(r).__name__ for r in results] == [
            "StoredEvent",
            "DuplicateEventError",
            "InvalidInputError",
            "InvalidInputError",
            "StoredEvent",
            "StoredEvent",
            "DuplicateEventError",
            "StoredEvent",
            "InvalidInputError",
        ]
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["taken", "1", "3"]
        assert results[4] == results[5]

    async def test_apply_orders_writes_around_a_clear(self, store: EventStore) -> None:
        results = await store.apply(
            [
                StoreEvent("s", "a", "1", 1),
                StoreEvent("s", "a", "2", 2),
                ClearStream("s", "a"),
                StoreEvent("s", "a", "1", "again"),
            ]
        )
        assert results[2] == 2
        assert [(e.id, e.seq, e.data) for e in await store.get_stream_events("s", "a")] == [
            ("1", 1, "again")
        ]

    async def test_last_event_id_is_recorded(self, store: EventStore) -> None:
        await store.store_event("s", "a", "e1", 1)
        await store.store_event("s", "a", "e2", 2)
        (result,) = await store.apply([UpdateLastEventId("s", "a", "e1")])
        assert result is None
        info = await store.get_stream_info("s", "a")
        assert info is not None and info.last_event_id == "e1"
        assert await store.get_stream_info("s", "zzz") is None

    # -- concurrency ----------------------------------------------------------------------

    async def test_concurrent_writers_one_stream_and_many(self, store: EventStore) -> None:
        per_task = 10

        async def write(stream: str, task: int) -> None:
            for i in range(per_task):
                await store.store_event("s", stream, f"{stream}-{task}-{i}", [task, i])

        await asyncio.gather(
            *(write("shared", t) for t in range(50)),
            *(write(f"own-{t}", t) for t in range(50)),
        )
        shared = await store.get_stream_events("s", "shared")
        assert [e.seq for e in shared] == list(range(1, 50 * per_task + 1))
        assert len({e.id for e in shared}) == 50 * per_task
        for task in range(50):
            mine = [e for e in shared if e.data[0] == task]
            assert [e.data[1] for e in mine] == list(range(per_task))
            own = await store.get_stream_events("s", f"own-{task}")
            assert [e.seq for e in own] == list(range(1, per_task + 1))
        assert await store.stream_count("s") == 51

    # -- housekeeping ---------------------------------------------------------------------

    async def test_prune_idle_sessions(self, store: EventStore) -> None:
        await store.store_event("old", "a", "1", 1)
        await asyncio.sleep(0.3)
        await store.store_event("new", "a", "1", 1)
        assert await store.prune_idle_sessions(150) == 1
        assert await store.stream_count("old") == 0
        assert await store.stream_count("new") == 1
        assert await store.get_stream_events("old", "a") == []

    async def test_touched_sessions_survive_pruning(self, store: EventStore) -> None:
        await store.store_event("live", "a", "1", 1)
        await store.store_event("live", "b", "2", 2)
        await store.store_event("gone", "a", "1", 1)
        await asyncio.sleep(0.3)
        assert await store.touch_sessions(["live", "never-seen"]) == 2
        assert await store.prune_idle_sessions(150) == 1
        assert await store.stream_count("live") == 2
        assert await store.stream_count("gone") == 0
        assert [e.id for e in await store.get_stream_events("live", "b")] == ["2"]
        assert await store.touch_sessions([]) == 0
        with pytest.raises(InvalidInputError):
            await store.touch_sessions("live")
        with pytest.raises(InvalidInputError):
            await store.touch_sessions(["live", ""])

    async def test_closed_store_refuses_work(self) -> None:
        store = await self.open_store()
        await store.close()
        await store.close()
        with pytest.raises(StoreClosedError):
            await store.store_event("s", "a", "e", 1)
        with pytest.raises(StoreClosedError):
            await store.get_stream_events("s", "a")
