"""Multi-process concurrency on one PostgreSQL database and on one SQLite file.

Four OS processes run sixteen tasks each, all appending to the same six streams of one
session, while a fifth process replays and resumes every stream in a loop. Streams come
with three cap kinds: effectively unlimited (every event must survive), a small own cap
and the store-wide cap. Afterwards:

* per stream, the acknowledged seqs are exactly ``1..n``: none lost, none duplicated;
* what the stream retains is exactly the newest ``cap`` acknowledged events;
* the reader never saw a complete replay with a gap or more than the cap, never
  resumed into a gap, and lost a cursor only to a trim.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from eventstore import EventStore, StoreEvent, open_store
from tests.reliability.procs import (
    Ack,
    ReaderReport,
    StreamLayout,
    WriterReport,
    replay_continuously,
    write_events,
)

WRITERS = 4
TASKS = 16
STORE_CAP = 20
LAYOUT = StreamLayout(
    "shared-session",
    {
        "full-0": 10**9,
        "full-1": 10**9,
        "own-0": 5,
        "own-1": 5,
        "wide-0": STORE_CAP,
        "wide-1": STORE_CAP,
    },
)


async def _prepare(url: str) -> None:
    """Heads for every stream, the store-wide cap, and each stream's own cap."""
    async with open_store(url, max_events_per_stream=STORE_CAP) as store:
        for stream, cap in LAYOUT.caps.items():
            await store.store_event(LAYOUT.session_id, stream, f"seed-{stream}", None)
            if cap != STORE_CAP:
                await store.set_max_events_per_stream(
                    cap, session_id=LAYOUT.session_id, stream_id=stream
                )


async def _run_processes(
    url: str, per_task: int, stop: Path
) -> tuple[list[WriterReport], ReaderReport]:
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=WRITERS + 1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        reader = loop.run_in_executor(pool, replay_continuously, url, LAYOUT, str(stop))
        writers = [
            loop.run_in_executor(pool, write_events, url, LAYOUT, process, TASKS, per_task)
            for process in range(WRITERS)
        ]
        try:
            reports = await asyncio.gather(*writers)
        finally:
            await asyncio.to_thread(stop.touch)
        return list(reports), await reader


async def _check(
    url: str, per_task: int, writer_reports: list[WriterReport], reader: ReaderReport
) -> None:
    acks: dict[str, list[Ack]] = {stream: [] for stream in LAYOUT.streams}
    for report in writer_reports:
        for ack in report.acks:
            acks[ack.stream_id].append(ack)
    assert sum(map(len, acks.values())) == WRITERS * TASKS * per_task
    async with open_store(url) as store:
        for stream, cap in LAYOUT.caps.items():
            by_seq = sorted(acks[stream], key=lambda ack: ack.seq)
            seqs = [ack.seq for ack in by_seq]
            # Seq 1 is the seed; the writers' acknowledged seqs are exactly 2..n.
            assert seqs == list(range(2, len(seqs) + 2)), f"{stream}: lost or duplicated seqs"
            info = await store.get_stream_info(LAYOUT.session_id, stream)
            assert info is not None and info.last_seq == len(seqs) + 1
            kept = await store.get_stream_events(LAYOUT.session_id, stream)
            expected = by_seq[-cap:] if cap < len(by_seq) else by_seq
            if cap > len(by_seq):
                assert kept[0].id == f"seed-{stream}"
                kept = kept[1:]
            assert [(e.id, e.seq, e.data) for e in kept] == [
                (ack.event_id, ack.seq, ack.data) for ack in expected
            ], f"{stream}: retained events differ from the newest acknowledged ones"
        assert await store.stream_count(LAYOUT.session_id) == len(LAYOUT.caps)
    retries = sum(report.retries for report in writer_reports)
    assert reader.violations == [], f"{reader} (writers retried {retries} times)"
    # The reader really raced the writers: it replayed streams mid-growth and resumed.
    assert reader.partial_views > 0 and reader.resumes > 0


async def _scenario(url: str, per_task: int, tmp_path: Path) -> None:
    await _prepare(url)
    writer_reports, reader = await _run_processes(url, per_task, tmp_path / "stop")
    await _check(url, per_task, writer_reports, reader)


async def test_four_writer_processes_and_a_reader_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    await _scenario(postgres_url, 8, tmp_path)


async def test_four_writer_processes_and_a_reader_on_one_sqlite_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    await _scenario(sqlite_url, 8, tmp_path)


@pytest.mark.slow
async def test_many_writes_from_four_processes(sql_url: str, tmp_path: Path) -> None:
    await _scenario(sql_url, 80, tmp_path)


async def test_batches_retrying_the_same_ids_do_not_deadlock(sql_url: str) -> None:
    """Batches that repeat ids another batch stores at the same moment (retries racing
    each other) go the general way, whose statements lock heads as they go: in opposite
    orders, two of them deadlocked on PostgreSQL (1 call in 60, a second's stall each)."""

    async def batches(store: EventStore, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(150):
            shared = [rng.randrange(40) for _ in range(rng.randint(1, 5))]
            batch = [StoreEvent("D", "xyz"[n % 3], f"sh-{n}-{i // 20}", n) for n in shared]
            batch += [
                StoreEvent("D", rng.choice("xyz"), f"own-{seed}-{i}-{k}", 1)
                for k in range(rng.randint(0, 3))
            ]
            for outcome in await store.apply(batch):
                assert not isinstance(outcome, BaseException), outcome

    async with open_store(sql_url) as store:
        await asyncio.gather(*(batches(store, seed) for seed in range(4)))
        for stream in "xyz":
            seqs = [event.seq for event in await store.get_stream_events("D", stream)]
            assert seqs == list(range(1, len(seqs) + 1))
