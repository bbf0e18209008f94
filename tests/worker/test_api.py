"""The worker's contract on one store: results, barriers, ordering, errors, lifecycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from eventstore import (
    ClearSession,
    ClearStream,
    DuplicateEventError,
    EventStore,
    Flush,
    InvalidInputError,
    PersistenceWorker,
    StoreClosedError,
    StoredEvent,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(store_url) as store:
        yield store


async def test_each_request_resolves_to_its_own_result(store: EventStore) -> None:
    async with PersistenceWorker(store) as worker:
        first = await worker.submit(StoreEvent("s", "a", "e1", {"n": 1}))
        second = await worker.submit(StoreEvent("s", "a", "e2", {"n": 2}))
        ack = await worker.submit(UpdateLastEventId("s", "a", "e1"))
        other = await worker.submit(StoreEvent("s", "b", "e3", [1, 2]))
        cleared = await worker.submit(ClearStream("s", "b"))
        barrier = await worker.submit(Flush())
        assert await barrier is None
        assert all(f.done() for f in (first, second, ack, other, cleared))
        stored = await first
        assert isinstance(stored, StoredEvent)
        assert (stored.id, stored.seq, stored.data) == ("e1", 1, {"n": 1})
        assert (await second).seq == 2
        assert await ack is None
        assert await cleared == 1
    info = await store.get_stream_info("s", "a")
    assert info is not None and info.last_event_id == "e1"
    assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1", "e2"]
    assert await store.get_stream_events("s", "b") == []


async def test_convenience_coroutines_wait_for_the_commit(store: EventStore) -> None:
    async with PersistenceWorker(store) as worker:
        stored = await worker.store_event("s", "a", "e1", "x")
        assert stored.seq == 1
        # Committed: the store itself, not only the worker, sees it.
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1"]
        await worker.update_last_event_id("s", "a", "e1")
        info = await store.get_stream_info("s", "a")
        assert info is not None and info.last_event_id == "e1"
        await worker.store_event("s", "b", "e2", "y")
        assert await worker.clear_stream("s", "a") == 1
        assert await worker.clear_session("s") == 1
        assert await store.stream_count("s") == 0


async def test_order_within_one_batch_respects_clears(store: EventStore) -> None:
    worker = PersistenceWorker(store, max_delay=0.05)
    # No await between the submits that could let the worker run: one batch.
    futures = [
        await worker.submit(StoreEvent("s", "a", "a1", 1)),
        await worker.submit(StoreEvent("s", "a", "a2", 2)),
        await worker.submit(ClearStream("s", "a")),
        await worker.submit(StoreEvent("s", "a", "a3", 3)),
        await worker.submit(StoreEvent("s", "b", "b1", 1)),
        await worker.submit(ClearSession("s")),
        await worker.submit(StoreEvent("s", "b", "b2", 2)),
    ]
    await worker.close()
    assert worker.stats.batches == 1
    results = [f.result() for f in futures]
    assert [r.seq for r in results if isinstance(r, StoredEvent)] == [1, 2, 1, 1, 1]
    assert results[2] == 2 and results[5] == 2
    assert await store.get_stream_events("s", "a") == []
    assert [(e.id, e.seq) for e in await store.get_stream_events("s", "b")] == [("b2", 1)]


async def test_a_failing_request_fails_alone(store: EventStore) -> None:
    async with PersistenceWorker(store, max_delay=0.05) as worker:
        await worker.store_event("s", "a", "taken", {"v": 1})
        futures = [
            await worker.submit(StoreEvent("s", "a", "e1", 1)),
            await worker.submit(StoreEvent("s", "a", "taken", {"v": 2})),
            await worker.submit(StoreEvent("s", "a", "bad-data", {1, 2})),
            await worker.submit(UpdateLastEventId("s", "missing", "e1")),
            await worker.submit(StoreEvent("s", "a", "e2", 2)),
        ]
        await worker.flush()
    with pytest.raises(DuplicateEventError):
        futures[1].result()
    with pytest.raises(InvalidInputError):
        futures[2].result()
    with pytest.raises(InvalidInputError):
        futures[3].result()
    assert [e.id for e in await store.get_stream_events("s", "a")] == ["taken", "e1", "e2"]
    assert (await store.get_stream_events("s", "a"))[0].data == {"v": 1}
    assert worker.stats.failed == 3


@pytest.mark.parametrize(
    "request_",
    [
        "not a request",
        StoreEvent("", "a", "e", 1),
        StoreEvent("s", "a", ["unhashable"], 1),  # type: ignore[arg-type]
        ClearStream("s", " "),
        ClearSession(None),  # type: ignore[arg-type]
    ],
)
async def test_malformed_requests_are_refused_before_queueing(request_: Any) -> None:
    async with PersistenceWorker(await open_store("memory://")) as worker:
        with pytest.raises(InvalidInputError):
            await worker.submit(request_)
        assert worker.stats.submitted == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_queue": 0},
        {"max_batch": 0},
        {"max_batch": 10**6},
        {"max_delay": -1},
        {"retry_timeout": "soon"},
        {"max_queue": True},
        # A batch that never stops waiting to fill, or a comparison that is always false.
        {"max_delay": float("inf")},
        {"max_delay": float("nan")},
        {"retry_timeout": float("inf")},
        # Backoff that never waits, or whose ceiling is below its floor.
        {"retry_initial": 0},
        {"retry_initial": 1.0, "retry_max": 0.5},
    ],
)
async def test_bad_options_are_clear_errors(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(options))):
        PersistenceWorker(await open_store("memory://"), **options)


@pytest.mark.parametrize("store", ["memory://", None, object()])
def test_the_store_must_be_an_event_store(store: object) -> None:
    with pytest.raises(InvalidInputError, match="store must be an EventStore"):
        PersistenceWorker(store)  # type: ignore[arg-type]


async def test_requests_after_close_are_refused() -> None:
    store = await open_store("memory://")
    worker = PersistenceWorker(store)
    await worker.store_event("s", "a", "e1", 1)
    await worker.close()
    await worker.close()  # idempotent
    with pytest.raises(StoreClosedError):
        await worker.store_event("s", "a", "e2", 2)
    with pytest.raises(StoreClosedError):
        await worker.flush()
    assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1"]


async def test_reads_through_the_worker_see_queued_writes(store: EventStore) -> None:
    async with PersistenceWorker(store, max_delay=0.2) as worker:
        await worker.store_event("s", "a", "e0", 0)
        for i in range(1, 4):
            await worker.submit(StoreEvent("s", "a", f"e{i}", i))
        # Still queued (max_delay holds the batch), yet the read sees them.
        assert [e.id for e in await worker.get_events_after("s", "a", "e0")] == ["e1", "e2", "e3"]
        await worker.submit(ClearStream("s", "a"))
        assert await worker.get_stream_events("s", "a") == []
        await worker.submit(StoreEvent("s", "b", "b1", 1))
        await worker.submit(ClearSession("s"))
        assert await worker.get_stream_events("s", "b") == []


async def test_cancelled_callers_leave_the_worker_whole(store: EventStore) -> None:
    async with PersistenceWorker(store, max_queue=8, max_batch=4) as worker:
        accepted: list[str] = []

        async def producer(p: int) -> None:
            for i in range(50):
                future = await worker.submit(StoreEvent("s", f"st{p % 3}", f"p{p}-{i}", i))
                accepted.append(f"p{p}-{i}")
                await future

        tasks = [asyncio.create_task(producer(p)) for p in range(12)]
        await asyncio.sleep(0.05)
        for task in tasks[::2]:
            task.cancel()  # mid-submit (queue full) or mid-wait for durability
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.flush()
        stored = [e for st in range(3) for e in await store.get_stream_events("s", f"st{st}")]
        # Every request whose submit returned was committed, cancelled caller or not.
        assert sorted(e.id for e in stored) == sorted(accepted)
        for st in range(3):
            seqs = [e.seq for e in await store.get_stream_events("s", f"st{st}")]
            assert seqs == list(range(1, len(seqs) + 1))
        assert (await worker.store_event("s", "after", "x", 1)).seq == 1


async def test_cancelling_a_future_does_not_withdraw_its_request(store: EventStore) -> None:
    async with PersistenceWorker(store, max_delay=0.05) as worker:
        future = await worker.submit(StoreEvent("s", "a", "e1", 1))
        future.cancel()
        await worker.flush()
        assert (await worker.store_event("s", "a", "e2", 2)).seq == 2
    assert [e.id for e in await store.get_stream_events("s", "a")] == ["e1", "e2"]


async def test_stats_count_what_happened() -> None:
    async with PersistenceWorker(await open_store("memory://"), max_delay=0.05) as worker:
        futures = [await worker.submit(StoreEvent("s", "a", f"e{i}", i)) for i in range(10)]
        assert worker.stats.queued == 10
        await asyncio.gather(*futures)
        stats = worker.stats
    assert (stats.submitted, stats.committed, stats.failed, stats.queued) == (10, 10, 0, 0)
    assert stats.batches == 1 and stats.largest_batch == 10 and stats.mean_batch_size == 10
    assert stats.queue_high_water == 10 and stats.max_queue == 10_000
    assert 0 < stats.commit_seconds_p50 <= stats.commit_seconds_p99 <= stats.commit_seconds_max


async def test_a_flush_or_a_read_does_not_wait_out_max_delay() -> None:
    async with PersistenceWorker(await open_store("memory://"), max_delay=3.0) as worker:
        waits: list[Callable[[], Awaitable[object]]] = [
            worker.flush,
            lambda: worker.get_stream_events("s", "a"),
            lambda: worker.get_events_after("s", "a", "e1"),
        ]
        for number, wait in enumerate(waits, start=1):
            await worker.submit(StoreEvent("s", "a", f"e{number}", number))
            started = time.monotonic()
            await wait()
            assert time.monotonic() - started < 1.0
        # Producers alone still wait for a fuller batch (the point of max_delay).
        started = time.monotonic()
        stored = await asyncio.gather(*[worker.store_event("s", "b", f"b{i}", i) for i in range(3)])
        assert time.monotonic() - started >= 2.9
        assert worker.stats.largest_batch >= 3 and [e.seq for e in stored] == [1, 2, 3]
