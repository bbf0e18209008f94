"""A store's database filled to a given number of events, for SQLite or PostgreSQL.

The schema is the store's own (created by :func:`eventstore.open_store`); the rows are
bulk-loaded with the plain driver, since filling is not what is measured. A dataset only
grows, so one run measures 100k, then 1M, then 10M events without rebuilding.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks import workload
from benchmarks.context import Bench
from benchmarks.pgserver import driver_dsn
from benchmarks.raw import RawPostgres, RawSqlite
from eventstore import SqlEventStore, open_store

DIALECTS = ("sqlite", "postgresql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


async def new_database(bench: Bench, dialect: str, name: str) -> str:
    """An empty database with the store's schema; its URL."""
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{bench.workdir / name}.sqlite3"
    else:
        url = await asyncio.to_thread(bench.postgres.new_database, name)
    store = await open_store(url)
    await store.close()
    return url


async def open_sql_store(url: str, **options: Any) -> SqlEventStore:
    store = await open_store(url, **options)
    assert isinstance(store, SqlEventStore)
    return store


async def open_raw(dialect: str, url: str) -> RawSqlite | RawPostgres:
    """The raw-driver baseline on the same database."""
    if dialect == "sqlite":
        return await RawSqlite.open(url.split("///", 1)[1])
    return await RawPostgres.open(driver_dsn(url))


class Dataset:
    """A database holding ``streams`` streams of :data:`workload.EVENTS_PER_STREAM` events."""

    def __init__(self, dialect: str, url: str) -> None:
        self.dialect = dialect
        self.url = url
        self.streams = 0

    @classmethod
    async def create(cls, bench: Bench, dialect: str) -> Dataset:
        return cls(dialect, await new_database(bench, dialect, "dataset"))

    @property
    def events(self) -> int:
        return self.streams * workload.EVENTS_PER_STREAM

    async def grow_to(self, events: int) -> None:
        """Bulk-load streams until the table holds ``events`` events."""
        target = events // workload.EVENTS_PER_STREAM
        if target <= self.streams:
            return
        if self.dialect == "sqlite":
            path = self.url.split("///", 1)[1]
            await asyncio.to_thread(workload.fill_sqlite, path, self.streams, target)
        else:
            await workload.fill_postgres(driver_dsn(self.url), self.streams, target)
        self.streams = target

    async def drop(self) -> None:
        """Remove the database, to give its disk space back."""
        if self.dialect == "sqlite":
            path = Path(self.url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            return
        url = make_url(self.url)
        conn = await asyncpg.connect(driver_dsn(url.set(database="postgres")))
        try:
            await conn.execute(f'DROP DATABASE "{url.database}" WITH (FORCE)')
        finally:
            await conn.close()

    async def query_plan(self, statement: str, params: list[Any]) -> list[str]:
        """How the database runs ``statement``: SQLite's plan, PostgreSQL's EXPLAIN ANALYZE."""
        if self.dialect == "sqlite":
            path = self.url.split("///", 1)[1]
            conn = sqlite3.connect(path)
            try:
                rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
            finally:
                conn.close()
            return [row[-1] for row in rows]
        conn = await asyncpg.connect(driver_dsn(self.url))
        try:
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {statement}", *params
            )
        finally:
            await conn.close()
        return [row[0] for row in rows]
