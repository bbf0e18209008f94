"""What the benchmarks write and read: MCP-like notifications in MCP-like streams.

A stored table holds sessions of two streams each (the standalone ``_GET_stream`` and one
request's stream), ``EVENTS_PER_STREAM`` events per stream, written the way live
sessions write them: :data:`INTERLEAVE` streams at a time, round-robin, so the events of
one stream are spread over the table rather than packed together.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg

from eventstore.clock import now_ms
from eventstore.codec import encode_data

EVENTS_PER_STREAM = 1000
STREAM_IDS = ("_GET_stream", "7")
INTERLEAVE = 100
_EVENT_COLUMNS = ("session_id", "stream_id", "seq", "event_id", "data", "timestamp")
_HEAD_COLUMNS = ("session_id", "stream_id", "last_seq", "first_seq", "created_at", "updated_at")


def notification(n: int) -> dict[str, Any]:
    """A JSON-RPC progress notification of about 200 bytes as compact JSON."""
    return {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {
            "progressToken": "a81c6f0e-7a0b-4cde-9a41-2f1d3c6b8e55",
            "progress": n,
            "total": 1_000_000,
            "message": f"step {n:07d}: indexed one more chunk of the corpus",
        },
    }


PAYLOAD_BYTES = len(encode_data(notification(0)).encode())


def stream_key(stream_no: int) -> tuple[str, str]:
    """``(session_id, stream_id)`` of stream number ``stream_no``."""
    session_no, which = divmod(stream_no, len(STREAM_IDS))
    return uuid.UUID(int=session_no + 1).hex, STREAM_IDS[which]


def event_id(stream_no: int, seq: int) -> str:
    """Event ids name their stream, as the MCP adapter's do."""
    return f"{stream_key(stream_no)[1]}:{seq}"


def _event_rows(first: int, stop: int, timestamp: int) -> Iterator[tuple[Any, ...]]:
    for group in range(first, stop, INTERLEAVE):
        members = [(n, *stream_key(n)) for n in range(group, min(group + INTERLEAVE, stop))]
        for seq in range(1, EVENTS_PER_STREAM + 1):
            text = encode_data(notification(seq))
            for stream_no, session_id, stream_id in members:
                yield (session_id, stream_id, seq, event_id(stream_no, seq), text, timestamp)


def _head_rows(first: int, stop: int, timestamp: int) -> Iterator[tuple[Any, ...]]:
    for stream_no in range(first, stop):
        yield (*stream_key(stream_no), EVENTS_PER_STREAM, 1, timestamp, timestamp)


def fill_sqlite(path: str, first_stream: int, stop_stream: int) -> None:
    """Add streams ``first_stream..stop_stream-1`` to the store's tables (bulk, no fsync)."""
    now = now_ms()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            _event_rows(first_stream, stop_stream, now),
        )
        conn.executemany(
            f"INSERT INTO event_streams ({', '.join(_HEAD_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            _head_rows(first_stream, stop_stream, now),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def fill_postgres(dsn: str, first_stream: int, stop_stream: int) -> None:
    """Add streams ``first_stream..stop_stream-1`` with COPY, then refresh statistics."""
    now = now_ms()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "events",
                records=_event_rows(first_stream, stop_stream, now),
                columns=list(_EVENT_COLUMNS),
            )
            await conn.copy_records_to_table(
                "event_streams",
                records=_head_rows(first_stream, stop_stream, now),
                columns=list(_HEAD_COLUMNS),
            )
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE event_streams")
    finally:
        await conn.close()
