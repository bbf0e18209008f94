"""PostgreSQL: the order in which write transactions take head rows, and deadlocks.

Every append locks the head rows of its streams in one sorted order, so two writers
never wait for each other in a circle. A batch that goes the general way (an id repeated
in it, an id already stored, clears, cursor updates) used to lock only the heads that
existed and create the others later: it held head ``z`` while waiting to create head
``y``, which a concurrent append had just created and which then waited for ``z`` -- a
deadlock, seen as ``test_batches_retrying_the_same_ids_do_not_deadlock`` failing with
StoreUnavailableError (4 of 30 runs of its body on a fresh database). Deadlocks that
lock order cannot rule out are rerun by the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from eventstore import (
    ClearStream,
    DuplicateEventError,
    InvalidInputError,
    StoredEvent,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)
from eventstore.sql import postgresql


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _until_blocked_by(probe: asyncpg.Connection, pid: int) -> None:
    """Wait until some backend waits for a lock that backend ``pid`` holds."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting = await probe.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the store's transaction never waited for the other connection")


async def _append(conn: asyncpg.Connection, session_id: str, stream_id: str, event_id: str) -> Any:
    """One event appended by APPEND itself, as a concurrent store's fast path would."""
    now = 1_700_000_000_000
    return await conn.fetch(
        postgresql.APPEND,
        now,
        [session_id],
        [stream_id],
        [1],
        [session_id],
        [stream_id],
        [event_id],
        ["1"],
        [now],
        [0],
    )


async def test_a_general_batch_takes_the_heads_it_creates_in_sorted_order(
    postgres_url: str,
) -> None:
    async with open_store(postgres_url) as store:
        await store.store_event("D", "z", "seed", 0)  # head z exists, head y not yet
        other = await asyncpg.connect(_dsn(postgres_url))
        probe = await asyncpg.connect(_dsn(postgres_url))
        try:
            await other.execute("BEGIN")
            # A concurrent append has just created head y, the first in sorted order,
            # and has not committed yet.
            await _append(other, "D", "y", "other-1")
            # The store's batch repeats an id, so it goes the general way, to y and z.
            batch = [
                StoreEvent("D", "z", "e1", 1),
                StoreEvent("D", "z", "e1", 1),
                StoreEvent("D", "y", "e2", 2),
            ]
            applying = asyncio.create_task(store.apply(batch))
            await _until_blocked_by(probe, other.get_server_pid())
            # The other writer goes on to its next head, z: free, unless the store took
            # it before waiting for y -- the two would wait for each other forever.
            try:
                await other.execute(
                    "SELECT 1 FROM event_streams WHERE session_id = 'D' AND stream_id = 'z' "
                    "FOR UPDATE NOWAIT"
                )
                took_z = True
            except asyncpg.LockNotAvailableError:
                took_z = False
            await other.execute("COMMIT" if took_z else "ROLLBACK")
            results = await asyncio.wait_for(applying, 60)
        finally:
            await other.close()
            await probe.close()
        assert took_z, "the store locked head z before head y: out of order, a deadlock"
        assert [(r.stream_id, r.seq) for r in results if isinstance(r, StoredEvent)] == [
            ("z", 2),
            ("z", 2),
            ("y", 2),
        ]
        assert [e.id for e in await store.get_stream_events("D", "y")] == ["other-1", "e2"]


async def test_heads_claimed_for_a_general_batch_that_stay_empty_are_no_streams(
    sql_url: str,
) -> None:
    """The general way claims every head its batch names, creating missing ones: those
    that get no event (a clear, a cursor update, a refused or duplicate event) are gone
    at commit, and a cursor update on one fails as for a stream that does not exist."""
    async with open_store(sql_url) as store:
        await store.store_event("S", "a", "taken", 1)
        results = await store.apply(
            [
                ClearStream("S", "cleared"),
                UpdateLastEventId("S", "ghost", "x"),
                StoreEvent("S", "other", "taken", 2),  # "taken" is stored in stream a
                StoreEvent("S", "bad", "b1", {1, 2}),  # not JSON
                StoreEvent("S", "new", "n1", 3),
                UpdateLastEventId("S", "new", "n1"),
                StoreEvent("S", "new", "n1", 3),  # repeated: the general way
            ]
        )
        assert results[0] == 0
        assert isinstance(results[1], InvalidInputError)
        assert isinstance(results[2], DuplicateEventError)
        assert isinstance(results[3], InvalidInputError)
        assert isinstance(results[4], StoredEvent) and results[4].seq == 1
        assert results[5] is None
        assert results[4] == results[6]
        for stream in ("cleared", "ghost", "other", "bad"):
            assert await store.get_stream_info("S", stream) is None, stream
        assert await store.stream_count("S") == 2
        info = await store.get_stream_info("S", "new")
        assert info is not None
        assert (info.first_seq, info.last_seq, info.last_event_id) == (1, 1, "n1")


@pytest.mark.parametrize("way", ["appends only", "general"])
async def test_a_deadlock_is_rerun_and_no_caller_sees_it(
    postgres_url: str, way: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A deadlock the store's lock order cannot prevent (here another connection takes
    heads in the opposite order; also an id stored into two streams at once, a batch
    split into several statements): PostgreSQL fails one transaction, and the store
    reruns the batch rather than raise StoreUnavailableError."""
    async with open_store(postgres_url) as store:
        await store.apply([StoreEvent("D", "y", "seed-y", 0), StoreEvent("D", "z", "seed-z", 0)])
        other = await asyncpg.connect(_dsn(postgres_url))
        probe = await asyncpg.connect(_dsn(postgres_url))
        try:
            try:
                # Only the store's backend runs the deadlock check: it is the one failed.
                await other.execute("SET deadlock_timeout = '10min'")
            except asyncpg.InsufficientPrivilegeError:
                pytest.skip("the test server's user may not set deadlock_timeout")
            await other.execute("BEGIN")
            await other.execute(_LOCK_HEAD, "z")
            batch = [StoreEvent("D", "y", "e1", 1), StoreEvent("D", "z", "e2", 2)]
            if way == "general":
                batch.append(StoreEvent("D", "y", "e1", 1))  # a repeated id
            with caplog.at_level(logging.INFO, logger="eventstore.sql.store"):
                applying = asyncio.create_task(store.apply(batch))
                # The store holds y and waits for z; taking y closes the circle.
                await _until_blocked_by(probe, other.get_server_pid())
                await other.execute(_LOCK_HEAD, "y")
                await other.execute("COMMIT")
                results = await asyncio.wait_for(applying, 60)
        finally:
            await other.close()
            await probe.close()
        assert "deadlock with a concurrent writer, rerunning batch" in caplog.text
        assert [(r.stream_id, r.seq) for r in results if isinstance(r, StoredEvent)] == [
            ("y", 2),
            ("z", 2),
            *([("y", 2)] if way == "general" else []),
        ]


_LOCK_HEAD = "SELECT 1 FROM event_streams WHERE session_id = 'D' AND stream_id = $1 FOR UPDATE"
