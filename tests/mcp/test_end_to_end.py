"""Real server (uvicorn on loopback), real SDK client or hand-spoken HTTP, real databases."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest
from httpx_sse import EventSource

from eventstore import EventStore
from eventstore.mcp.demo.proxy import CuttableProxy
from eventstore.mcp.demo.sdk import client_session
from eventstore.mcp.ids import MAX_EVENT_ID_LENGTH, stream_key
from tests.conftest import PostgresServer
from tests.mcp.conftest import Harness, eventually, start_harness
from tests.mcp.raw import Event, RawSession


def texts(events: list[Event]) -> list[str]:
    return [event.text for event in events if event.message is not None and event.text]


async def response_stored(harness: Harness, session_id: str, request_id: str) -> bool:
    stored = await harness.store.get_stream_events(session_id, stream_key(request_id))
    return bool(stored) and isinstance(stored[-1].data, dict) and "result" in stored[-1].data


async def test_sdk_client_resumes_after_drop_with_exactly_the_missed_events(
    harness: Harness,
) -> None:
    port = int(harness.base_url.rsplit(":", 1)[1])
    call = harness.conductor.call("A")
    received: list[tuple[int, bool]] = []
    dropped = False
    reached = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        received.append((int(progress), dropped))
        if len(received) == 3:
            reached.set()

    async with (
        CuttableProxy("127.0.0.1", port) as proxy,
        client_session(f"{proxy.url}/mcp") as session,
    ):
        tool = asyncio.ensure_future(
            session.call_tool(
                "count",
                arguments={"label": "A", "steps": 7, "pause_after": 3},
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(reached.wait(), 20)
        await call.paused.wait()
        assert call.session_id and call.request_id
        await harness.settled()
        stored = await harness.store.get_stream_events(call.session_id, stream_key(call.request_id))
        last_received = stored[-1].id
        harness.gate.hold(call.session_id)
        dropped = True
        assert proxy.cut() >= 1
        call.resume.set()
        await eventually(lambda: response_stored(harness, call.session_id, call.request_id))
        harness.gate.release(call.session_id)
        result = await asyncio.wait_for(tool, 20)

    assert [step for step, _ in received] == [1, 2, 3, 4, 5, 6, 7]
    assert [step for step, replayed in received if not replayed] == [1, 2, 3]
    assert [step for step, replayed in received if replayed] == [4, 5, 6, 7]
    assert result.content[0].text == "A counted to 7"
    assert harness.gate.resumes_of(call.session_id) == [last_received]


async def test_server_closed_stream_with_retry_loses_nothing(harness: Harness) -> None:
    """SEP-1699 polling: the tool closes its own SSE stream; the client comes back."""
    call = harness.conductor.call("P")
    received: list[int] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        received.append(int(progress))

    async with client_session(harness.endpoint) as session:
        tool = asyncio.ensure_future(
            session.call_tool(
                "poll",
                arguments={"label": "P", "steps": 6, "close_after": 2},
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(call.paused.wait(), 20)
        assert call.session_id and call.request_id
        await harness.settled()
        stored = await harness.store.get_stream_events(call.session_id, stream_key(call.request_id))
        last_sent = stored[-1].id
        harness.gate.hold(call.session_id)
        call.resume.set()
        await eventually(lambda: response_stored(harness, call.session_id, call.request_id))
        harness.gate.release(call.session_id)
        result = await asyncio.wait_for(tool, 20)

    assert received == [1, 2, 3, 4, 5, 6]
    assert result.content[0].text == "P polled to 6"
    assert harness.gate.resumes_of(call.session_id) == [last_sent]


async def test_sessions_with_colliding_stream_ids_replay_only_their_own(
    harness: Harness,
) -> None:
    """Request id 1 in both sessions (stream "1"), and both "_GET_stream"s."""
    a, b = await harness.raw_session(), await harness.raw_session()
    calls: dict[str, list[Event]] = {}
    pushed: dict[str, list[Event]] = {}
    for label, session in (("A", a), ("B", b)):
        async with session.listening() as standalone:
            calls[label] = await session.call_tool(1, "broadcast", label=label, count=4)

            async def all_arrived(events: list[Event] = standalone) -> bool:
                return len(texts(events)) == 4

            await eventually(all_arrived)
            pushed[label] = list(standalone)
        assert texts(pushed[label]) == [f"test://{label}/{i}" for i in range(1, 5)]

    for label, session in (("A", a), ("B", b)):
        progress = [e for e in calls[label] if e.message is not None]
        first = progress[0]
        status, replayed = await session.resume(first.id)
        assert status == 200
        assert [e.id for e in replayed] == [e.id for e in progress[1:]]
        assert texts(replayed) == [f"{label}: sent {i} of 4" for i in range(2, 5)]
        assert replayed[-1].message is not None
        assert replayed[-1].message["result"]["content"][0]["text"] == f"{label} broadcast 4"

        status, replayed = await session.resume(pushed[label][0].id)
        assert status == 200
        assert texts(replayed) == [f"test://{label}/{i}" for i in range(2, 5)]

    # A cursor copied from A's session is nothing in B's, on either stream.
    for cursor in (calls["A"][1].id, pushed["A"][0].id):
        assert await b.resume(cursor) == (200, [])
    assert calls["A"][1].id != calls["B"][1].id


async def test_get_stream_messages_are_stored_once_a_client_had_the_get_stream(
    harness: Harness,
) -> None:
    # The SDK stores every server-initiated message, GET stream open or not; a session
    # whose client never opened it could resume none of them (no client holds a cursor).
    session = await harness.raw_session()
    get_key = stream_key("_GET_stream")

    async def held() -> list[str]:
        await harness.settled()
        events = await harness.store.get_stream_events(session.session_id, get_key)
        return [str((e.data or {}).get("params", {}).get("uri")) for e in events if e.data]

    await session.call_tool(1, "broadcast", label="early", count=50)
    assert await held() == []

    async with session.listening() as standalone:
        await session.call_tool(2, "broadcast", label="open", count=3)

        async def arrived() -> bool:
            return len(texts(standalone)) == 3

        await eventually(arrived)
    await session.call_tool(3, "broadcast", label="away", count=2)

    assert await held() == [
        "test://open/1",
        "test://open/2",
        "test://open/3",
        *(f"test://away/{i}" for i in (1, 2)),
    ]
    status, replayed = await session.resume(standalone[-1].id)
    assert status == 200
    assert texts(replayed) == ["test://away/1", "test://away/2"]


BAD_LAST_EVENT_IDS: list[str | bytes] = [
    "garbage",
    "x" * (MAX_EVENT_ID_LENGTH + 1),
    "y" * 6000,
    "AAAAAAAAAAA.1.1",
    "AAAAAAAAAAA.999.~AAAAAAAAAAAAAAAAAAAAAA",
    "AAAAAAAAAAA.0.1",
    "../../etc/passwd",
    b"\xc3\xa9v\xc3\xa9nement",
    "1; DROP TABLE events",
]


async def test_unknown_malformed_or_oversized_last_event_id_replays_nothing(
    harness: Harness,
) -> None:
    session = await harness.raw_session()
    before = await session.call_tool(1, "count", label="M", steps=2)
    for last_event_id in BAD_LAST_EVENT_IDS:
        assert await session.resume(last_event_id) == (200, []), last_event_id
    # Nothing broke: the session still serves requests and resumes.
    after = await session.call_tool(2, "count", label="M", steps=2)
    assert after[-1].is_response
    assert (await session.resume(before[1].id))[1][-1].is_response


async def test_a_well_formed_id_of_another_stream_of_this_session_is_not_resumed(
    harness: Harness,
) -> None:
    session = await harness.raw_session()
    events = await session.call_tool(1, "count", label="S", steps=2)
    nonce, counter, _ = events[1].id.split(".")
    assert await session.resume(f"{nonce}.{counter}.7") == (200, [])


async def test_a_cursor_trimmed_by_the_cap_replays_nothing_never_a_partial_stream(
    sql_url: str,
) -> None:
    async for harness in start_harness(sql_url, store_options={"max_events_per_stream": 3}):
        session = await harness.raw_session()
        events = await session.call_tool(1, "count", label="T", steps=6)
        ids = [event.id for event in events]
        # Priming event, 6 progress notifications, the result: the store keeps the last 3.
        assert len(ids) == 8
        for trimmed in ids[:5]:
            assert await session.resume(trimmed) == (200, [])
        status, replayed = await session.resume(ids[5])
        assert status == 200
        assert [event.id for event in replayed] == ids[6:]


async def test_delete_drops_the_session_and_other_sessions_keep_theirs(harness: Harness) -> None:
    ended, kept = await harness.raw_session(), await harness.raw_session()
    await ended.call_tool(1, "count", label="E", steps=2)
    await kept.call_tool(1, "count", label="K", steps=2)
    await harness.settled()
    assert await harness.store.stream_count(ended.session_id) > 0

    assert await ended.delete() == 200

    async def dropped() -> bool:
        return await harness.store.stream_count(ended.session_id) == 0

    await eventually(dropped)
    assert await harness.store.stream_count(kept.session_id) > 0
    assert len(await harness.store.get_stream_events(kept.session_id, "1")) == 4


async def test_events_are_stored_under_the_real_session_id(harness: Harness) -> None:
    session: RawSession = await harness.raw_session()
    events = await session.call_tool(1, "count", label="R", steps=3)
    await harness.settled()
    stored = await harness.store.get_stream_events(session.session_id, "1")
    assert [event.id for event in stored] == [event.id for event in events]
    assert [event.data for event in stored] == [event.message for event in events]
    # The initialize request's priming event is stored too: the session is bound from
    # its very first event.
    assert await harness.store.get_stream_events(session.session_id, "0")


async def test_a_finished_calls_stream_is_dropped_after_the_ttl_and_the_session_lives_on(
    sqlite_url: str,
) -> None:
    async for harness in start_harness(sqlite_url, finished_stream_ttl_seconds=0.5):
        session: RawSession = await harness.raw_session()
        await session.call_tool(1, "count", label="T", steps=2)
        await harness.settled()
        assert await harness.store.get_stream_events(session.session_id, "1")

        await eventually(partial(_stream_gone, harness.store, session.session_id, "1"), 5)
        events = await session.call_tool(2, "count", label="U", steps=1)
        assert texts(events) == ["U: step 1 of 1"] and events[-1].is_response


async def _stream_gone(store: EventStore, session_id: str, stream_id: str) -> bool:
    return not await store.get_stream_events(session_id, stream_id)


async def test_a_message_that_cannot_be_serialised_fails_its_call_not_the_session(
    harness: Harness,
) -> None:
    session: RawSession = await harness.raw_session()
    # A lone surrogate in the tool's progress text: pydantic cannot encode the message,
    # for the store or for the wire. The SDK fails that call's stream; the session lives.
    failed = await asyncio.wait_for(
        session.call_tool(1, "count", label="bad", steps=2, unencodable=True), 10
    )
    assert not any(event.is_response for event in failed)
    events = await asyncio.wait_for(session.call_tool(2, "count", label="after", steps=2), 10)
    assert texts(events) == ["after: step 1 of 2", "after: step 2 of 2"]
    assert events[-1].is_response
    await harness.settled()
    assert len(await harness.store.get_stream_events(session.session_id, "2")) == 4


@pytest.mark.parametrize("group_commit", [True, False], ids=["group commit", "direct"])
async def test_writes_ride_out_a_postgresql_restart_mid_call(
    postgres_server: PostgresServer, postgres_url: str, group_commit: bool
) -> None:
    # Direct writes too: their pooled connections die with the server, and the first
    # write after it is back fails once; without retries the stream was given up.
    cluster = postgres_server.cluster
    if cluster is None:
        pytest.skip("restarting PostgreSQL needs the suite's own cluster")
    async for harness in start_harness(
        postgres_url, write_retry_seconds=60, group_commit=group_commit
    ):
        session = await harness.raw_session()
        call = harness.conductor.call("R")
        streaming = asyncio.ensure_future(
            session.call_tool(1, "count", label="R", steps=6, pause_after=2)
        )
        await asyncio.wait_for(call.paused.wait(), 20)
        await asyncio.to_thread(cluster.stop)
        try:
            call.resume.set()
            # Let the tool's next writes hit the dead server before it comes back.
            await asyncio.sleep(1.0)
        finally:
            await asyncio.to_thread(cluster.start)
        events = await asyncio.wait_for(streaming, 60)

        assert texts(events) == [f"R: step {i} of 6" for i in range(1, 7)]
        assert events[-1].is_response
        await harness.settled()
        if group_commit:
            assert harness.binding.worker is not None
            assert harness.binding.worker.stats.retries > 0
        stored = await harness.store.get_stream_events(session.session_id, "1")
        assert [event.id for event in stored] == [event.id for event in events]
        status, replayed = await session.resume(events[1].id)
        assert status == 200
        assert [event.id for event in replayed] == [event.id for event in events[2:]]


async def test_reconnects_that_miss_nothing_do_not_evict_messages(sql_url: str) -> None:
    """Each resume is primed anew; one that replays nothing reuses the newest priming
    event instead of storing another row that the per-stream cap would count."""
    async for harness in start_harness(sql_url, store_options={"max_events_per_stream": 3}):
        session = await harness.raw_session()
        call = harness.conductor.call("C")
        first = await session.call_tool_and_drop(1, "count", 2, label="C", steps=2, pause_after=1)
        assert [e.message is None for e in first] == [True, False]
        await call.paused.wait()
        cursor = first[-1].id
        for _ in range(8):
            status, events = await session.follow_to_priming(cursor)
            assert status == 200 and [e.message for e in events][-1:] == [None]
            cursor = events[-1].id
        await harness.settled()
        stored = await harness.store.get_stream_events(session.session_id, "1")
        # The first priming event, step 1, and one priming event for all eight resumes.
        assert [event.id for event in stored] == [first[0].id, first[1].id, cursor]
        call.resume.set()
        rest = await session.follow_to_response(cursor)
        assert texts(rest) == ["C: step 2 of 2"]


async def test_a_request_id_used_again_right_after_a_resume_gets_its_response(
    harness: Harness,
) -> None:
    """A client drops a call, resumes it and is replayed the response, then sends a new
    request with the same id (clients that count ids per connection, or retry, do).

    The resumed connection used to be attached to the finished stream, registered in
    the SDK under the request id until the client's disconnect was noticed; the SDK's
    clean-up of that connection then removed the new request's registration under the
    same id, and the new call's stream ended without its response. Here the client keeps
    the resumed connection open until the new call runs, so that order is certain.
    """
    session = await harness.raw_session()
    old = harness.conductor.call("old")
    dropped = await session.call_tool_and_drop(1, "count", 2, label="old", steps=2, pause_after=1)
    await asyncio.wait_for(old.paused.wait(), 20)
    old.resume.set()
    await eventually(partial(response_stored, harness, session.session_id, "1"))

    headers = session.headers(accept="text/event-stream")
    headers["last-event-id"] = dropped[-1].id
    new = harness.conductor.call("new")
    async with harness.http.stream("GET", harness.endpoint, headers=headers) as resumed:
        assert resumed.status_code == 200
        replayed: list[Event] = []
        async for sse in EventSource(resumed).aiter_sse():
            replayed.append(Event(sse.id, json.loads(sse.data) if sse.data else None))
            if replayed[-1].message is None:
                break  # primed: the SDK attached the old stream to this connection
        again = asyncio.ensure_future(
            session.call_tool(1, "count", label="new", steps=2, pause_after=1)
        )
        await asyncio.wait_for(new.paused.wait(), 20)
    # The resumed connection is closed. Its clean-up on the server (loopback: within
    # milliseconds) used to end the new call's stream here.
    await asyncio.wait({again}, timeout=1.0)
    new.resume.set()
    events = await asyncio.wait_for(again, 20)
    assert texts(events) == ["new: step 1 of 2", "new: step 2 of 2"]
    assert events[-1].is_response
    assert events[-1].message is not None
    assert events[-1].message["result"]["content"][0]["text"] == "new counted to 2"
    # The resume ended after the response, with no priming event: nothing follows it.
    assert texts(replayed) == ["old: step 2 of 2"]
    assert replayed[-1].is_response


async def _resume_to_the_end(harness: Harness, session: RawSession, cursor: str) -> list[Event]:
    """GET with ``Last-Event-ID`` read until the server ends the stream (not stopping at
    a response, as clients do: whatever comes after one is what this test looks for)."""
    headers = session.headers(accept="text/event-stream")
    headers["last-event-id"] = cursor
    events: list[Event] = []

    async def read() -> None:
        async with harness.http.stream("GET", harness.endpoint, headers=headers) as response:
            assert response.status_code == 200
            async for sse in EventSource(response).aiter_sse():
                events.append(Event(sse.id, json.loads(sse.data) if sse.data else None))

    await asyncio.wait_for(read(), 20)
    return events


async def test_a_request_id_used_again_after_its_call_was_answered_keeps_the_calls_apart(
    harness: Harness,
) -> None:
    """MCP lets a client use a request id again once its request was answered; both
    calls' messages go to the SDK stream named by the id. A resume with the first call's
    cursor used to replay the second call's messages too, a second response with the
    same id among them."""
    session = await harness.raw_session()
    dropped: dict[str, list[Event]] = {}
    for label in ("A", "B"):
        call = harness.conductor.call(label)
        dropped[label] = await session.call_tool_and_drop(
            1, "count", 2, label=label, steps=2, pause_after=1
        )
        await asyncio.wait_for(call.paused.wait(), 20)
        call.resume.set()

        async def answered(count: int = len(dropped)) -> bool:
            stored = await harness.store.get_stream_events(session.session_id, "1")
            results = [e for e in stored if isinstance(e.data, dict) and "result" in e.data]
            return len(results) == count

        await eventually(answered)

    for label, events in dropped.items():
        assert texts(events) == [f"{label}: step 1 of 2"]
        replayed = await _resume_to_the_end(harness, session, events[-1].id)
        assert texts(replayed) == [f"{label}: step 2 of 2"]
        responses = [event.message for event in replayed if event.is_response]
        assert [r["result"]["content"][0]["text"] for r in responses if r] == [
            f"{label} counted to 2"
        ]
        assert replayed[-1].is_response


async def test_a_resume_from_a_response_replays_nothing_when_its_id_was_used_again(
    harness: Harness,
) -> None:
    """A's response is a valid cursor, but nothing of A follows it: what does is B, a new
    request with the same id. That resume used to replay B's messages, or, with none
    yet, stay open and attach the id's stream, so that its close ended B's own stream."""
    session = await harness.raw_session()
    first = harness.conductor.call("A")
    answered = asyncio.ensure_future(
        session.call_tool(1, "count", label="A", steps=1, pause_after=1)
    )
    await asyncio.wait_for(first.paused.wait(), 20)
    first.resume.set()
    a = await asyncio.wait_for(answered, 20)
    assert a[-1].is_response

    assert await _resume_to_the_end(harness, session, a[-1].id) == []

    second = harness.conductor.call("B")
    b = await session.call_tool_and_drop(1, "count", 2, label="B", steps=2, pause_after=1)
    await asyncio.wait_for(second.paused.wait(), 20)
    assert await _resume_to_the_end(harness, session, a[-1].id) == []
    second.resume.set()
    rest = await session.follow_to_response(b[-1].id)
    assert texts(rest) == ["B: step 2 of 2"]
    assert rest[-1].is_response
