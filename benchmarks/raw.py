"""The baseline: aiosqlite and asyncpg running, by hand, the SQL :class:`SqlEventStore` runs.

The statements are the store's own (imported from :mod:`eventstore.sql.sqlite` and
:mod:`eventstore.sql.postgresql`; :mod:`benchmarks.sqlcheck` confirms the store sends
exactly these), in the same transaction shape (SQLite: WAL, ``synchronous=FULL``,
``busy_timeout``, ``BEGIN IMMEDIATE`` for writes; PostgreSQL: one transaction per write),
on one connection held open, with JSON already encoded, and rows left undecoded. What is
left between this and the store is the store's own work: argument checks, JSON encoding
and decoding, SQLAlchemy and its pool, and building :class:`~eventstore.StoredEvent`
values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import aiosqlite
import asyncpg

from eventstore.clock import now_ms
from eventstore.sql import postgresql, sqlite


class Event(NamedTuple):
    """One event to append, its data already JSON text."""

    session_id: str
    stream_id: str
    event_id: str
    text: str


def _counts(batch: Sequence[Event]) -> list[tuple[tuple[str, str], int]]:
    """Streams touched, sorted as the store locks them, with their event counts."""
    return sorted(Counter((e.session_id, e.stream_id) for e in batch).items())


def _rows(batch: Sequence[Event], counts: list[tuple[tuple[str, str], int]]) -> list[Any]:
    """``(session_id, stream_id, event_id, data, timestamp, later)`` as the store builds them:
    ``later`` counts the rows of the same stream after this one; the timestamp is ``None``,
    "now", which the append takes from the stream's head row."""
    left = dict(counts)
    rows = []
    for e in batch:
        key = (e.session_id, e.stream_id)
        left[key] -= 1
        rows.append((e.session_id, e.stream_id, e.event_id, e.text, None, left[key]))
    return rows


class RawSqlite:
    """One aiosqlite connection, configured as the store configures its own."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: str) -> RawSqlite:
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA busy_timeout=10000",
            "PRAGMA synchronous=FULL",
        ):
            await conn.execute(pragma)
        return cls(conn)

    @staticmethod
    def statements(batch: Sequence[Event]) -> list[str]:
        """The texts :meth:`append` runs for ``batch``, in order."""
        return ["BEGIN IMMEDIATE", sqlite.reserve_seqs(len(_counts(batch))), sqlite.INSERT_EVENT]

    async def append(self, batch: Sequence[Event]) -> int:
        begin, reserve, insert = self.statements(batch)
        counts, now = _counts(batch), now_ms()
        params: list[Any] = []
        for (session_id, stream_id), count in counts:
            params += (session_id, stream_id, count, now, now)
        await self.conn.execute(begin)
        try:
            found = await self.conn.execute_fetchall(reserve, params)
            heads = {(s, t): (last, stamp) for s, t, last, stamp in found}
            await self.conn.executemany(
                insert,
                [
                    (s, t, heads[s, t][0] - later, event_id, data, heads[s, t][1])
                    for s, t, event_id, data, _, later in _rows(batch, counts)
                ],
            )
            await self.conn.commit()
        except BaseException:
            await self.conn.rollback()
            raise
        return len(batch)

    @staticmethod
    def replay_statement() -> str:
        return sqlite.REPLAY_AFTER

    @staticmethod
    def replay_params(session_id: str, stream_id: str, cursor: str) -> list[Any]:
        return sqlite.replay_params(session_id, stream_id, cursor)

    async def replay(self, session_id: str, stream_id: str, cursor: str) -> list[Any]:
        return list(
            await self.conn.execute_fetchall(
                sqlite.REPLAY_AFTER, sqlite.replay_params(session_id, stream_id, cursor)
            )
        )

    async def close(self) -> None:
        await self.conn.close()


class RawPostgres:
    """One asyncpg connection (asyncpg's own prepared-statement cache, as the store's)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, dsn: str) -> RawPostgres:
        return cls(await asyncpg.connect(dsn))

    @staticmethod
    def statements(batch: Sequence[Event]) -> list[str]:
        """The texts :meth:`append` runs for ``batch``, in order."""
        return [postgresql.APPEND]

    async def append(self, batch: Sequence[Event]) -> int:
        counts, now = _counts(batch), now_ms()
        columns = list(zip(*_rows(batch, counts), strict=True))
        async with self.conn.transaction():
            await self.conn.fetch(
                postgresql.APPEND,
                now,
                [session_id for (session_id, _), _ in counts],
                [stream_id for (_, stream_id), _ in counts],
                [count for _, count in counts],
                *(list(column) for column in columns),
            )
        return len(batch)

    @staticmethod
    def replay_statement() -> str:
        return postgresql.REPLAY_AFTER

    @staticmethod
    def replay_params(session_id: str, stream_id: str, cursor: str) -> list[Any]:
        return postgresql.replay_params(session_id, stream_id, cursor)

    async def replay(self, session_id: str, stream_id: str, cursor: str) -> list[Any]:
        return list(
            await self.conn.fetch(
                postgresql.REPLAY_AFTER, *postgresql.replay_params(session_id, stream_id, cursor)
            )
        )

    async def close(self) -> None:
        await self.conn.close()
