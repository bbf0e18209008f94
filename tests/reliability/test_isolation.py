"""Isolation scenarios from public bug reports against MCP event stores.

The MCP Python SDK gives one event store to every session and never tells it the session;
its stream ids are JSON-RPC request ids (``"1"``) and ``"_GET_stream"``, identical in every
session. Stores keyed by stream id alone replayed one user's events to another. Each
scenario below must give nothing foreign -- first on the store API of every backend,
then end to end through the real SDK server on loopback.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator

import pytest

from eventstore import (
    EventStore,
    StoreEvent,
    UnknownCursorError,
    UpdateLastEventId,
    open_store,
)
from tests.mcp.conftest import Harness, eventually, start_harness
from tests.mcp.raw import Event, RawSession

SDK_STREAMS = ("1", "_GET_stream")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(store_url) as opened:
        yield opened


async def _fill(store: EventStore, session: str, streams: tuple[str, ...] = SDK_STREAMS) -> None:
    """Three events per stream; ids collide across sessions, data names its owner."""
    for stream in streams:
        for i in range(3):
            await store.store_event(session, stream, f"{stream}-{i}", [session, stream, i])


async def _owned_by(store: EventStore, session: str, streams: tuple[str, ...]) -> None:
    for stream in streams:
        events = await store.get_stream_events(session, stream)
        assert events, (session, stream)
        assert all(e.data[:2] == [session, stream] for e in events), (session, stream)
        assert all(e.session_id == session and e.stream_id == stream for e in events)
        resumed = await store.get_events_after(session, stream, events[0].id)
        assert [e.data for e in resumed] == [e.data for e in events[1:]]


async def test_colliding_request_id_and_get_streams_in_two_sessions(store: EventStore) -> None:
    """Request id 1 and ``_GET_stream`` in both sessions, with the same event ids."""
    for session in ("alice", "bob"):
        await _fill(store, session)
    for session in ("alice", "bob"):
        await _owned_by(store, session, SDK_STREAMS)
        assert await store.stream_count(session) == 2


async def test_a_cursor_of_stream_a_does_not_resume_stream_b(store: EventStore) -> None:
    await store.store_event("s", "1", "a-1", "A")
    await store.store_event("s", "1", "a-2", "A")
    await store.store_event("s", "2", "b-1", "B")
    await store.store_event("s", "_GET_stream", "g-1", "G")
    for stream, cursor in (("2", "a-1"), ("_GET_stream", "a-1"), ("1", "b-1"), ("1", "g-1")):
        with pytest.raises(UnknownCursorError):
            await store.get_events_after("s", stream, cursor)


async def test_an_unknown_cursor_is_never_everything(store: EventStore) -> None:
    await _fill(store, "s")
    for cursor in ("never-stored", "1-", "1-%", "_GET_stream-9", "' OR '1'='1"):
        for stream in SDK_STREAMS:
            with pytest.raises(UnknownCursorError):
                await store.get_events_after("s", stream, cursor)


async def test_a_cursor_of_session_a_presented_by_session_b(store: EventStore) -> None:
    await store.store_event("alice", "1", "alice-secret", "A1")
    await store.store_event("alice", "1", "alice-later", "A2")
    await store.store_event("bob", "1", "bob-1", "B1")
    for stream in ("1", "_GET_stream"):
        with pytest.raises(UnknownCursorError):
            await store.get_events_after("bob", stream, "alice-secret")
    # Bob's own writes and housekeeping cannot reach Alice's stream either.
    (result,) = await store.apply([UpdateLastEventId("bob", "1", "alice-secret")])
    assert result is None
    alice = await store.get_stream_info("alice", "1")
    assert alice is not None and alice.last_event_id is None
    await store.set_max_events_per_stream(1, session_id="bob", stream_id="1")
    assert await store.clear_stream("bob", "1") == 1
    assert [e.data for e in await store.get_stream_events("alice", "1")] == ["A1", "A2"]


LOOKALIKE_SESSIONS = (
    "s",
    "S",  # case
    "s ",  # trailing space (CHAR semantics would pad)
    " s",
    "s%",  # LIKE wildcards
    "s_",
    "_",
    "%",
    "s1",  # a prefix of another
    "s\\",  # escapes
    "s'",
    unicodedata.normalize("NFC", "é"),  # one code point
    unicodedata.normalize("NFD", "é"),  # two code points, the same glyph
    "ﬁ",  # folds to "fi" under NFKC
    "fi",
)


async def test_lookalike_session_ids_are_different_sessions(store: EventStore) -> None:
    """Case, padding, LIKE wildcards, prefixes and Unicode forms never merge sessions."""
    assert len(set(LOOKALIKE_SESSIONS)) == len(LOOKALIKE_SESSIONS)
    for session in LOOKALIKE_SESSIONS:
        await _fill(store, session)
    for session in LOOKALIKE_SESSIONS:
        await _owned_by(store, session, SDK_STREAMS)
    # Dropping one leaves every lookalike whole.
    assert await store.clear_session("s") == 6
    assert await store.stream_count("s") == 0
    for session in LOOKALIKE_SESSIONS[1:]:
        assert await store.stream_count(session) == 2
        await _owned_by(store, session, SDK_STREAMS)


async def test_one_batch_across_sessions_keeps_them_apart(store: EventStore) -> None:
    """Group commit puts many sessions in one transaction; their streams stay separate."""
    sessions = [f"session-{n}" for n in range(8)]
    batch = [
        StoreEvent(session, stream, f"{stream}-{i}", [session, stream, i])
        for i in range(3)
        for session in sessions
        for stream in SDK_STREAMS
    ]
    results = await store.apply(batch)
    assert all(getattr(r, "seq", None) for r in results)
    for session in sessions:
        await _owned_by(store, session, SDK_STREAMS)


# -- end to end: the SDK's server on loopback, many sessions at once --------------------------


@pytest.fixture
async def harness(sql_url: str) -> AsyncIterator[Harness]:
    async for running in start_harness(sql_url):
        yield running


def _texts(events: list[Event]) -> list[str]:
    return [event.text for event in events if event.message is not None and event.text]


async def test_concurrent_sessions_with_colliding_streams_through_the_sdk(
    harness: Harness,
) -> None:
    """Six sessions at once, each calling request id 1 with a standalone GET stream open.

    Every resume returns only that session's events, and every cursor of every other
    session -- on either stream -- replays nothing.
    """
    sessions: list[RawSession] = [await harness.raw_session() for _ in range(6)]
    calls: dict[str, list[Event]] = {}
    pushed: dict[str, list[Event]] = {}

    async def run(label: str, session: RawSession) -> None:
        async with session.listening() as standalone:
            calls[label] = await session.call_tool(1, "broadcast", label=label, count=3)

            async def arrived() -> bool:
                return len(_texts(standalone)) == 3

            await eventually(arrived)
            pushed[label] = list(standalone)

    labels = [f"L{n}" for n in range(len(sessions))]
    await asyncio.gather(*(run(label, s) for label, s in zip(labels, sessions, strict=True)))

    for label, session in zip(labels, sessions, strict=True):
        progress = [e for e in calls[label] if e.message is not None]
        status, replayed = await session.resume(progress[0].id)
        assert status == 200
        assert _texts(replayed) == [f"{label}: sent {i} of 3" for i in (2, 3)]
        status, replayed = await session.resume(pushed[label][0].id)
        assert status == 200
        assert _texts(replayed) == [f"test://{label}/{i}" for i in (2, 3)]
        for other in labels:
            if other == label:
                continue
            foreign = next(e for e in calls[other] if e.message is not None)
            for cursor in (foreign.id, pushed[other][0].id):
                assert await session.resume(cursor) == (200, []), (label, other)
        # What the store holds under this session is this session's alone.
        for stream in ("1", "_GET_stream"):
            stored = await harness.store.get_stream_events(session.session_id, stream)
            assert stored and all(label in str(e.data) for e in stored if e.data is not None)
            assert not any(o in str(e.data) for e in stored for o in labels if o != label)


async def test_a_deleted_sessions_cursor_replays_nothing_anywhere(harness: Harness) -> None:
    ended, other = await harness.raw_session(), await harness.raw_session()
    events = await ended.call_tool(1, "count", label="GONE", steps=3)
    cursor = events[1].id
    await other.call_tool(1, "count", label="KEPT", steps=3)
    assert await ended.delete() == 200

    async def dropped() -> bool:
        return await harness.store.stream_count(ended.session_id) == 0

    await eventually(dropped)
    assert await other.resume(cursor) == (200, [])
    fresh = await harness.raw_session()
    assert await fresh.resume(cursor) == (200, [])
