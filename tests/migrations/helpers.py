"""Helpers of the migration tests: Alembic commands, legacy rows, reading the schema back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from eventstore.cli import main
from eventstore.migrations import SCRIPT_LOCATION
from eventstore.sql.engine import create_engine, normalize_url

ROOT = Path(__file__).resolve().parents[2]

#: How the pre-stream store appended an event: no stream, no seq.
LEGACY_INSERT = (
    "INSERT INTO events (session_id, event_id, data, timestamp) "
    "VALUES (:session_id, :event_id, :data, :timestamp)"
)

#: A legacy row as the tests write it: (session_id, event_id, data JSON text, timestamp).
LegacyRow = tuple[str, str, str, int]


def alembic_config(url: str, **options: object) -> Config:
    """An Alembic config of the history, as an application would build one."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["url"] = url
    config.attributes["eventstore_options"] = options
    return config


async def alembic(url: str, action: str, revision: str, **options: object) -> None:
    """``alembic upgrade|downgrade|stamp REVISION`` (in a thread: env.py runs its own loop)."""
    run = getattr(command, action)
    await asyncio.to_thread(run, alembic_config(url, **options), revision)


def engine(url: str) -> AsyncEngine:
    return create_engine(url, poolclass=NullPool)


async def execute(url: str, statement: str, rows: Sequence[dict[str, Any]] = ()) -> None:
    db = engine(url)
    try:
        async with db.begin() as conn:
            await conn.execute(text(statement), list(rows) or None)
    finally:
        await db.dispose()


async def query(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    db = engine(url)
    try:
        async with db.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(statement), params)]
    finally:
        await db.dispose()


async def insert_legacy(url: str, rows: Iterable[tuple[str, str, str, float]]) -> None:
    """Append rows the way the pre-stream store did."""
    await execute(
        url,
        LEGACY_INSERT,
        [{"session_id": s, "event_id": e, "data": d, "timestamp": t} for s, e, d, t in rows],
    )


async def create_unversioned_legacy(
    url: str,
    rows: Iterable[tuple[str, str, str, float]] = (),
    *,
    index: bool = True,
    timestamp_type: str = "BIGINT",
    data_type: str = "TEXT",
    nullable: bool = False,
) -> None:
    """A legacy database as the pre-stream store left it: its table, no Alembic history.

    Legacy stores varied: ``index=False`` leaves out ``ix_events_session_id``,
    ``timestamp_type`` may be ``REAL``/``DOUBLE PRECISION`` (with fractional values),
    ``data_type`` ``JSON``/``JSONB`` (PostgreSQL), and ``nullable=True`` declares the
    columns without ``NOT NULL``.
    """
    serial = "SERIAL" if url.startswith("postgresql") else "INTEGER"
    required = "" if nullable else " NOT NULL"
    await execute(
        url,
        f"CREATE TABLE events (id {serial} PRIMARY KEY, session_id TEXT{required}, "
        f"event_id TEXT{required}, data {data_type}{required}, "
        f"timestamp {timestamp_type}{required})",
    )
    if index:
        await execute(url, "CREATE INDEX ix_events_session_id ON events (session_id)")
    rows = list(rows)
    if rows:
        await insert_legacy(url, rows)


async def seed_generated(url: str, sessions: int, per_session: int) -> None:
    """Many legacy rows, written set-based by the database itself."""
    total = sessions * per_session
    if url.startswith("postgresql"):
        statement = (
            "INSERT INTO events (session_id, event_id, data, timestamp) "
            "SELECT 's' || (g % :sessions), 'e' || g, '{\"n\":' || g || '}', 1000000 + g "
            "FROM generate_series(1, :total) AS g"
        )
    else:
        statement = (
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :total) "
            "INSERT INTO events (session_id, event_id, data, timestamp) "
            "SELECT 's' || (n % :sessions), 'e' || n, '{\"n\":' || n || '}', 1000000 + n FROM g"
        )
    db = engine(url)
    try:
        async with db.begin() as conn:
            await conn.execute(text(statement), {"sessions": sessions, "total": total})
    finally:
        await db.dispose()


