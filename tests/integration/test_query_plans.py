"""Every statement the store runs on a busy SQLite file seeks an index; none scans a table.

SQLite quietly scans the whole table for some shapes (a row-value ``IN`` list was one: a
clear of one stream read every event of every session). The statements are captured as
the store sends them, with their parameters, and each is explained by SQLite itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from eventstore import SqlEventStore, StoreEvent, open_store
from eventstore.transfer.lookup import TargetLookup
from eventstore.transfer.staging import StagedEvent


@contextmanager
def _statements(store: SqlEventStore) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


def _scans(path: Path, statements: list[tuple[str, Any]]) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        found = []
        for statement, params in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
                continue
            plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params or ()).fetchall()
            found += [f"{row[-1]}  <-  {statement}" for row in plan if row[-1].startswith("SCAN")]
        return found
    finally:
        conn.close()


async def test_housekeeping_statements_seek_indexes(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    async with open_store(f"sqlite+aiosqlite:///{path}", max_events_per_stream=50) as store:
        assert isinstance(store, SqlEventStore)
        for session in range(20):
            await store.apply(
                [StoreEvent(f"s{session}", f"st{n % 3}", f"e{session}-{n}", n) for n in range(60)]
            )
        with _statements(store) as statements:
            await store.clear_stream("s1", "st0")
            await store.clear_session("s2")
            await store.touch_sessions(["s3", "s4"])
            await store.set_max_events_per_stream(10, session_id="s5", stream_id="st1")
            await store.prune_idle_sessions(60_000)
            await store.store_event("s6", "st0", "e6-0", 0)  # a retry: looked up
            await store.get_stream_info("s7", "st2")
            await store.stream_count("s8")
            held = await TargetLookup(store).held(
                [StagedEvent(n, "s9", "st0", None, 0, f"e9-{n}", str(n)) for n in range(5)]
            )
        assert len(held) == 5
        assert statements
        assert _scans(path, statements) == []
