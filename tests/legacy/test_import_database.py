"""``eventstore import URL``: a legacy ``events`` table (SQLite or PostgreSQL), read-only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from eventstore import open_store
from eventstore.sql.engine import normalize_url
from tests.conftest import PostgresServer
from tests.legacy.helpers import (
    cli_command,
    cli_env,
    create_legacy_table,
    legacy_metadata,
    read_legacy_table,
    run_cli,
    stored,
)

# Insertion (id) order is not timestamp order; ids are reused within and across
# sessions; one row's data is not JSON; one row has no event id.
ROWS = [
    {"session_id": "s1", "event_id": "e2", "data": '{"n": 2}', "timestamp": 200},
    {"session_id": "s1", "event_id": "e1", "data": '{"n": 1}', "timestamp": 100},
    {"session_id": "s2", "event_id": "e1", "data": '"other session, same id"', "timestamp": 50},
    {"session_id": "s1", "event_id": "e3", "data": '"nul \\u0000 and \\u00fc"', "timestamp": 300},
    {"session_id": "s1", "event_id": "e1", "data": '{"n": 1}', "timestamp": 100},
    {"session_id": "s1", "event_id": "e2", "data": '{"n": "changed"}', "timestamp": 250},
    {"session_id": "s2", "event_id": "e9", "data": "{not json", "timestamp": 60},
    {"session_id": "s2", "event_id": None, "data": "1", "timestamp": 70},
    {"session_id": "s2", "event_id": "e0", "data": "[1, 2, 3]", "timestamp": 40},
]

EXPECTED = [
    ("s1", "_default", 1, "e1", {"n": 1}, 100),
    ("s1", "_default", 2, "e2", {"n": 2}, 200),
    ("s1", "_default", 3, "e3", "nul \x00 and ü", 300),
    ("s2", "_default", 1, "e0", [1, 2, 3], 40),
    ("s2", "_default", 2, "e1", "other session, same id", 50),
]


@pytest.fixture(params=["sqlite", "postgres"])
def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A legacy (pre-stream) database holding ROWS."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/legacy.sqlite3"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    create_legacy_table(url, ROWS)
    return url


def fingerprint(url: str) -> object:
    """Everything an import could change in the source database."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        siblings = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
        return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, siblings

    async def schema() -> object:
        engine = create_async_engine(parsed)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: (
                        sorted(inspect(c).get_table_names()),
                        [col["name"] for col in inspect(c).get_columns("events")],
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(schema()), read_legacy_table(url)


def test_a_legacy_table_imports_and_is_left_untouched(
    legacy_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    before = fingerprint(legacy_url)
    rejects = tmp_path / "rejects.jsonl"

    result = run_cli("import", legacy_url, "--url", sqlite_url, "--rejects", str(rejects))

    assert result.exit_code == 3, result.output
    assert stored(sqlite_url) == EXPECTED
    records = sorted(
        (json.loads(line) for line in rejects.read_text().splitlines()), key=lambda r: r["line"]
    )
    assert [(r["line"], r["reason"].split(":")[0]) for r in records] == [
        (6, "duplicate event id 'e2' in session 's1' with different data (first at line 1)"),
        (7, "data is not JSON"),
        (8, "missing field 'event_id'"),
    ]
    assert json.loads(records[1]["source"])["data"] == "{not json"
    assert "skipped: 1 identical duplicate lines" in result.output
    assert fingerprint(legacy_url) == before


def test_a_legacy_table_imports_into_postgres_in_a_chosen_stream(
    legacy_url: str, postgres_server: PostgresServer
) -> None:
    target = postgres_server.new_database()

    result = run_cli("import", legacy_url, "--url", target, "--stream-id", "legacy")

    assert result.exit_code == 3
    assert stored(target) == [(s, "legacy", *rest) for s, _, *rest in EXPECTED]


def test_a_current_store_imports_into_another_backend(sqlite_url: str, postgres_url: str) -> None:
    async def fill() -> None:
        async with open_store(sqlite_url) as store:
            for i in range(3):
                await store.store_event("s1", "stream-b", f"b{i}", {"i": i})
                await store.store_event("s1", "stream-a", f"a{i}", [i])
            await store.store_event("s2", "_GET_stream", "g0", None)

    asyncio.run(fill())
    result = run_cli("import", sqlite_url, "--url", postgres_url)

    assert result.exit_code == 0, result.output
    assert stored(postgres_url) == stored(sqlite_url)
    assert {row[1] for row in stored(postgres_url)} == {"stream-a", "stream-b", "_GET_stream"}


def test_source_and_target_must_differ(legacy_url: str) -> None:
    result = run_cli("import", legacy_url, "--url", legacy_url)
    assert result.exit_code == 2
    assert "same database" in result.output


def test_a_database_without_an_events_table_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    empty = tmp_path / "empty.sqlite3"
    create_legacy_table(f"sqlite:///{empty}", [])
    asyncio.run(_drop_events(f"sqlite:///{empty}"))

    result = run_cli("import", f"sqlite:///{empty}", "--url", sqlite_url)

    assert result.exit_code == 1
    assert "has no 'events' table" in result.output
    missing = run_cli("import", f"sqlite:///{tmp_path}/nope.sqlite3", "--url", sqlite_url)
    assert missing.exit_code == 1
    assert "no such SQLite database" in missing.output


async def _drop_events(url: str) -> None:
    engine = create_async_engine(normalize_url(url))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE events")
    await engine.dispose()


def test_a_legacy_table_without_the_session_index_imports(tmp_path: Path, sqlite_url: str) -> None:
    legacy = f"sqlite:///{tmp_path}/no-index.sqlite3"
    create_legacy_table(legacy, ROWS, index=False)

    result = run_cli("import", legacy, "--url", sqlite_url)

    assert result.exit_code == 3, result.output
    assert stored(sqlite_url) == EXPECTED


def test_importing_a_legacy_sqlite_file_lets_its_writers_in(tmp_path: Path) -> None:
    """A legacy file in rollback-journal mode, written to by a server not switched yet:
    the import reads it in chunks, so that server's commits wait milliseconds, not the
    whole read."""
    source = f"sqlite:///{tmp_path}/legacy.sqlite3"
    rows = [
        {"session_id": f"s{i % 50}", "event_id": f"e{i}", "data": "{}", "timestamp": i}
        for i in range(100_000)
    ]
    create_legacy_table(source, rows)
    target = f"sqlite:///{tmp_path}/new.sqlite3"
    importing = subprocess.Popen(
        [*cli_command(), "import", source, "--url", target],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    legacy_writer = sqlite3.connect(f"{tmp_path}/legacy.sqlite3", timeout=0.25)
    written, locked = 0, 0
    try:
        while importing.poll() is None:
            try:
                with legacy_writer:
                    legacy_writer.execute(
                        "INSERT INTO events (session_id, event_id, data, timestamp) "
                        "VALUES ('live', ?, '{}', 0)",
                        (f"live{written}",),
                    )
                written += 1
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                locked += 1
            time.sleep(0.005)
    finally:
        legacy_writer.close()
        output = importing.communicate(timeout=120)[0]
    assert importing.returncode == 0, output
    assert written > 20 and locked == 0, f"{locked} writes gave up on the lock ({written} made)"


def _legacy_sqlite_with_bad_utf8(path: Path, *, as_text: bool) -> str:
    """A legacy SQLite table whose row 2 holds data that is not UTF-8, as a BLOB or as
    TEXT (SQLite stores TEXT bytes unchecked)."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, session_id TEXT, event_id TEXT,"
            " data TEXT, timestamp BIGINT)"
        )
        bad = sqlite3.Binary(b'"\xff\xfe"')
        insert = "INSERT INTO events (session_id, event_id, data, timestamp) VALUES (?, ?, {}, ?)"
        conn.execute(insert.format("?"), ("s", "e0", "1", 10))
        conn.execute(insert.format("CAST(? AS TEXT)" if as_text else "?"), ("s", "e1", bad, 20))
        conn.execute(insert.format("?"), ("s", "e2", "2", 30))
    conn.close()
    return f"sqlite:///{path}"


@pytest.mark.parametrize("as_text", [False, True], ids=["blob", "text"])
def test_a_row_whose_data_is_not_utf8_is_rejected_and_the_rest_imports(
    tmp_path: Path, sqlite_url: str, as_text: bool
) -> None:
    source = _legacy_sqlite_with_bad_utf8(tmp_path / "legacy.db", as_text=as_text)
    rejects = tmp_path / "rejects.jsonl"

    result = run_cli("import", source, "--url", sqlite_url, "--rejects", str(rejects))

    assert result.exit_code == 3, result.output
    assert [(r[3], r[4]) for r in stored(sqlite_url)] == [("e0", 1), ("e2", 2)]
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert record["line"] == 2
    assert record["reason"].startswith("data is not UTF-8 text"), record
    assert json.loads(record["source"])["event_id"] == "e1"
    assert "once the database is back" not in result.output


async def _legacy_postgres_bytea(url: str) -> None:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, session_id TEXT, event_id TEXT,"
                " data BYTEA, timestamp BIGINT)"
            )
            await conn.exec_driver_sql(
                "INSERT INTO events (session_id, event_id, data, timestamp) VALUES"
                " ('s', 'e0', '1'::bytea, 10), ('s', 'e1', '\\x22fffe22'::bytea, 20),"
                " ('s', 'e2', '2'::bytea, 30)"
            )
    finally:
        await engine.dispose()


def test_a_postgres_bytea_row_that_is_not_utf8_is_rejected(
    postgres_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    asyncio.run(_legacy_postgres_bytea(postgres_url))
    rejects = tmp_path / "rejects.jsonl"

    result = run_cli("import", postgres_url, "--url", sqlite_url, "--rejects", str(rejects))

    assert result.exit_code == 3, result.output
    assert [(r[3], r[4]) for r in stored(sqlite_url)] == [("e0", 1), ("e2", 2)]
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (record["line"], record["reason"].split(":")[0]) == (2, "data is not UTF-8 text")


async def _legacy_postgres_sql_ascii(server_url: str) -> str:
    """A legacy table in a ``SQL_ASCII`` database, which stores text bytes unchecked:
    row 2's data is not UTF-8."""
    url = make_url(server_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(
            "CREATE DATABASE legacy_sql_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
            " TEMPLATE template0"
        )
    finally:
        await conn.close()
    url = url.set(database="legacy_sql_ascii")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(
            "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, session_id TEXT, event_id TEXT,"
            " data TEXT, timestamp BIGINT)"
        )
        await conn.execute(
            "INSERT INTO events (session_id, event_id, data, timestamp) VALUES"
            " ('s', 'e0', '1', 10),"
            " ('s', 'e1', convert_from('\\x22fffe22'::bytea, 'SQL_ASCII'), 20),"
            " ('s', 'e2', '2', 30)"
        )
    finally:
        await conn.close()
    return url.render_as_string(hide_password=False)


def test_a_postgres_sql_ascii_row_that_is_not_utf8_is_rejected(
    postgres_server: PostgresServer, sqlite_url: str, tmp_path: Path
) -> None:
    source = asyncio.run(_legacy_postgres_sql_ascii(postgres_server.url))
    rejects = tmp_path / "rejects.jsonl"
    try:
        result = run_cli("import", source, "--url", sqlite_url, "--rejects", str(rejects))
    finally:
        asyncio.run(_drop_sql_ascii_database(postgres_server.url))

    assert result.exit_code == 3, result.output
    assert [(r[3], r[4]) for r in stored(sqlite_url)] == [("e0", 1), ("e2", 2)]
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (record["line"], record["reason"].split(":")[0]) == (2, "data is not UTF-8 text")


async def _drop_sql_ascii_database(server_url: str) -> None:
    url = make_url(server_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute("DROP DATABASE legacy_sql_ascii")
    finally:
        await conn.close()


@pytest.mark.parametrize("data_type", ["json", "jsonb"])
def test_a_postgres_json_data_column_imports(
    postgres_url: str, sqlite_url: str, data_type: str
) -> None:
    # The text columns are read as their bytes (convert_to): json and jsonb go through
    # their text form.
    async def create() -> None:
        engine = create_async_engine(normalize_url(postgres_url))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(legacy_metadata.create_all)
                await conn.exec_driver_sql(
                    f"ALTER TABLE events ALTER COLUMN data TYPE {data_type} USING data::{data_type}"
                )
                await conn.exec_driver_sql(
                    "INSERT INTO events (session_id, event_id, data, timestamp)"
                    " VALUES ('s', 'e1', '{\"ü\": [1]}', 1)"
                )
        finally:
            await engine.dispose()

    asyncio.run(create())
    result = run_cli("import", postgres_url, "--url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert [(r[3], r[4]) for r in stored(sqlite_url)] == [("e1", {"ü": [1]})]