async def events_rows(url: str) -> list[tuple[Any, ...]]:
    """Every event row: (id, session_id, stream_id, seq, event_id, data, timestamp)."""
    return await query(
        url,
        "SELECT id, session_id, stream_id, seq, event_id, data, timestamp FROM events ORDER BY id",
    )


async def assert_numbered_in_order(url: str) -> None:
    """Every stream's seq is 1..n in (timestamp, id) order, and its head row says n."""
    rows = await events_rows(url)
    streams: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in rows:
        streams.setdefault((row[1], row[2]), []).append(row)
    heads = {
        (s, st): (last, first)
        for s, st, last, first in await query(
            url, "SELECT session_id, stream_id, last_seq, first_seq FROM event_streams"
        )
    }
    assert set(heads) == set(streams)
    for key, members in streams.items():
        in_time = sorted(members, key=lambda r: (r[6], r[0]))
        assert [r[3] for r in in_time] == list(range(1, len(members) + 1)), key
        assert heads[key] == (len(members), 1), key


async def schema_objects(url: str) -> dict[str, list[str]]:
    """Indexes, triggers and functions of the store, by kind (for before/after checks)."""
    if url.startswith("postgresql"):
        indexes = await query(
            url,
            "SELECT c.relname || CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = 'events' ORDER BY 1",
        )
        triggers = await query(
            url,
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('events') "
            "AND NOT tgisinternal ORDER BY 1",
        )
        functions = await query(
            url, "SELECT proname FROM pg_proc WHERE proname LIKE 'eventstore%' ORDER BY 1"
        )
    else:
        indexes = await query(
            url,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
            "AND sql IS NOT NULL ORDER BY 1",
        )
        triggers = await query(
            url, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1"
        )
        functions = []
    return {
        "indexes": [r[0] for r in indexes],
        "triggers": [r[0] for r in triggers],
        "functions": [r[0] for r in functions],
    }


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``eventstore ARGS`` in its own process (so a test can kill it)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from eventstore.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL, as a crash or an OOM kill would end it."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


async def wait_until(condition: Any, *, timeout: float = 60.0, every: float = 0.01) -> None:
    """Poll an async ``condition()`` until it is true."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


def database_url(url: str) -> str:
    """A libpq DSN for asyncpg or psql."""
    return normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def other_backends(conn: AsyncConnection) -> int:
    """Connections to this PostgreSQL database other than ``conn``'s own."""
    result = await conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    return int(result.scalar_one())


class LegacyWriter:
    """A server of the pre-stream version: appends with the legacy INSERT, one at a time.

    Runs on its own asyncpg connection (each INSERT its own transaction, as the legacy
    store did) until :meth:`stop`; records every INSERT's latency and every failure.
    """

    def __init__(self, url: str, sessions: Sequence[str], *, interval: float = 0.003) -> None:
        self.dsn = database_url(url)
        self.sessions = list(sessions)
        self.interval = interval
        self.latencies: list[float] = []
        self.failures: list[BaseException] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        statement = (
            "INSERT INTO events (session_id, event_id, data, timestamp) VALUES ($1, $2, $3, $4)"
        )
        try:
            count = 0
            while not self._stop.is_set():
                session = self.sessions[count % len(self.sessions)]
                started = time.perf_counter()
                try:
                    await conn.execute(
                        statement, session, f"w{count}", f'{{"w":{count}}}', time.time_ns() // 10**6
                    )
                except Exception as exc:
                    self.failures.append(exc)
                self.latencies.append(time.perf_counter() - started)
                count += 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop.set()

    @property
    def max_stall(self) -> float:
        return max(self.latencies, default=0.0)


def run_migrate(*args: str) -> tuple[int, str]:
    """``eventstore migrate ARGS`` in this process: its exit code and output."""
    result = CliRunner().invoke(main, ["migrate", *args])
    return result.exit_code, result.output
