"""A SQLite file deleted, moved or replaced under an open store: refused, nothing lost.

In WAL mode SQLite itself goes on writing to the inode it opened, and a write
acknowledged there is gone once the store closes. These tests move real files under a
real store and check that no write is acknowledged unless it is in the file at the path.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore import (
    ClearSession,
    PersistenceWorker,
    SqlEventStore,
    StoreEvent,
    StoreUnavailableError,
    UpdateLastEventId,
    open_store,
)

_SIDE_FILES = ("", "-wal", "-shm")


def _path(sqlite_url: str) -> Path:
    return Path(sqlite_url.removeprefix("sqlite+aiosqlite:///"))


def _move(source: Path, target: Path) -> None:
    """Move the database and its -wal and -shm files, as an operator's mv of all three."""
    for suffix in _SIDE_FILES:
        side = Path(f"{source}{suffix}")
        if side.exists():
            side.rename(f"{target}{suffix}")


def _delete(path: Path) -> None:
    for suffix in _SIDE_FILES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _replace_with_copy(path: Path) -> None:
    """Put a copy of the database (as it is now) in its place: another file, same data."""
    copy = path.with_name("copy.sqlite3")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    _move(path, path.with_name("old.sqlite3"))
    copy.rename(path)


def _event_ids(path: Path) -> list[str]:
    """The events in the file at ``path``, read with sqlite3 itself."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT event_id FROM events ORDER BY session_id, seq").fetchall()
    db.close()
    return [row[0] for row in rows]


_ACTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "deleted": (_delete, "was deleted or moved away"),
    "renamed": (
        lambda path: _move(path, path.with_name("moved.sqlite3")),
        "was deleted or moved away",
    ),
    "replaced": (_replace_with_copy, "was replaced by another file"),
}


@pytest.mark.parametrize("action", list(_ACTIONS))
async def test_every_write_and_read_is_refused_once_the_file_is_not_at_its_path(
    sqlite_url: str, action: str
) -> None:
    path = _path(sqlite_url)
    move, said = _ACTIONS[action]
    async with open_store(sqlite_url) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e0", 0)
        move(path)
        refused = f"database file {re.escape(repr(str(path)))} {said} while the store had it open"
        # The append on the driver, and each kind of write SQLAlchemy runs.
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.store_event("s", "a", "e1", 1)
        with pytest.raises(StoreUnavailableError, match=refused):
            # An id repeated: the general path, not the append on the driver.
            await store.apply([StoreEvent("s", "a", "e2", 2)] * 2)
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.apply([UpdateLastEventId("s", "a", "e0")])
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.apply([ClearSession("s")])
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.set_max_events_per_stream(1)
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.touch_sessions(["s"])
        # Reads neither: the file they would read is not the one at the path.
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.get_stream_events("s", "a")
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.get_events_after("s", "a", "e0")
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.get_stream_info("s", "a")
        # A connection opened now would open whatever is at the path, or create it.
        await store.engine.dispose()
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.store_event("s", "a", "e1", 1)
        with pytest.raises(StoreUnavailableError, match=refused):
            await store.get_stream_events("s", "a")
    if action == "replaced":
        assert _event_ids(path) == ["e0"]  # the copy: not written to either
        assert _event_ids(path.with_name("old.sqlite3")) == ["e0"]
    else:
        assert not path.exists()  # no empty database made in its place
    if action == "renamed":
        assert _event_ids(path.with_name("moved.sqlite3")) == ["e0"]


async def test_writes_go_through_again_once_the_file_is_moved_back(sqlite_url: str) -> None:
    path = _path(sqlite_url)
    moved = path.with_name("moved.sqlite3")
    async with open_store(sqlite_url) as store:
        assert isinstance(store, SqlEventStore)
        await store.store_event("s", "a", "e0", 0)
        _move(path, moved)
        with pytest.raises(StoreUnavailableError, match="was deleted or moved away"):
            await store.store_event("s", "a", "e1", 1)
        _move(moved, path)
        assert (await store.store_event("s", "a", "e1", 1)).seq == 2  # a pooled connection
        await store.engine.dispose()
        assert (await store.store_event("s", "a", "e2", 2)).seq == 3  # a new one
        assert [e.id for e in await store.get_stream_events("s", "a")] == ["e0", "e1", "e2"]
    assert _event_ids(path) == ["e0", "e1", "e2"]


async def test_a_workers_writes_fail_after_retry_timeout_and_none_is_lost(
    sqlite_url: str,
) -> None:
    path = _path(sqlite_url)
    async with open_store(sqlite_url) as store:
        async with PersistenceWorker(store, retry_timeout=1.0) as worker:
            acknowledged = [await (await worker.submit(StoreEvent("s", "a", "e0", 0)))]
            _delete(path)
            queued = [await worker.submit(StoreEvent("s", "a", f"e{i}", i)) for i in (1, 2, 3)]
            outcomes = await asyncio.gather(*queued, return_exceptions=True)
            assert worker.stats.retries > 0
        for outcome in outcomes:
            assert isinstance(outcome, StoreUnavailableError), outcome
            assert f"database file {str(path)!r} was deleted or moved away" in str(outcome)
        assert [e.id for e in acknowledged] == ["e0"]
    assert not path.exists()


async def test_a_worker_rides_out_a_file_moved_away_and_back(sqlite_url: str) -> None:
    path = _path(sqlite_url)
    moved = path.with_name("moved.sqlite3")
    async with open_store(sqlite_url) as store:
        async with PersistenceWorker(store, retry_timeout=60) as worker:
            await (await worker.submit(StoreEvent("s", "a", "e0", 0)))
            _move(path, moved)
            queued = await worker.submit(StoreEvent("s", "a", "e1", 1))
            for _ in range(200):
                if worker.stats.retries > 0:
                    break
                await asyncio.sleep(0.05)
            assert not queued.done() and worker.stats.retries > 0  # refused, retrying
            assert _event_ids(moved) == ["e0"]  # not written to the file moved away
            _move(moved, path)
            assert (await queued).seq == 2
    assert _event_ids(path) == ["e0", "e1"]
