"""SessionEventStore against real stores (memory, SQLite, PostgreSQL), through the SDK API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from mcp.server.streamable_http import EventMessage
from mcp.types import JSONRPCMessage
from pydantic import TypeAdapter

from eventstore import (
    ApplyResult,
    ClearStream,
    EventStore,
    InMemoryEventStore,
    StoredEvent,
    WriteRequest,
    open_store,
)
from eventstore.mcp import SessionEventStore
from eventstore.mcp.adapter import MAX_RESUMABLE_STREAM_ID_LENGTH, REPLAY_PAGE
from eventstore.mcp.ids import stream_key
from eventstore.worker import PersistenceWorker
from tests.mcp.conftest import eventually
from tests.pgcluster import PostgresCluster

MESSAGE: TypeAdapter[JSONRPCMessage] = TypeAdapter(JSONRPCMessage)


def progress(n: int, text: str = "") -> JSONRPCMessage:
    return MESSAGE.validate_python(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": n, "message": text or f"step {n}"},
        }
    )


def response(request_id: int | str, value: object) -> JSONRPCMessage:
    return MESSAGE.validate_python({"jsonrpc": "2.0", "id": request_id, "result": {"v": value}})


def wire(message: JSONRPCMessage) -> str:
    return message.model_dump_json(by_alias=True, exclude_unset=True)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture(params=["direct", "worker"])
async def session_store(
    request: pytest.FixtureRequest, store: EventStore
) -> AsyncIterator[Callable[[str], SessionEventStore]]:
    """Adapters writing to the store directly, or through one PersistenceWorker."""
    if request.param == "direct":
        yield lambda session_id: SessionEventStore(store, session_id)
        return
    async with PersistenceWorker(store) as worker:
        yield lambda session_id: SessionEventStore(store, session_id, worker=worker)


async def settled(adapter: SessionEventStore) -> None:
    """Every write the adapter queued is committed (a no-op without a worker)."""
    if adapter.worker is not None:
        await adapter.worker.flush()


class Collector:
    def __init__(self) -> None:
        self.sent: list[EventMessage] = []

    async def __call__(self, event: EventMessage) -> None:
        self.sent.append(event)


async def test_replay_sends_the_messages_after_the_cursor_exactly_as_stored(
    session_store: Callable[[str], SessionEventStore],
) -> None:
    adapter = session_store("session-a")
    priming = await adapter.store_event("1", None)
    messages = [progress(1, "ünïcode ☃"), progress(2, "\u0000 nul"), response(1, 2**80)]
    ids = [await adapter.store_event("1", message) for message in messages]

    # A replay that sent the response names no stream: nothing follows a response, so
    # the SDK must not attach the stream to the resuming connection.
    sent = Collector()
    assert await adapter.replay_events_after(priming, sent) is None
    assert [event.event_id for event in sent.sent] == ids
    assert [wire(event.message) for event in sent.sent] == [wire(m) for m in messages]

    sent = Collector()
    assert await adapter.replay_events_after(ids[0], sent) is None
    assert [event.event_id for event in sent.sent] == ids[1:]

    # The client has the response: nothing of its request is left, and a stream
    # attached here would hold the request id a new request may use.
    sent = Collector()
    assert await adapter.replay_events_after(ids[-1], sent) is None
    assert sent.sent == []


async def test_priming_events_are_cursors_but_never_replayed(
    session_store: Callable[[str], SessionEventStore], store: EventStore
) -> None:
    adapter = session_store("s")
    first = await adapter.store_event("1", progress(1))
    await adapter.store_event("1", None)
    last = await adapter.store_event("1", progress(2))
    await settled(adapter)
    sent = Collector()
    assert await adapter.replay_events_after(first, sent) == "1"
    assert [event.event_id for event in sent.sent] == [last]
    stored = await store.get_stream_events("s", "1")
    assert [event.data is None for event in stored] == [False, True, False]


async def test_a_session_never_replays_another_sessions_events(
    session_store: Callable[[str], SessionEventStore],
) -> None:
    a, b = session_store("a"), session_store("b")
    a_first = await a.store_event("1", progress(1, "A1"))
    b_first = await b.store_event("1", progress(1, "B1"))
    await a.store_event("1", progress(2, "A2"))
    await b.store_event("1", progress(2, "B2"))
    await a.store_event("_GET_stream", progress(3, "A3"))

    sent = Collector()
    assert await a.replay_events_after(a_first, sent) == "1"
    assert [event.message.model_dump()["params"]["message"] for event in sent.sent] == ["A2"]
    for foreign in (a_first, "x"):
        sent = Collector()
        assert await b.replay_events_after(foreign, sent) is None
        assert sent.sent == []
    assert await a.replay_events_after(b_first, Collector()) is None


async def test_long_and_odd_stream_ids_replay_under_their_own_id(
    session_store: Callable[[str], SessionEventStore],
) -> None:
    adapter = session_store("s")
    for stream_id in ("x" * MAX_RESUMABLE_STREAM_ID_LENGTH, "", "a.b", "é", "\ud800"):
        first = await adapter.store_event(stream_id, progress(1))
        second = await adapter.store_event(stream_id, progress(2))
        sent = Collector()
        assert await adapter.replay_events_after(first, sent) == stream_id
        assert [event.event_id for event in sent.sent] == [second]
        assert len(first) <= 100


async def test_a_stream_id_too_long_to_keep_is_not_resumable_nor_stored(
    session_store: Callable[[str], SessionEventStore],
) -> None:
    adapter = session_store("s")
    huge = "x" * (MAX_RESUMABLE_STREAM_ID_LENGTH + 1)
    first = await adapter.store_event(huge, progress(1))
    await adapter.store_event(huge, progress(2))
    await settled(adapter)
    assert await adapter.replay_events_after(first, Collector()) is None
    assert await adapter.store.get_stream_events("s", stream_key(huge)) == []
    assert huge not in adapter._hashed_streams.values()  # nothing of it kept


async def test_garbage_and_unknown_cursors_replay_nothing(
    session_store: Callable[[str], SessionEventStore],
) -> None:
    adapter = session_store("s")
    real = await adapter.store_event("1", progress(1))
    nonce, counter, _ = real.split(".")
    for cursor in (
        "",
        "garbage",
        "z" * 100_000,
        f"{nonce}.{int(counter) + 1}.1",
        f"{nonce}.{counter}.2",
        f"{nonce}.{counter}.~AAAAAAAAAAAAAAAAAAAAAA",
    ):
        sent = Collector()
        assert await adapter.replay_events_after(cursor, sent) is None
        assert sent.sent == []


async def test_a_trimmed_cursor_replays_nothing(sql_url: str) -> None:
    async with open_store(sql_url, max_events_per_stream=2) as store:
        adapter = SessionEventStore(store, "s")
        ids = [await adapter.store_event("1", progress(n)) for n in range(1, 5)]
        assert await adapter.replay_events_after(ids[0], Collector()) is None
        sent = Collector()
        assert await adapter.replay_events_after(ids[2], sent) == "1"
        assert [event.event_id for event in sent.sent] == [ids[3]]


@pytest.mark.parametrize("via_worker", [False, True])
async def test_a_failed_write_makes_its_stream_unresumable_not_gappy(
    sql_url: str, via_worker: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        open_store(sql_url, max_event_bytes=300) as store,
        PersistenceWorker(store) as worker,
    ):
        adapter = SessionEventStore(store, "s", worker=worker if via_worker else None)
        first = await adapter.store_event("1", progress(1))
        other = await adapter.store_event("2", progress(1))
        # Too large for the store: logged, not raised (the SDK would stop routing).
        lost = await adapter.store_event("1", progress(2, "x" * 1000))
        later = await adapter.store_event("1", progress(3))
        await adapter.store_event("2", progress(2))
        assert lost.endswith(".1") and later.endswith(".1")
        with caplog.at_level(logging.DEBUG, logger="eventstore.mcp"):
            assert await adapter.replay_events_after(first, Collector()) is None
            assert await adapter.replay_events_after(later, Collector()) is None
        refusals = [
            r for r in caplog.records if "a resume of stream '1' is refused" in r.msg % r.args
        ]
        # Said once as a warning (the client will retry for a while), then at debug level.
        assert [r.levelname for r in refusals] == ["WARNING", "DEBUG"]
        await settled(adapter)
        stored = [event.id for event in await store.get_stream_events("s", "1")]
        assert stored[0] == first and lost not in stored
        if not via_worker:
            # Committing each write, the loss is known at once and nothing after it is
            # written; queued writes learn of it only when the worker gets to it.
            assert stored == [first]
        sent = Collector()
        assert await adapter.replay_events_after(other, sent) == "2"
        assert len(sent.sent) == 1


async def test_a_message_that_cannot_be_serialised_is_lost_not_raised(
    session_store: Callable[[str], SessionEventStore], caplog: pytest.LogCaptureFixture
) -> None:
    adapter = session_store("s")
    first = await adapter.store_event("1", progress(1))
    with caplog.at_level(logging.WARNING, logger="eventstore.mcp"):
        # Raising here would stop the SDK's router for every later message of the session.
        lost = await adapter.store_event("1", progress(2, "lone \ud800"))
    assert lost.endswith(".1")
    assert "can no longer be resumed" in caplog.text
    assert await adapter.replay_events_after(first, Collector()) is None
    other = await adapter.store_event("2", progress(1))
    await settled(adapter)
    assert await adapter.replay_events_after(other, Collector()) == "2"


async def test_a_stored_event_that_is_not_a_message_makes_the_replay_refuse(
    store: EventStore,
) -> None:
    adapter = SessionEventStore(store, "s")
    first = await adapter.store_event("1", progress(1))
    await store.store_event("s", stream_key("1"), "foreign-writer-1", {"not": "json-rpc"})
    await adapter.store_event("1", progress(2))
    assert await adapter.replay_events_after(first, Collector()) is None


async def test_clear_drops_only_this_session(
    session_store: Callable[[str], SessionEventStore], store: EventStore
) -> None:
    a, b = session_store("a"), session_store("b")
    await a.store_event("1", progress(1))
    await b.store_event("1", progress(1))
    assert await a.clear() == 1
    assert await store.stream_count("a") == 0
    assert await store.stream_count("b") == 1


async def test_a_sessions_own_trimmed_cursor_is_one_rate_limited_warning(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_store(sql_url, max_events_per_stream=2) as store:
        adapter = SessionEventStore(store, "s")
        ids = [await adapter.store_event("1", progress(n)) for n in range(1, 5)]
        foreign = await SessionEventStore(store, "t").store_event("1", progress(1))
        nonce, counter, _ = ids[0].split(".")
        with caplog.at_level(logging.DEBUG, logger="eventstore.mcp.adapter"):
            # The SDK client retries a lost position over and over.
            for _ in range(5):
                assert await adapter.replay_events_after(ids[0], Collector()) is None
            for cursor in (
                foreign,
                "garbage",
                f"{nonce}.{int(counter) + 100}.1",
                f"{nonce}.{counter}.7",
                f"AAAAAAAAAAA.{counter}.1",
            ):
                assert await adapter.replay_events_after(cursor, Collector()) is None
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, warnings
        assert ids[0] in warnings[0] and "max_events_per_stream" in warnings[0]
        debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
        assert len(debug) == 4 + 5


async def test_a_priming_event_with_nothing_after_it_is_reused_not_stored_again(
    session_store: Callable[[str], SessionEventStore], store: EventStore
) -> None:
    adapter = session_store("s")
    first = await adapter.store_event("1", None)
    await settled(adapter)
    # Each reconnect that replays nothing primes the stream anew: the same cursor.
    assert [await adapter.store_event("1", None) for _ in range(5)] == [first] * 5
    message = await adapter.store_event("1", progress(1))
    # Not yet committed: a new priming event, in order after it.
    after_message = await adapter.store_event("1", None)
    await settled(adapter)
    assert after_message not in (first, message)
    assert await adapter.store_event("1", None) == after_message
    stored = await store.get_stream_events("s", "1")
    assert [event.id for event in stored] == [first, message, after_message]
    sent = Collector()
    assert await adapter.replay_events_after(first, sent) == "1"
    assert [event.event_id for event in sent.sent] == [message]
    # After a clear nothing is there to reuse.
    await adapter.clear()
    assert await adapter.store_event("1", None) != after_message


class PageRecordingStore(InMemoryEventStore):
    """A real in-memory store that notes the limit of every replay read."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[int | None] = []

    async def get_events_after(
        self, session_id: str, stream_id: str, after_event_id: str, *, limit: int | None = None
    ) -> list[StoredEvent]:
        self.limits.append(limit)
        return await super().get_events_after(session_id, stream_id, after_event_id, limit=limit)


