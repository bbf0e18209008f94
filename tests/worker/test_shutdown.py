"""close(): everything queued commits; everything after is refused, clearly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from eventstore import (
    PersistenceWorker,
    SqlEventStore,
    StoreClosedError,
    StoredEvent,
    StoreEvent,
    open_store,
)


async def test_close_commits_ten_thousand_queued_requests(sql_url: str) -> None:
    async with open_store(sql_url) as store:
        worker = PersistenceWorker(store, max_queue=10_000)
        futures = [
            await worker.submit(StoreEvent("s", f"st{i % 50}", f"e{i}", i)) for i in range(10_000)
        ]
        # No await above let the worker run: all ten thousand wait in the queue.
        assert worker.stats.queued == 10_000 and worker.stats.committed == 0
        await worker.close()
        assert all(isinstance(f.result(), StoredEvent) for f in futures)
        assert worker.stats.committed == 10_000 and worker.stats.queued == 0
        for st in range(50):
            events = await store.get_stream_events("s", f"st{st}")
            assert [e.id for e in events] == [f"e{i}" for i in range(st, 10_000, 50)]
            assert [e.seq for e in events] == list(range(1, 201))


async def test_producers_blocked_on_a_full_queue_are_refused_at_close() -> None:
    store = await open_store("memory://")
    # max_delay keeps the three queued while the worker waits for a fuller batch.
    worker = PersistenceWorker(store, max_queue=3, max_delay=10)
    queued = [await worker.submit(StoreEvent("s", "a", f"e{i}", i)) for i in range(3)]
    blocked = [
        asyncio.create_task(worker.submit(StoreEvent("s", "a", f"late{i}", i))) for i in range(2)
    ]
    await asyncio.sleep(0)  # the blocked producers are now waiting for room
    await worker.close()
    for task in blocked:
        with pytest.raises(StoreClosedError):
            await task
    assert [f.result().seq for f in queued] == [1, 2, 3]
    assert [e.id for e in await store.get_stream_events("s", "a")] == ["e0", "e1", "e2"]


async def test_leaving_the_context_drains(sql_url: str) -> None:
    async with open_store(sql_url) as store:
        async with PersistenceWorker(store) as worker:
            futures = [await worker.submit(StoreEvent("s", "a", f"e{i}", i)) for i in range(500)]
        assert all(f.done() for f in futures)
        assert len(await store.get_stream_events("s", "a")) == 500


def test_loop_shutdown_fails_what_the_worker_did_not_commit() -> None:
    futures: list[asyncio.Future[StoredEvent]] = []

    async def forget_to_close() -> None:
        worker = PersistenceWorker(await open_store("memory://"), max_delay=10)
        futures.append(await worker.submit(StoreEvent("s", "a", "e1", 1)))

    # asyncio.run() cancels the worker's task, still waiting for a fuller batch.
    asyncio.run(forget_to_close())
    assert isinstance(futures[0].exception(), StoreClosedError)


async def test_a_cancelled_worker_releases_its_waiters(postgres_url: str) -> None:
    async with open_store(postgres_url) as store:
        assert isinstance(store, SqlEventStore)
        worker = PersistenceWorker(store)
        # Another connection holds the head rows' table: the worker's batch waits on it.
        # (On SQLite the cancelled BEGIN would stay queued on aiosqlite's thread.)
        async with store.engine.connect() as blocker, blocker.begin():
            await blocker.execute(text("LOCK TABLE event_streams IN EXCLUSIVE MODE"))
            future = await worker.submit(StoreEvent("s", "a", "e1", 1))
            reader = asyncio.create_task(worker.get_stream_events("s", "a"))
            await asyncio.sleep(0.2)
            assert worker.stats.committing == 1 and not reader.done()
            (task,) = [
                t for t in asyncio.all_tasks() if t.get_name() == "eventstore-persistence-worker"
            ]
            task.cancel()
            with pytest.raises(StoreClosedError):
                await future
            assert await asyncio.wait_for(reader, 1) == []
        stats = worker.stats
        assert (stats.submitted, stats.failed, stats.committing, stats.queued) == (1, 1, 0, 0)
        with pytest.raises(StoreClosedError):
            await worker.store_event("s", "a", "e2", 2)


async def test_store_closed_under_a_busy_worker_fails_the_rest_with_one_log_line(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = set(threading.enumerate())
    store = await open_store(sql_url)
    worker = PersistenceWorker(store, max_batch=50)
    futures = [await worker.submit(StoreEvent("s", f"st{i % 7}", f"e{i}", i)) for i in range(2_000)]
    await asyncio.sleep(0)
    with caplog.at_level("ERROR", logger="eventstore.worker"):
        await store.close()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        await worker.close()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert failed and all(isinstance(o, StoreClosedError) for o in failed)
    # Committed ones come first: the worker commits in order and stops at the close.
    assert all(isinstance(o, StoredEvent) for o in outcomes[: len(outcomes) - len(failed)])
    assert [r.getMessage() for r in caplog.records] == [
        "the store is closed; queued requests fail: this SqlEventStore is closed"
    ]
    stats = worker.stats
    assert (stats.committed, stats.failed) == (len(outcomes) - len(failed), len(failed))
    # The connection of the batch under way when the store closed was closed too, not
    # left open (on SQLite, with its driver thread) in the closed engine's pool.
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]


async def test_a_worker_cancelled_before_it_ever_ran_fails_what_was_queued() -> None:
    worker = PersistenceWorker(await open_store("memory://"))
    future = await worker.submit(StoreEvent("s", "a", "e1", 1))
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "eventstore-persistence-worker"]
    task.cancel()  # before its first step: its own cleanup never runs
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(future, 2)
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(worker.flush(), 2)
    assert worker.stats.failed == 1


def test_a_worker_left_from_an_ended_event_loop_closes_quietly() -> None:
    async def first_run() -> PersistenceWorker:
        worker = PersistenceWorker(await open_store("memory://"))
        await worker.store_event("s", "a", "e1", 1)
        return worker  # never closed: asyncio.run cancels its task

    worker = asyncio.run(first_run())

    async def second_run() -> None:
        with pytest.raises(StoreClosedError):
            await worker.store_event("s", "a", "e2", 2)
        await worker.close()

    asyncio.run(second_run())


def test_a_worker_left_unclosed_at_exit_says_so_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "forget.py"
    script.write_text(
        "import asyncio\n"
        "from eventstore import PersistenceWorker, StoreEvent, open_store\n"
        "async def main():\n"
        "    worker = PersistenceWorker(await open_store('memory://'), max_delay=10)\n"
        "    for i in range(50):\n"
        "        await worker.submit(StoreEvent('s', 'a', f'e{i}', i))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    # One line for the 50 lost requests, not a traceback for each of their futures.
    assert "never retrieved" not in done.stderr
    assert "Traceback" not in done.stderr
    assert "stopped with 50 request(s) unconfirmed" in done.stderr
