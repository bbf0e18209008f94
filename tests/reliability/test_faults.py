"""Faults: PostgreSQL killed mid-write, SQLite on a full disk, an exhausted pool.

Every scenario ends with the same checks: every acknowledged event is present with the
seq it was acknowledged with, each stream's seqs are gap-free, nothing is duplicated,
and every error a caller saw was a :class:`~eventstore.errors.StoreUnavailableError`
(retrying is safe) with a message that says what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from eventstore import (
    ClearStream,
    EventStore,
    EventStoreError,
    SqlEventStore,
    StoreEvent,
    StoreUnavailableError,
    open_store,
)
from eventstore.transfer import export_events
from eventstore.transfer.exporter import CHUNK
from tests.pgcluster import PostgresCluster
from tests.reliability.procs import DiskFullReport, fill_disk_then_free


async def assert_consistent(store: EventStore, session: str, acked: dict[str, int]) -> None:
    """Every acknowledged event (event id -> seq) is stored once, at its seq, gap-free."""
    streams: dict[str, list[int]] = {}
    found: dict[str, int] = {}
    for stream in {event_id.split("/")[0] for event_id in acked}:
        events = await store.get_stream_events(session, stream)
        streams[stream] = [e.seq for e in events]
        found.update((e.id, e.seq) for e in events)
    for stream, seqs in streams.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{stream}: seqs have a gap"
    assert found == acked


def assert_clear(errors: list[BaseException]) -> None:
    for error in errors:
        assert isinstance(error, StoreUnavailableError), repr(error)
        message = str(error)
        assert message.startswith(("database", "cannot")), message


# -- PostgreSQL killed and restarted -------------------------------------------------------


async def _write_until_done(
    store: EventStore,
    task: int,
    count: int,
    acked: dict[str, int],
    errors: list[BaseException],
    deadline: float,
) -> None:
    loop = asyncio.get_running_loop()
    stream = f"st{task % 4}"
    for index in range(count):
        event_id = f"{stream}/{task}-{index}"
        while True:
            try:
                stored = await store.store_event("s", stream, event_id, {"i": index})
                break
            except StoreUnavailableError as exc:
                errors.append(exc)
                assert loop.time() < deadline, f"still failing after the restart: {exc}"
                await asyncio.sleep(0.05)
        acked[event_id] = stored.seq


async def _crash_scenario(cluster: PostgresCluster, kills: int, per_task: int) -> None:
    url = await asyncio.to_thread(cluster.create_database)
    acked: dict[str, int] = {}
    errors: list[BaseException] = []
    async with open_store(url) as store:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60 + 30 * kills
        writers = [
            asyncio.create_task(_write_until_done(store, task, per_task, acked, errors, deadline))
            for task in range(12)
        ]
        for kill in range(1, kills + 1):
            # Kill at evenly spread points of the run, while every writer is mid-stream.
            while len(acked) < kill * 12 * per_task // (kills + 1):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.to_thread(cluster.kill)
            # Calls during the outage fail fast with the retryable error, not a driver one.
            with pytest.raises(StoreUnavailableError) as outage:
                await store.get_stream_events("s", "st0")
            errors.append(outage.value)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.start)
        await asyncio.gather(*writers)
        assert len(acked) == 12 * per_task
        # Writers hit the outage, retried with the same ids, and nothing doubled.
        assert len(errors) > kills
        assert_clear(errors)
        await assert_consistent(store, "s", acked)


async def _read_until(
    store: EventStore, stop: asyncio.Event, errors: list[BaseException], general: bool
) -> None:
    while not stop.is_set():
        try:
            if general:
                # SQLAlchemy's own statements, not the driver paths.
                await store.stream_count("s")
                await store.apply([ClearStream("s", "never-written")])
            else:
                await store.get_stream_events("s", "st0", limit=10)
        except EventStoreError as exc:  # anything but StoreUnavailableError fails below
            errors.append(exc)
            await asyncio.sleep(0.01)


async def test_fast_restarts_under_readers_and_writers(
    own_postgres_cluster: PostgresCluster,
) -> None:
    # A fast shutdown ends sessions mid-reply; asyncpg can keep such a connection open but
    # stuck ("another operation is in progress"). Readers must see that as retryable too.
    url = await asyncio.to_thread(own_postgres_cluster.create_database)
    acked: dict[str, int] = {}
    errors: list[BaseException] = []
    async with open_store(url) as store:
        deadline = asyncio.get_running_loop().time() + 120
        writers = [
            asyncio.create_task(_write_until_done(store, task, 400, acked, errors, deadline))
            for task in range(12)
        ]
        stop = asyncio.Event()
        readers = [
            asyncio.create_task(_read_until(store, stop, errors, general))
            for general in (False, False, True, True)
        ]
        for _ in range(3):
            await asyncio.sleep(0.7)
            await asyncio.to_thread(own_postgres_cluster.stop, "fast")
            await asyncio.to_thread(own_postgres_cluster.start)
        await asyncio.gather(*writers)
        stop.set()
        await asyncio.gather(*readers)
        assert errors, "no call saw the restarts"
        assert_clear(errors)
        await assert_consistent(store, "s", acked)


class _StopsTheServer(io.BytesIO):
    """An export's output that shuts the server down (fast) once the first chunk is in."""

    def __init__(self, cluster: PostgresCluster) -> None:
        super().__init__()
        self.cluster = cluster

    def write(self, data: Any) -> int:
        if not self.tell():
            self.cluster.stop("fast")  # runs in the export's writer thread
        return super().write(data)


