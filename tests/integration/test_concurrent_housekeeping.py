"""Clears, pruning, touches and cap changes while other connections keep appending.

Each operation that changes a stream's events must do it under that stream's head row
lock, as appends do; otherwise (found on PostgreSQL) a clear leaves rows a writer
committed meanwhile behind a restarted head, a store-wide cap change moves ``first_seq``
past rows it never deleted (a replay with a gap that looks complete), and a prune leaves
orphan rows that make the stream unwritable. After the storm every stream must hold
exactly the events ``first_seq..last_seq`` of its head, within the cap, and nothing may
lie outside a head.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from sqlalchemy import text

from eventstore import EventStoreError, SqlEventStore, StoreEvent, open_store

STREAMS = [(session, f"st{n}") for session in ("a", "b") for n in range(6)]
SECONDS = 3.0


async def _consistency(store: SqlEventStore) -> list[str]:
    """Every way the heads and the event rows disagree."""
    problems = []
    async with store.engine.connect() as conn:
        heads = {
            (row.session_id, row.stream_id): row
            for row in await conn.execute(
                text("SELECT session_id, stream_id, first_seq, last_seq FROM event_streams")
            )
        }
        held: dict[tuple[str, str], list[int]] = {}
        for session_id, stream_id, seq in await conn.execute(
            text("SELECT session_id, stream_id, seq FROM events ORDER BY 1, 2, 3")
        ):
            held.setdefault((session_id, stream_id), []).append(seq)
    for key, seqs in held.items():
        head = heads.get(key)
        if head is None:
            problems.append(f"{key}: {len(seqs)} rows without a head")
        elif seqs != list(range(head.first_seq, head.last_seq + 1)):
            problems.append(
                f"{key}: holds {seqs[:3]}..{seqs[-3:]}, head says {head.first_seq}..{head.last_seq}"
            )
    for key, head in heads.items():
        if key not in held and head.first_seq <= head.last_seq:
            problems.append(f"{key}: head says {head.first_seq}..{head.last_seq}, holds nothing")
    return problems


async def test_housekeeping_while_writers_append(sql_url: str) -> None:
    writers = await open_store(sql_url)
    keeper = await open_store(sql_url)  # another replica's connection pool
    assert isinstance(writers, SqlEventStore)
    stop = asyncio.Event()
    errors: list[str] = []
    appended = 0
    ids = itertools.count()

    async def writer(task: int) -> None:
        nonlocal appended
        for round_ in itertools.count():
            if stop.is_set():
                return
            batch = [
                StoreEvent(session, stream, f"w{task}-{next(ids)}", {"t": task, "r": round_})
                for session, stream in STREAMS[task % 4 :: 3]
            ]
            try:
                results = await writers.apply(batch)
            except EventStoreError as exc:
                errors.append(f"writer: {exc}")
                continue
            errors.extend(f"writer: {r}" for r in results if isinstance(r, EventStoreError))
            appended += len(batch)

    async def housekeeper() -> None:
        chores: list[Any] = [
            lambda: keeper.clear_stream("a", "st1"),
            lambda: keeper.set_max_events_per_stream(3),
            lambda: keeper.clear_session("b"),
            lambda: keeper.touch_sessions(["a", "b"]),
            lambda: keeper.set_max_events_per_stream(None),
            lambda: keeper.prune_idle_sessions(0),
            lambda: keeper.set_max_events_per_stream(2, session_id="a", stream_id="st0"),
            lambda: keeper.set_max_events_per_stream(5),
        ]
        for chore in itertools.cycle(chores):
            if stop.is_set():
                return
            try:
                await chore()
            except EventStoreError as exc:
                # The per-stream cap of a stream just cleared: expected, not a fault.
                if "does not exist" not in str(exc):
                    errors.append(f"housekeeper: {exc}")
            await asyncio.sleep(0.01)

    try:
        tasks = [asyncio.create_task(writer(t)) for t in range(6)]
        tasks.append(asyncio.create_task(housekeeper()))
        await asyncio.sleep(SECONDS)
        stop.set()
        await asyncio.gather(*tasks)
        assert errors == []
        assert appended > 200
        assert await _consistency(writers) == []
        cap = await writers.get_max_events_per_stream()
        for session, stream in STREAMS:
            events = await writers.get_stream_events(session, stream)
            info = await writers.get_stream_info(session, stream)
            limit = cap if info is None or info.max_events is None else info.max_events
            assert limit is None or len(events) <= limit, (session, stream, limit, len(events))
            if events:
                after = await writers.get_events_after(session, stream, events[0].id)
                assert [e.seq for e in after] == [e.seq for e in events[1:]]
        # Every stream is still writable, at the seq its head says comes next.
        for session, stream in STREAMS:
            info = await writers.get_stream_info(session, stream)
            stored = await writers.store_event(session, stream, f"last-{session}-{stream}", 0)
            assert stored.seq == (0 if info is None else info.last_seq) + 1
    finally:
        await writers.close()
        await keeper.close()
