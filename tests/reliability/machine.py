"""The stateful property test: every backend, step by step, against the reference model.

:class:`StoreMachine` draws random interleavings of the contract operations (appends,
batches, the two reads, both clears, ``stream_count``, store-wide and per-stream caps,
reopening an SQL store) over two sessions and three streams whose ids collide on purpose
(the MCP SDK's ``"1"`` and ``"_GET_stream"`` in both sessions, a handful of event ids, data
values that are nearly equal). After every step the whole visible state of the store must
equal the model's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import delete

from eventstore import (
    ClearSession,
    ClearStream,
    EventStore,
    EventStoreError,
    SqlEventStore,
    StoredEvent,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)
from eventstore.sql.schema import event_streams, events, settings
from tests.reliability.model import ModelEvent, Outcome, ReferenceStore, canonical

T = TypeVar("T")

SESSION_IDS = ("s1", "s2")
STREAM_IDS = ("1", "_GET_stream", "2")
EVENT_IDS = tuple(f"e{i}" for i in range(1, 7))

sessions = st.sampled_from(SESSION_IDS)
streams = st.sampled_from(STREAM_IDS)
event_ids = st.sampled_from(EVENT_IDS)
limits = st.none() | st.integers(min_value=1, max_value=4)
caps = st.none() | st.integers(min_value=1, max_value=4)

# Values that collide under Python's == but are different JSON (1, 1.0, true; 0.0, -0.0),
# equal values with another key order, and the strings the contract singles out.
_tricky = st.sampled_from(
    [0, 1, True, False, 1.0, 0.0, -0.0, None, "x", "\x00", "\ud800", 2**70, [1], [], {}]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = _tricky | st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
# Equal dicts with different key order: a retry with either is the same event.
json_values |= st.sampled_from([{"a": 1, "b": 2}, {"b": 2, "a": 1}])

write_requests = st.one_of(
    st.builds(StoreEvent, sessions, streams, event_ids, json_values),
    st.builds(UpdateLastEventId, sessions, streams, event_ids),
    st.builds(ClearStream, sessions, streams),
    st.builds(ClearSession, sessions),
)


class StoreRunner:
    """One event loop and one open store, driven from synchronous hypothesis rules."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.durable = not url.startswith("memory:")
        # The model checks behaviour, not crash durability: skipping an fsync per commit
        # lets the same time budget explore several times more SQLite interleavings.
        self.options = {"sqlite_synchronous": "NORMAL"} if url.startswith("sqlite") else {}
        self.loop = asyncio.new_event_loop()
        self.store: EventStore = self.run(self._open())

    async def _open(self) -> EventStore:
        return await open_store(self.url, **self.options)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def outcome(self, coroutine: Coroutine[Any, Any, T]) -> T | EventStoreError:
        """The result, or the :class:`EventStoreError` raised; anything else propagates."""
        try:
            return self.run(coroutine)
        except EventStoreError as exc:
            return exc

    def reset(self) -> None:
        """An empty store for the next example (without a new PostgreSQL database)."""
        if not self.durable:
            self.run(self.store.close())
            self.store = self.run(self._open())
            return
        assert isinstance(self.store, SqlEventStore)
        engine = self.store.engine

        async def wipe() -> None:
            async with engine.begin() as conn:
                for table in (events, event_streams, settings):
                    await conn.execute(delete(table))

        self.run(wipe())

    def reopen(self) -> None:
        self.run(self.store.close())
        self.store = self.run(self._open())

    def close(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.loop.close()


def assert_same(actual: Any, expected: Outcome) -> None:
    """``actual`` (a store's result) equals ``expected`` (the model's), strictly."""
    if isinstance(expected, type) and issubclass(expected, BaseException):
        assert type(actual) is expected, f"expected {expected.__name__}, got {actual!r}"
    elif isinstance(expected, ModelEvent):
        assert isinstance(actual, StoredEvent), f"expected {expected}, got {actual!r}"
        assert (actual.session_id, actual.stream_id, actual.id, actual.seq) == (
            expected.session_id,
            expected.stream_id,
            expected.event_id,
            expected.seq,
        )
        assert canonical(actual.data) == canonical(expected.data)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{actual!r} != {expected!r}"
        for one_actual, one_expected in zip(actual, expected, strict=True):
            assert_same(one_actual, one_expected)
    else:
        assert type(actual) is type(expected) and actual == expected, (
            f"expected {expected!r}, got {actual!r}"
        )


class StoreMachine(RuleBasedStateMachine):
    """Bound to one backend by :func:`machine_for`."""

    runner: ClassVar[StoreRunner]

    def __init__(self) -> None:
        super().__init__()
        self.runner.reset()
        self.model = ReferenceStore()

    @property
    def store(self) -> EventStore:
        return self.runner.store

    @rule(session=sessions, stream=streams, event_id=event_ids, data=json_values)
    def store_event(self, session: str, stream: str, event_id: str, data: Any) -> None:
        expected = self.model.store_event(session, stream, event_id, data)
        actual = self.runner.outcome(self.store.store_event(session, stream, event_id, data))
        assert_same(actual, expected)

    @rule(requests=st.lists(write_requests, min_size=1, max_size=5))
    def apply(self, requests: list[Any]) -> None:
        expected = self.model.apply(requests)
        actual = self.runner.run(self.store.apply(requests))
        assert_same(actual, expected)

    @rule(session=sessions, stream=streams, cursor=event_ids, limit=limits)
    def get_events_after(self, session: str, stream: str, cursor: str, limit: int | None) -> None:
        expected = self.model.events_after(session, stream, cursor, limit)
        actual = self.runner.outcome(
            self.store.get_events_after(session, stream, cursor, limit=limit)
        )
        assert_same(actual, expected)

    @rule(session=sessions, stream=streams, limit=limits)
    def get_stream_events(self, session: str, stream: str, limit: int | None) -> None:
        expected = self.model.stream_events(session, stream, limit)
        actual = self.runner.run(self.store.get_stream_events(session, stream, limit=limit))
        assert_same(actual, expected)

    @rule(session=sessions, stream=streams)
    def clear_stream(self, session: str, stream: str) -> None:
        expected = self.model.clear_stream(session, stream)
        assert_same(self.runner.run(self.store.clear_stream(session, stream)), expected)

    @rule(session=sessions)
    def clear_session(self, session: str) -> None:
        expected = self.model.clear_session(session)
        assert_same(self.runner.run(self.store.clear_session(session)), expected)

    @rule(cap=caps)
    def set_store_cap(self, cap: int | None) -> None:
        self.model.set_cap(cap)
        self.runner.run(self.store.set_max_events_per_stream(cap))

    @rule(session=sessions, stream=streams, cap=caps)
    def set_stream_cap(self, session: str, stream: str, cap: int | None) -> None:
        expected = self.model.set_cap(cap, session, stream)
        actual = self.runner.outcome(
            self.store.set_max_events_per_stream(cap, session_id=session, stream_id=stream)
        )
        assert_same(actual, expected)

    @precondition(lambda self: self.runner.durable)
    @rule()
    def reopen(self) -> None:
        self.runner.reopen()

    @invariant()
    def whole_state_matches(self) -> None:
        run = self.runner.run
        assert run(self.store.get_max_events_per_stream()) == self.model.cap
        for session in SESSION_IDS:
            assert_same(run(self.store.stream_count(session)), self.model.stream_count(session))
            for stream in STREAM_IDS:
                expected = self.model.stream_events(session, stream)
                assert_same(run(self.store.get_stream_events(session, stream)), expected)
                info = run(self.store.get_stream_info(session, stream))
                model = self.model.stream_info(session, stream)
                if model is None:
                    assert info is None
                else:
                    assert info is not None
                    assert (
                        info.last_seq,
                        info.first_seq,
                        info.max_events,
                        info.last_event_id,
                    ) == (model.last_seq, model.first_seq, model.max_events, model.last_event_id)


def machine_for(runner: StoreRunner) -> type[StoreMachine]:
    """A :class:`StoreMachine` subclass driving ``runner``'s store."""
    return type("StoreMachineOn" + type(runner.store).__name__, (StoreMachine,), {"runner": runner})