async def test_an_export_cut_off_by_a_shutdown_names_the_outage(
    own_postgres_cluster: PostgresCluster,
) -> None:
    url = await asyncio.to_thread(own_postgres_cluster.create_database)
    async with open_store(url) as store:
        await store.apply(
            [StoreEvent("s", f"st{i % 7}", f"e{i}", {"i": i}) for i in range(3 * CHUNK)]
        )
        try:
            with pytest.raises(StoreUnavailableError) as raised:
                await export_events(store, _StopsTheServer(own_postgres_cluster))
        finally:
            await asyncio.to_thread(own_postgres_cluster.start)
    message = str(raised.value)
    assert message.startswith("export failed: "), message
    # What failed, not the rollback on the way out that failed after it.
    assert "connection" in message and "rollback" not in message, message


async def test_postgresql_killed_and_restarted_mid_write(
    own_postgres_cluster: PostgresCluster,
) -> None:
    await _crash_scenario(own_postgres_cluster, kills=1, per_task=60)


@pytest.mark.slow
async def test_postgresql_killed_again_and_again(own_postgres_cluster: PostgresCluster) -> None:
    await _crash_scenario(own_postgres_cluster, kills=5, per_task=300)


# -- SQLite on a full disk -----------------------------------------------------------------


def _check_sqlite_file(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def _verify_disk_full_report(url: str, report: DiskFullReport) -> None:
    assert report.acked, "nothing fit before the limit: the limit is too small to test"
    assert len(report.refused) == 20
    assert sorted(report.acked_after_space_freed) == sorted(report.refused)
    for message in report.errors:
        assert message.startswith("StoreUnavailableError: database"), message
        assert "full" in message or "I/O" in message, message
    async with open_store(url) as store:
        events = await store.get_stream_events("s", "a")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.id for e in events] == report.acked + report.acked_after_space_freed


async def test_sqlite_file_size_limit_then_lifted(sqlite_url: str) -> None:
    """``ulimit -f`` in a child process: works without privileges."""
    path = Path(sqlite_url.split("///", 1)[1])
    async with open_store(sqlite_url):
        pass  # the schema exists before the limit applies
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        report = await loop.run_in_executor(
            pool, fill_disk_then_free, sqlite_url, 512 * 1024, 8 * 1024
        )
    await _verify_disk_full_report(sqlite_url, report)
    _check_sqlite_file(path)


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only; CI runs as root)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the ulimit variant covers this case")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_sqlite_on_a_full_filesystem_then_space_freed(tiny_filesystem: Path) -> None:
    url = f"sqlite+aiosqlite:///{tiny_filesystem}/events.sqlite3"
    ballast = tiny_filesystem / "ballast"
    report = DiskFullReport()
    async with open_store(url) as store:
        free = os.statvfs(tiny_filesystem).f_bavail * os.statvfs(tiny_filesystem).f_frsize
        await asyncio.to_thread(ballast.write_bytes, b"\0" * (free - 256 * 1024))
        index = 0
        while len(report.refused) < 20:
            event_id = f"e{index}"
            index += 1
            try:
                await store.store_event("s", "a", event_id, "x" * 8192)
                report.acked.append(event_id)
            except EventStoreError as exc:
                report.refused.append(event_id)
                report.errors.append(f"{type(exc).__name__}: {exc}")
            assert index < 10_000, "the filesystem never filled up"
        await asyncio.to_thread(ballast.unlink)
        for event_id in report.refused:
            await store.store_event("s", "a", event_id, "x" * 8192)
            report.acked_after_space_freed.append(event_id)
    await _verify_disk_full_report(url, report)
    _check_sqlite_file(tiny_filesystem / "events.sqlite3")


