"""The baseline: aiosqlite and asyncpg running, by hand, the SQL :class:`SqlEventStore` runs.

Same statements (texts checked against what the store emits, see :mod:`benchmarks.sqlcheck`),
same transaction shape (SQLite: WAL, ``synchronous=FULL``, ``busy_timeout``,
``BEGIN IMMEDIATE`` for writes; PostgreSQL: one transaction per write), one connection
held open, JSON already encoded. What is left between this and the store is the store's
own work: argument checks, JSON encoding and decoding, SQLAlchemy, the connection pool,
and building :class:`~eventstore.StoredEvent` values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import aiosqlite
import asyncpg

from eventstore.clock import now_ms


class Event(NamedTuple):
    """One event to append, its data already JSON text."""

    session_id: str
    stream_id: str
    event_id: str
    text: str


_HEADS = (
    "INSERT INTO event_streams (session_id, stream_id, last_seq, first_seq, created_at, "
    "updated_at) VALUES {rows} ON CONFLICT (session_id, stream_id) DO UPDATE SET last_seq = "
    "(event_streams.last_seq + excluded.last_seq), updated_at = excluded.updated_at "
    "RETURNING {returning}"
)
_INSERT = (
    "INSERT INTO events (session_id, event_id, data, timestamp, stream_id, seq) VALUES {rows} "
    "RETURNING {returning}"
)
_REPLAY = (
    "SELECT events.event_id, events.seq, events.data, events.timestamp \nFROM events \n"
    "WHERE events.session_id = {session} AND events.stream_id = {stream} AND events.seq >= "
    "(SELECT events.seq \nFROM events \nWHERE events.session_id = {session} AND "
    "events.event_id = {cursor} AND events.stream_id = {stream}) ORDER BY events.seq"
)


def _counts(batch: Sequence[Event]) -> list[tuple[str, str, int]]:
    """Streams touched, sorted as the store locks them, with their event counts."""
    counts = Counter((e.session_id, e.stream_id) for e in batch)
    return [(s, t, n) for (s, t), n in sorted(counts.items())]


def _head_params(counts: list[tuple[str, str, int]], now: int) -> list[Any]:
    params: list[Any] = []
    for session_id, stream_id, count in counts:
        params += [session_id, stream_id, count, 1, now, now]
    return params


def _event_rows(
    batch: Sequence[Event],
    counts: list[tuple[str, str, int]],
    last_seqs: dict[tuple[str, str], int],
    now: int,
) -> list[tuple[Any, ...]]:
    """INSERT parameters: each stream's new seqs end at the head row's ``last_seq``."""
    next_seq = {(s, t): last_seqs[(s, t)] - n + 1 for s, t, n in counts}
    rows = []
    for e in batch:
        key = (e.session_id, e.stream_id)
        rows.append((e.session_id, e.event_id, e.text, now, e.stream_id, next_seq[key]))
        next_seq[key] += 1
    return rows


def _numbered_rows(types: Sequence[str], count: int) -> str:
    """``($1::T1, $2::T2), ($3::T1, $4::T2)``: asyncpg placeholders, cast as SQLAlchemy does."""
    width = len(types)
    return ", ".join(
        "(" + ", ".join(f"${width * i + c + 1}::{t}" for c, t in enumerate(types)) + ")"
        for i in range(count)
    )


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
        streams = {(e.session_id, e.stream_id) for e in batch}
        return [
            "BEGIN IMMEDIATE",
            _HEADS.format(
                rows=", ".join(["(?, ?, ?, ?, ?, ?)"] * len(streams)),
                returning="session_id, stream_id, last_seq",
            ),
            _INSERT.format(rows=", ".join(["(?, ?, ?, ?, ?, ?)"] * len(batch)), returning="id"),
        ]

    async def append(self, batch: Sequence[Event]) -> int:
        begin, heads, insert = self.statements(batch)
        counts, now = _counts(batch), now_ms()
        await self.conn.execute(begin)
        try:
            heads_found = await self.conn.execute_fetchall(heads, _head_params(counts, now))
            last = {(r[0], r[1]): r[2] for r in heads_found}
            rows = _event_rows(batch, counts, last, now)
            await self.conn.execute_fetchall(insert, [p for row in rows for p in row])
            await self.conn.commit()
        except BaseException:
            await self.conn.rollback()
            raise
        return len(batch)

    @staticmethod
    def replay_statement() -> str:
        return _REPLAY.format(session="?", stream="?", cursor="?")

    async def replay(self, session_id: str, stream_id: str, cursor: str) -> list[Any]:
        return list(
            await self.conn.execute_fetchall(
                self.replay_statement(),
                (session_id, stream_id, session_id, cursor, stream_id),
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
        streams = {(e.session_id, e.stream_id) for e in batch}
        heads = ("VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT", "BIGINT")
        events = ("VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "BIGINT")
        return [
            _HEADS.format(
                rows=_numbered_rows(heads, len(streams)),
                returning="event_streams.session_id, event_streams.stream_id, "
                "event_streams.last_seq",
            ),
            _INSERT.format(rows=_numbered_rows(events, len(batch)), returning="events.id"),
        ]

    async def append(self, batch: Sequence[Event]) -> int:
        heads, insert = self.statements(batch)
        counts, now = _counts(batch), now_ms()
        async with self.conn.transaction():
            heads_found = await self.conn.fetch(heads, *_head_params(counts, now))
            last = {(r[0], r[1]): r[2] for r in heads_found}
            rows = _event_rows(batch, counts, last, now)
            await self.conn.fetch(insert, *(p for row in rows for p in row))
        return len(batch)

    @staticmethod
    def replay_statement() -> str:
        return _REPLAY.format(session="$1::VARCHAR", stream="$2::VARCHAR", cursor="$3::VARCHAR")

    async def replay(self, session_id: str, stream_id: str, cursor: str) -> list[Any]:
        return list(await self.conn.fetch(self.replay_statement(), session_id, stream_id, cursor))

    async def close(self) -> None:
        await self.conn.close()