async def test_a_long_replay_reads_and_sends_a_page_at_a_time() -> None:
    store = PageRecordingStore()
    adapter = SessionEventStore(store, "s")
    first = await adapter.store_event("1", progress(0))
    for n in range(1, 2 * REPLAY_PAGE + 7):
        await adapter.store_event("1", progress(n))
    sent = Collector()
    assert await adapter.replay_events_after(first, sent) == "1"
    # Every message once, in order, though no read returned more than a page.
    steps = [event.message.params["progress"] for event in sent.sent]  # type: ignore[union-attr,index]
    assert steps == list(range(1, 2 * REPLAY_PAGE + 7))
    assert store.limits and set(store.limits) == {REPLAY_PAGE}
    assert len(store.limits) >= 3


async def test_a_replay_the_database_cannot_serve_now_is_refused_not_raised(
    own_postgres_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = await asyncio.to_thread(own_postgres_cluster.create_database)
    async with open_store(url) as store:
        adapter = SessionEventStore(store, "s")
        first = await adapter.store_event("1", progress(1))
        await adapter.store_event("1", progress(2))
        await asyncio.to_thread(own_postgres_cluster.stop, "fast")
        try:
            with caplog.at_level(logging.WARNING, logger="eventstore.mcp"):
                # Raised, the SDK logs a traceback and drops the stream; refused, the
                # client resumes again.
                assert await adapter.replay_events_after(first, Collector()) is None
            assert "cannot read stream '1' to replay it now" in caplog.text
        finally:
            await asyncio.to_thread(own_postgres_cluster.start)
        sent = Collector()
        for _ in range(3):  # the pool's first checkout after a restart may fail once
            if await adapter.replay_events_after(first, sent) == "1":
                break
        assert len(sent.sent) == 1


@pytest.mark.parametrize("via_worker", [False, True])
async def test_a_finished_requests_stream_is_dropped_after_its_ttl(
    store: EventStore, via_worker: bool
) -> None:
    async with PersistenceWorker(store) as worker:
        await _finished_stream_is_dropped(
            SessionEventStore(
                store, "s", worker=worker if via_worker else None, finished_stream_ttl=1.0
            ),
            store,
        )


async def _finished_stream_is_dropped(adapter: SessionEventStore, store: EventStore) -> None:
    first = await adapter.store_event("1", None)  # the priming event
    await adapter.store_event("1", progress(1))
    await adapter.store_event("1", response(1, "done"))
    running = await adapter.store_event("2", progress(1))  # no response yet
    # Within the TTL (a second is plenty for these few writes) a client that missed the
    # response still gets it.
    sent = Collector()
    assert await adapter.replay_events_after(first, sent) is None  # replayed to the response
    assert len(sent.sent) == 2

    async def dropped() -> bool:
        return await store.get_stream_events("s", "1") == []

    await eventually(dropped)
    assert await adapter.replay_events_after(first, Collector()) is None
    assert "1" not in adapter._minted and "1" not in adapter._newest  # no state kept
    assert len(await store.get_stream_events("s", "2")) == 1
    assert await adapter.replay_events_after(running, Collector()) == "2"


async def test_a_request_id_used_again_before_the_ttl_keeps_its_new_stream(
    store: EventStore,
) -> None:
    adapter = SessionEventStore(store, "s", finished_stream_ttl=1.0)
    await adapter.store_event("1", response(1, "first call"))
    await asyncio.sleep(0.1)
    again = await adapter.store_event("1", progress(1))  # a new request with id 1
    await asyncio.sleep(1.3)  # past the first call's deadline
    assert [e.id for e in await store.get_stream_events("s", "1")][-1] == again


async def test_a_request_id_used_again_keeps_its_new_priming_event(store: EventStore) -> None:
    adapter = SessionEventStore(store, "s", finished_stream_ttl=1.5)
    await adapter.store_event("1", response(1, "first call"))
    await asyncio.sleep(1.0)
    primed = await adapter.store_event("1", None)  # the new call's priming event
    # The new call's tool speaks at last: 0.3 s after the first call's deadline (its
    # timer would have dropped the stream by then), 0.7 s before the priming event's
    # (room for a slow machine: a sleep only ever overruns).
    await asyncio.sleep(0.8)
    await adapter.store_event("1", progress(1))
    ids = [e.id for e in await store.get_stream_events("s", "1")]
    assert primed in ids  # a client that dropped after the priming event can resume


async def test_a_finished_stream_is_not_dropped_under_a_replay_reading_it(
    store: EventStore,
) -> None:
    adapter = SessionEventStore(store, "s", finished_stream_ttl=0.2)
    first = await adapter.store_event("1", progress(0))
    for n in range(1, 2 * REPLAY_PAGE + 1):
        await adapter.store_event("1", progress(n))
    await adapter.store_event("1", response(1, "done"))
    sent: list[EventMessage] = []

    async def slow_client(event: EventMessage) -> None:
        sent.append(event)
        await asyncio.sleep(0.0005)  # the replay outlasts the TTL

    assert await adapter.replay_events_after(first, slow_client) is None  # to the response
    assert len(sent) == 2 * REPLAY_PAGE + 1  # every page, and the response
    await asyncio.sleep(1.5)  # once the replay is over, the drop goes ahead
    assert await store.get_stream_events("s", "1") == []


class SlowClearStore(InMemoryEventStore):
    """A database that takes a while to clear a stream (directly or in a worker's batch)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.clearing = asyncio.Event()
        self.cleared = asyncio.Event()

    async def apply(self, requests: Sequence[WriteRequest]) -> list[ApplyResult]:
        if not any(isinstance(request, ClearStream) for request in requests):
            return await super().apply(requests)
        self.clearing.set()
        await asyncio.sleep(self.seconds)
        results = await super().apply(requests)
        self.cleared.set()
        return results


@pytest.mark.parametrize("via_worker", [False, True])
async def test_a_request_id_used_again_while_its_old_stream_is_dropped_keeps_its_events(
    via_worker: bool,
) -> None:
    store = SlowClearStore(0.3)
    async with PersistenceWorker(store) as worker:
        adapter = SessionEventStore(
            store, "s", worker=worker if via_worker else None, finished_stream_ttl=0.1
        )
        await adapter.store_event("1", response(1, "first call"))
        # Its client resumed once: the stream's newest event is that resume's priming
        # event, which the drop deletes and so must not be handed to the new request.
        await adapter.store_event("1", None)
        await settled(adapter)
        await asyncio.wait_for(store.clearing.wait(), 10)  # the drop is under way
        primed = await adapter.store_event("1", None)  # a new request with id 1
        step = await adapter.store_event("1", progress(1))
        await settled(adapter)
        await asyncio.wait_for(store.cleared.wait(), 10)
        assert [e.id for e in await store.get_stream_events("s", "1")] == [primed, step]
        sent = Collector()
        assert await adapter.replay_events_after(primed, sent) == "1"
        assert [event.event_id for event in sent.sent] == [step]


@pytest.mark.parametrize("via_worker", [False, True])
async def test_a_replay_that_starts_while_its_stream_is_dropped_is_not_cut_short(
    via_worker: bool,
) -> None:
    store = SlowClearStore(0.3)
    async with PersistenceWorker(store) as worker:
        adapter = SessionEventStore(
            store, "s", worker=worker if via_worker else None, finished_stream_ttl=0.1
        )
        first = await adapter.store_event("1", progress(0))
        for n in range(1, 2 * REPLAY_PAGE):
            await adapter.store_event("1", progress(n))
        await adapter.store_event("1", response(1, "done"))
        await asyncio.wait_for(store.clearing.wait(), 10)  # the drop is under way
        sent: list[EventMessage] = []

        async def slow_client(event: EventMessage) -> None:
            sent.append(event)
            await asyncio.sleep(0.002)  # a page outlasts the clear

        # Too late to resume: nothing, rather than a first page and then a refusal.
        assert await adapter.replay_events_after(first, slow_client) is None
        assert sent == []


@pytest.mark.parametrize("via_worker", [False, True])
async def test_a_resume_whose_priming_event_is_reused_starts_the_wait_anew(
    via_worker: bool,
) -> None:
    store = InMemoryEventStore()
    async with PersistenceWorker(store) as worker:
        ttl = 600.0  # the timer's deadline is checked, not waited for
        adapter = SessionEventStore(
            store, "s", worker=worker if via_worker else None, finished_stream_ttl=ttl
        )
        await adapter.store_event("1", response(1, "done"))
        resumed = await adapter.store_event("1", None)  # a client that lost the response
        await settled(adapter)
        await asyncio.sleep(0.05)
        now = asyncio.get_running_loop().time()
        # The client drops again having missed nothing, and reconnects: the same cursor.
        assert await adapter.store_event("1", None) == resumed
        timer = adapter._finished["1"][1]
        assert timer.when() >= now + ttl  # not the first resume's deadline