# -- the connection pool exhausted ---------------------------------------------------------


@pytest.fixture
async def small_pool_store(sql_url: str) -> AsyncIterator[EventStore]:
    async with open_store(sql_url, pool_size=2, max_overflow=0) as store:
        yield store


async def test_more_tasks_than_connections_all_get_through(
    small_pool_store: EventStore,
) -> None:
    """64 writers and 8 readers on two pooled connections: they queue, none fails."""
    acked: dict[str, int] = {}
    errors: list[BaseException] = []
    deadline = asyncio.get_running_loop().time() + 120

    async def read(stream: str) -> None:
        for _ in range(20):
            events = await small_pool_store.get_stream_events("s", stream)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))

    await asyncio.gather(
        *(
            _write_until_done(small_pool_store, task, 10, acked, errors, deadline)
            for task in range(64)
        ),
        *(read(f"st{task % 4}") for task in range(8)),
    )
    assert errors == []
    assert len(acked) == 640
    await assert_consistent(small_pool_store, "s", acked)


async def test_a_pool_timeout_is_a_clear_retryable_error(sql_url: str) -> None:
    """No connection free within ``pool_timeout``: StoreUnavailableError, nothing written."""
    async with open_store(sql_url, pool_size=1, max_overflow=0, pool_timeout=0.2) as store:
        await store.store_event("s", "a", "a/0", 0)
        assert isinstance(store, SqlEventStore)
        async with store.engine.connect() as hog:
            await hog.execute(text("SELECT 1"))
            calls = [
                store.store_event("s", "a", "a/1", 1),
                store.get_stream_events("s", "a"),
                store.get_events_after("s", "a", "a/0"),
                store.stream_count("s"),
                store.get_stream_info("s", "a"),
                store.clear_stream("s", "a"),
                store.set_max_events_per_stream(5),
                store.get_max_events_per_stream(),
                store.prune_idle_sessions(0),
            ]
            errors: list[BaseException] = []
            for call in calls:
                with pytest.raises(StoreUnavailableError) as raised:
                    await call
                errors.append(raised.value)
        assert_clear(errors)
        assert "pool" in str(errors[0])
        # The connection is back: the same write now succeeds, and nothing was lost.
        assert (await store.store_event("s", "a", "a/1", 1)).seq == 2
        await assert_consistent(store, "s", {"a/0": 1, "a/1": 2})


async def test_reads_recover_after_a_postgresql_restart(
    own_postgres_cluster: PostgresCluster,
) -> None:
    """Replays run on the driver itself; a restart still costs at most one failed read.

    No pings (``pool_pre_ping=False``), so the pool hands out the dead connections and
    the failed read must retire all of them, as SQLAlchemy does on its own statements.
    """
    url = await asyncio.to_thread(own_postgres_cluster.create_database)
    async with open_store(url, pool_pre_ping=False) as store:
        for index in range(3):
            await store.store_event("s", "a", f"e{index}", index)
        # Several pooled connections, all of them dead once the server restarts.
        await asyncio.gather(*(store.get_events_after("s", "a", "e0") for _ in range(4)))
        await asyncio.to_thread(own_postgres_cluster.kill)
        await asyncio.to_thread(own_postgres_cluster.start)
        outcomes: list[object] = []
        for _ in range(4):
            try:
                outcomes.append([e.id for e in await store.get_events_after("s", "a", "e0")])
            except StoreUnavailableError as exc:
                outcomes.append(exc)
        assert sum(isinstance(o, StoreUnavailableError) for o in outcomes) <= 1, outcomes
        assert outcomes[-2:] == [["e1", "e2"], ["e1", "e2"]]
