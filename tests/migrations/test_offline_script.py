"""``eventstore migrate --sql``: a script that stops at its first error, and what a
partial run leaves behind is taken in stride by the next ``eventstore migrate``."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from eventstore import migrate
from eventstore.cli import main
from eventstore.migrate import SchemaState
from eventstore.migrations import ddl
from eventstore.sql.engine import normalize_url
from tests.migrations.helpers import (
    alembic,
    assert_numbered_in_order,
    create_unversioned_legacy,
    database_url,
    engine,
    events_rows,
    execute,
    insert_legacy,
    query,
    schema_objects,
)
from tests.pgcluster import find_bindir

LEGACY_ROWS = [("s1", "a", "1", 10), ("s1", "b", "2", 5), ("s2", "a", "3", 7)]


def _script(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["migrate", "--url", url, "--sql", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _psql(url: str, script: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``psql -f script``, as MIGRATION.md's reader would run it (``options`` added)."""
    return subprocess.run(
        [str(find_bindir() / "psql"), *options, "-q", "-f", str(script), database_url(url)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _sqlite3(url: str, script: Path) -> subprocess.CompletedProcess[str]:
    """``sqlite3 -bail DATABASE < script``, as MIGRATION.md says."""
    database = normalize_url(url).database
    assert database is not None
    with open(script) as stdin:
        return subprocess.run(
            ["sqlite3", "-bail", database],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _tables(url: str) -> set[str]:
    if url.startswith("postgresql"):
        rows = asyncio.run(
            query(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        )
    else:
        rows = asyncio.run(query(url, "SELECT name FROM sqlite_master WHERE type = 'table'"))
    return {row[0] for row in rows}


def _migrate(url: str) -> None:
    result = CliRunner().invoke(main, ["migrate", "--url", url])
    assert result.exit_code == 0, result.output


async def test_plain_psql_stops_at_a_lock_timeout(postgres_url: str, tmp_path: Path) -> None:
    """Without ON_ERROR_STOP, psql would go on after r0002's lock timeout: the settings
    table and the trim trigger would land on the legacy table, and every legacy INSERT
    would fail from then on."""
    await create_unversioned_legacy(postgres_url, LEGACY_ROWS)
    script = tmp_path / "upgrade.sql"
    script.write_text(await asyncio.to_thread(_script, postgres_url))
    assert script.read_text().startswith("\\set ON_ERROR_STOP on\n")
    holder = engine(postgres_url)
    try:
        async with holder.connect() as conn:
            await conn.execute(text("SELECT count(*) FROM events"))  # holds ACCESS SHARE
            ran = await asyncio.to_thread(_psql, postgres_url, script)  # no -v ON_ERROR_STOP
            await conn.rollback()
    finally:
        await holder.dispose()

    assert ran.returncode != 0
    assert "lock timeout" in ran.stderr
    assert (await migrate.status(postgres_url)).revision == "0001"
    assert await asyncio.to_thread(_tables, postgres_url) == {
        "events",
        "eventstore_alembic_version",
    }
    assert (await schema_objects(postgres_url))["triggers"] == []
    await insert_legacy(postgres_url, [("s3", "x", "4", 1)])  # the legacy writer still works

    await asyncio.to_thread(_migrate, postgres_url)
    assert (await migrate.status(postgres_url)).state is SchemaState.CURRENT
    await assert_numbered_in_order(postgres_url)


def _leave_retention_behind(url: str) -> None:
    """What a script run on after an error left: r0004's table, row and trigger, on a
    database still recorded at 0001."""
    asyncio.run(
        execute(
            url,
            "CREATE TABLE eventstore_settings (id INTEGER NOT NULL PRIMARY KEY, "
            "max_events_per_stream INTEGER, CONSTRAINT ck_eventstore_settings_single_row "
            "CHECK (id = 1), CONSTRAINT ck_eventstore_settings_max_events CHECK "
            "(max_events_per_stream IS NULL OR max_events_per_stream >= 1))",
        )
    )
    asyncio.run(execute(url, "INSERT INTO eventstore_settings VALUES (1, NULL)"))
    trigger = ddl.PG_TRIM_STREAMS if url.startswith("postgresql") else ddl.SQLITE_TRIM_STREAMS
    for statement in trigger:
        asyncio.run(execute(url, statement))


def test_migrate_completes_over_what_a_partial_script_left(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    asyncio.run(alembic(sql_url, "stamp", "0001"))
    _leave_retention_behind(sql_url)

    _migrate(sql_url)

    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    assert asyncio.run(query(sql_url, "SELECT * FROM eventstore_settings")) == [(1, None)]
    assert asyncio.run(schema_objects(sql_url))["triggers"].count("eventstore_trim_streams") == 1
    asyncio.run(assert_numbered_in_order(sql_url))
    # The trigger works: a cap applies on the next insert.
    asyncio.run(execute(sql_url, "UPDATE eventstore_settings SET max_events_per_stream = 1"))
    asyncio.run(
        execute(
            sql_url,
            "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp) "
            "VALUES ('s1', '_default', 3, 'c', '3', 20)",
        )
    )
    assert asyncio.run(query(sql_url, "SELECT event_id FROM events WHERE session_id = 's1'")) == [
        ("c",)
    ]


BAD_ROWS = [("s1", "ok", "1", 10), ("s1", "broken", "{not json", 20)]


def test_a_script_stops_at_rows_that_are_not_json(sql_url: str, tmp_path: Path) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, BAD_ROWS))
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(sql_url))

    if sql_url.startswith("postgresql"):
        ran = _psql(sql_url, script, "-v", "ON_ERROR_STOP=1")
        assert "legacy rows hold data that is not JSON: events.id 2" in ran.stderr
    else:
        ran = _sqlite3(sql_url, script)
        assert "malformed JSON" in ran.stderr
    assert ran.returncode != 0
    assert _tables(sql_url) == {"events", "eventstore_alembic_version"}
    assert asyncio.run(migrate.status(sql_url)).revision == "0001"

    script.write_text(_script(sql_url, "--invalid-data", "string"))
    if sql_url.startswith("postgresql"):
        ran = _psql(sql_url, script, "-v", "ON_ERROR_STOP=1")
    else:
        ran = _sqlite3(sql_url, script)
    assert ran.returncode == 0, ran.stderr
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    data = asyncio.run(query(sql_url, "SELECT event_id, data FROM events ORDER BY id"))
    assert data == [("ok", "1"), ("broken", '"{not json"')]


@pytest.mark.parametrize("invalid_data", ["refuse", "string"])
def test_every_script_states_how_to_run_it(sql_url: str, invalid_data: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    script = _script(sql_url, "--invalid-data", invalid_data)
    if sql_url.startswith("postgresql"):
        assert script.startswith("\\set ON_ERROR_STOP on\n")
        assert script.count("\\set ON_ERROR_STOP on") == 1
        assert "psql -v ON_ERROR_STOP=1 -f FILE" in script
    else:
        assert script.startswith("-- mcp-eventstore schema upgrade for SQLite")
        assert script.count("mcp-eventstore schema upgrade") == 1
        assert "sqlite3 -bail DATABASE < FILE" in script


#: Rows whose duplicates take derived ids that other rows had all along (ids 1..11, in
#: order): e1's copy (id 2) yields 'e1#dup-2' to row 3; x's (id 5) yields twice.
DERIVED_COLLISIONS = [
    ("s", "e1", '"first"', 10),
    ("s", "e1", '"copy"', 20),
    ("s", "e1#dup-2", '"own"', 30),
    ("t", "x", "1", 10),
    ("t", "x", "2", 20),
    ("t", "x#dup-5", "3", 30),
    ("t", "x#dup-5#dup-5", "4", 40),
    ("u", "y", "5", 10),
    ("u", "y", "6", 10),
    ("u", "y", "7", 10),
    ("u", "y#dup-9", "8", 5),
]


def _run_script_to_the_end(url: str, script: Path) -> None:
    if url.startswith("postgresql"):
        ran = _psql(url, script, "-v", "ON_ERROR_STOP=1")
    else:
        ran = _sqlite3(url, script)
    assert ran.returncode == 0, ran.stderr


def test_a_script_renames_duplicates_as_the_online_upgrade_does(
    two_urls: tuple[str, str], tmp_path: Path
) -> None:
    online, offline = two_urls
    for url in two_urls:
        asyncio.run(create_unversioned_legacy(url, DERIVED_COLLISIONS))
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(offline))

    _migrate(online)
    _run_script_to_the_end(offline, script)

    assert asyncio.run(migrate.status(offline)).state is SchemaState.CURRENT
    upgraded = asyncio.run(events_rows(online))
    assert asyncio.run(events_rows(offline)) == upgraded
    assert [row[4] for row in upgraded] == [
        "e1",
        "e1#dup-2#dup-2",
        "e1#dup-2",
        "x",
        "x#dup-5#dup-5#dup-5",
        "x#dup-5",
        "x#dup-5#dup-5",
        "y",
        "y#dup-9#dup-9",
        "y#dup-10",
        "y#dup-9",
    ]
    asyncio.run(assert_numbered_in_order(offline))


def test_a_script_stops_at_rows_without_a_session_id(sql_url: str, tmp_path: Path) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, nullable=True))
    asyncio.run(insert_legacy(sql_url, [("s1", "ok", "1", 10)]))
    asyncio.run(
        execute(sql_url, "INSERT INTO events (event_id, data, timestamp) VALUES ('x', '2', 20)")
    )
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(sql_url, "--invalid-data", "string"))

    if sql_url.startswith("postgresql"):
        ran = _psql(sql_url, script, "-v", "ON_ERROR_STOP=1")
        assert "legacy rows have no session_id, event_id or timestamp (NULL): events.id 2" in (
            ran.stderr
        )
    else:
        ran = _sqlite3(sql_url, script)
        assert "malformed JSON" in ran.stderr
    assert ran.returncode != 0
    assert _tables(sql_url) == {"events", "eventstore_alembic_version"}
    assert asyncio.run(query(sql_url, "SELECT id, data FROM events ORDER BY id")) == [
        (1, "1"),
        (2, "2"),
    ]


def test_a_script_makes_a_jsonb_data_column_text(postgres_url: str, tmp_path: Path) -> None:
    asyncio.run(create_unversioned_legacy(postgres_url, nullable=True, data_type="JSONB"))
    asyncio.run(execute(postgres_url, "INSERT INTO events VALUES (1, 's', 'a', '{\"b\": 1}', 5)"))
    asyncio.run(execute(postgres_url, "INSERT INTO events VALUES (2, 's', 'b', NULL, 6)"))
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(postgres_url, "--invalid-data", "string"))

    _run_script_to_the_end(postgres_url, script)

    assert asyncio.run(migrate.status(postgres_url)).state is SchemaState.CURRENT
    assert asyncio.run(query(postgres_url, "SELECT data FROM events ORDER BY id")) == [
        ('{"b": 1}',),
        ("null",),
    ]
    declared = asyncio.run(
        query(
            postgres_url,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'events' AND column_name IN ('data', 'session_id') ORDER BY 1",
        )
    )
    assert declared == [("data", "text", "NO"), ("session_id", "text", "NO")]
