"""Helpers of the legacy-migration tests: legacy sources, reading a target back, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text, select
from sqlalchemy.ext.asyncio import create_async_engine

from eventstore.cli import main
from eventstore.sql.engine import normalize_url
from eventstore.sql.schema import events as current_events

#: The pre-stream table, exactly as the legacy store created it.
legacy_metadata = MetaData()
legacy_events = Table(
    "events",
    legacy_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Text),
    Column("event_id", Text),
    Column("data", Text),
    Column("timestamp", BigInteger),
    Index("ix_events_session_id", "session_id"),
)

#: One stored event as the tests compare it: (session, stream, seq, id, data, timestamp).
Row = tuple[str, str, int, str, Any, int]


def legacy_line(session_id: str, event_id: str, data: Any, timestamp: int) -> str:
    """One line of a legacy in-memory store dump."""
    return json.dumps(
        {"session_id": session_id, "id": event_id, "data": data, "timestamp": timestamp}
    )


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


class DumpLines:
    """A legacy dump being written: ``add`` events, then ``write`` the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, session_id: str, event_id: str, data: Any, timestamp: int) -> None:
        self.lines.append(legacy_line(session_id, event_id, data, timestamp))

    def write(self) -> Path:
        return write_lines(self.path, self.lines)


async def _create_legacy_table(
    url: str, rows: Sequence[dict[str, Any]], *, index: bool = True
) -> None:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(legacy_metadata.create_all)
            if not index:
                await conn.exec_driver_sql("DROP INDEX ix_events_session_id")
            if rows:
                await conn.execute(legacy_events.insert(), list(rows))
    finally:
        await engine.dispose()


def create_legacy_table(url: str, rows: Sequence[dict[str, Any]], *, index: bool = True) -> None:
    """Create the legacy ``events`` table at ``url`` and insert ``rows`` (plain Core);
    ``index=False``: without ``ix_events_session_id``, as some legacy stores left it."""
    asyncio.run(_create_legacy_table(url, rows, index=index))


async def _read_table(url: str, table: Table) -> list[tuple[Any, ...]]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


def read_legacy_table(url: str) -> list[tuple[Any, ...]]:
    """Every row of a legacy ``events`` table, by id."""
    return asyncio.run(_read_table(url, legacy_events))


async def _stored(url: str) -> list[Row]:
    engine = create_async_engine(normalize_url(url))
    c = current_events.c
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(c.session_id, c.stream_id, c.seq, c.event_id, c.data, c.timestamp).order_by(
                    c.session_id, c.stream_id, c.seq
                )
            )
            return [(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in result]
    finally:
        await engine.dispose()


def stored(url: str) -> list[Row]:
    """Every event a (current-schema) SQL store holds, read with plain SQL, in order."""
    return asyncio.run(_stored(url))


def run_cli(*args: str, input: str | None = None) -> Result:
    """Run ``eventstore ARGS`` in-process."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def cli_command() -> list[str]:
    """The installed ``eventstore`` command, for tests that need a real process."""
    return [str(Path(sys.executable).parent / "eventstore")]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a real ``eventstore`` process: PATH finds this venv first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run_process(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the real ``eventstore ARGS`` process and wait for it."""
    return subprocess.run(
        [*cli_command(), *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
