"""``eventstore migrate``, ``alembic`` from the repository root, and ``open_store``'s checks."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from eventstore import InvalidInputError, SchemaError, migrate, open_store
from eventstore.cli import main
from eventstore.migrate import SchemaState
from eventstore.migrations import backfill
from eventstore.sql.engine import normalize_url
from tests.migrations.helpers import (
    ROOT,
    alembic,
    assert_numbered_in_order,
    cli,
    create_unversioned_legacy,
    database_url,
    engine,
    execute,
    query,
    run_migrate,
)
from tests.pgcluster import find_bindir

LEGACY_ROWS = [("s1", "a", "1", 10), ("s1", "b", "2", 5), ("s2", "a", "3", 7)]


def test_a_legacy_database_without_alembic_is_recognised_and_upgraded(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    code, output = run_migrate("--url", sql_url)
    assert code == 0, output
    assert "a legacy (pre-stream) events table of 3 rows" in output
    assert "will stamp 0001" in output
    assert "stamped 0001 Legacy baseline" in output
    for revision in ("0002", "0003", "0004", "0005"):
        assert f"applied {revision} " in output
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    asyncio.run(assert_numbered_in_order(sql_url))
    assert asyncio.run(query(sql_url, "SELECT event_id FROM events ORDER BY session_id, seq")) == [
        ("b",),
        ("a",),
        ("a",),
    ]


def test_an_empty_database_gets_everything_and_a_current_one_nothing(sql_url: str) -> None:
    code, output = run_migrate("--url", sql_url)
    assert code == 0, output
    assert "no event store tables" in output and "applied 0005 " in output
    code, output = run_migrate("--url", sql_url)
    assert code == 0, output
    assert "up to date (revision 0005)" in output
    assert "applied" not in output


def test_migrate_sql_prints_a_script_that_upgrades_a_legacy_database(
    sql_url: str, tmp_path: Path
) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    code, script = run_migrate("--url", sql_url, "--sql")
    assert code == 0, script
    assert "INSERT INTO eventstore_alembic_version (version_num) VALUES ('0001')" in script
    assert "ALTER TABLE events ADD COLUMN stream_id TEXT DEFAULT '_default' NOT NULL" in script
    assert "UPDATE events SET event_id = renamed.event_id" in script
    if sql_url.startswith("postgresql"):
        assert "CREATE UNIQUE INDEX CONCURRENTLY uq_events_stream_seq" in script
        assert "ADD CONSTRAINT ck_events_seq_not_null CHECK (seq IS NOT NULL) NOT VALID" in script
        assert "SET lock_timeout = '500ms';" in script
    # Printing wrote nothing.
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.LEGACY

    _run_script(sql_url, script, tmp_path)
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    asyncio.run(assert_numbered_in_order(sql_url))


def _run_script(url: str, script: str, tmp_path: Path) -> None:
    """Run a --sql script the way a DBA would: psql, or SQLite's own script runner."""
    if url.startswith("postgresql"):
        path = tmp_path / "upgrade.sql"
        path.write_text(script)
        psql = find_bindir() / "psql"
        subprocess.run(
            [str(psql), "-v", "ON_ERROR_STOP=1", "-q", "-f", str(path), database_url(url)],
            check=True,
            capture_output=True,
            text=True,
        )
    else:
        database = normalize_url(url).database
        assert database is not None
        with sqlite3.connect(database, isolation_level=None) as conn:
            # The script's UTF-8 check needs REGEXP, which the sqlite3 shell has built in;
            # give this connection the one eventstore migrate gives its own.
            conn.create_function("regexp", 2, backfill._regexp, deterministic=True)
            conn.executescript(script)


def _alembic_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``alembic ARGS`` from the repository root, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=check,
    )


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_alembic_from_the_repository_root_prints_scripts(dialect: str) -> None:
    url = {
        "sqlite": "sqlite:///unused.sqlite3",
        "postgresql": "postgresql://user@host/db",
    }[dialect]
    result = _alembic_cli("-x", f"url={url}", "upgrade", "head", "--sql", check=True)
    script = result.stdout
    assert "CREATE TABLE events" in script
    assert re.search(r"CREATE TRIGGER (IF NOT EXISTS )?eventstore_trim_streams", script)
    assert "UPDATE eventstore_alembic_version SET version_num='0005'" in script
    assert ("CREATE TRIGGER eventstore_assign_seq" in script) == (dialect == "postgresql")


def test_alembic_refuses_an_empty_url_instead_of_upgrading_the_embedded_file(
    tmp_path: Path,
) -> None:
    # MIGRATION.md's `alembic -x url="$LEGACY_DATABASE_URL" upgrade head` with the
    # variable unset, and EVENTSTORE_DATABASE_URL set but empty.
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    env.pop("EVENTSTORE_DATABASE_URL", None)
    for args, extra, said in (
        (["-x", "url="], {}, "the url is empty"),
        ([], {"EVENTSTORE_DATABASE_URL": ""}, "EVENTSTORE_DATABASE_URL is set but empty"),
    ):
        result = _alembic_cli(*args, "upgrade", "head", env={**env, **extra})
        assert result.returncode != 0, result.stderr
        assert said in result.stderr
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("memory://", "memory:// has no schema to migrate"),
        ("mysql://x/y", "unsupported database URL scheme 'mysql'"),
        ("postgresql://u:secret@127.0.0.1:abc/db", "port is not a number"),
    ],
)
def test_alembic_refuses_an_unusable_url_in_one_line(url: str, said: str) -> None:
    result = _alembic_cli("-x", f"url={url}", "upgrade", "head")
    assert result.returncode != 0
    assert said in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr


def test_alembic_says_in_one_line_that_it_cannot_connect(postgres_url: str) -> None:
    url = make_url(postgres_url).set(database="no_such_database", password="secret")
    result = _alembic_cli("-x", f"url={url.render_as_string(hide_password=False)}", "current")
    assert result.returncode != 0
    assert "cannot connect to postgresql+asyncpg://" in result.stderr
    assert 'database "no_such_database" does not exist' in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr


def test_alembic_upgrade_head_recognises_a_legacy_database(sql_url: str) -> None:
    """No hand-stamping: the history's env.py stamps an unversioned legacy table 0001."""
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    current = _alembic_cli("-x", f"url={sql_url}", "current")
    assert current.returncode == 0, current.stderr
    # Looking is not upgrading: `alembic current` stamps nothing.
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.LEGACY

    result = _alembic_cli("-x", f"url={sql_url}", "upgrade", "head")

    assert result.returncode == 0, result.stderr
    assert "stamping 0001" in result.stderr
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    asyncio.run(assert_numbered_in_order(sql_url))
    assert asyncio.run(query(sql_url, "SELECT count(*) FROM events")) == [(3,)]


def test_alembic_with_a_default_stream_id(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    _alembic_cli(
        "-x", f"url={sql_url}", "-x", "default_stream_id=stdio", "upgrade", "head", check=True
    )
    streams = asyncio.run(query(sql_url, "SELECT DISTINCT stream_id FROM events"))
    assert streams == [("stdio",)]


def test_alembic_refuses_unrecognised_tables_before_running(sql_url: str) -> None:
    asyncio.run(execute(sql_url, "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)"))
    result = _alembic_cli("-x", f"url={sql_url}", "upgrade", "head")
    assert result.returncode != 0
    assert "cannot migrate: the database holds tables this version does not recognise" in (
        result.stderr
    )
    assert asyncio.run(query(sql_url, "SELECT count(*) FROM events")) == [(0,)]


def test_the_hints_name_commands_that_work(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    legacy = asyncio.run(migrate.status(sql_url)).problem()
    assert legacy.startswith("the database holds a legacy (pre-stream) events table of 3 rows")
    assert "`eventstore migrate --url URL` (or `alembic -x url=URL upgrade head`)" in legacy
    asyncio.run(migrate.upgrade(sql_url))
    asyncio.run(alembic(sql_url, "downgrade", "0003"))
    behind = asyncio.run(migrate.status(sql_url)).problem()
    assert behind.startswith("the database is at revision 0003; this version's head is 0005")
    result = CliRunner().invoke(main, ["info", "--url", sql_url])
    assert result.exit_code == 1
    assert "the database is at revision 0003" in result.output
    assert "alembic -x url=URL upgrade head" in result.output


def test_alembic_from_the_repository_root_uses_the_default_database(tmp_path: Path) -> None:
    """No URL given: ``$EVENTSTORE_DATABASE_URL``, else the embedded file in the data dir."""
    environment = {k: v for k, v in os.environ.items() if k != "EVENTSTORE_DATABASE_URL"}
    environment["XDG_DATA_HOME"] = str(tmp_path / "data")
    _alembic_cli("upgrade", "head", env=environment, check=True)
    embedded = tmp_path / "data" / "mcp-eventstore" / "events.sqlite3"
    url = f"sqlite+aiosqlite:///{embedded}"
    assert asyncio.run(migrate.status(url)).state is SchemaState.CURRENT

    named = f"sqlite+aiosqlite:///{tmp_path}/named.sqlite3"
    _alembic_cli(
        "upgrade", "0002", env={**environment, "EVENTSTORE_DATABASE_URL": named}, check=True
    )
    assert asyncio.run(migrate.status(named)).revision == "0002"


async def test_open_store_refuses_what_it_must_not_upgrade(sql_url: str) -> None:
    await create_unversioned_legacy(sql_url, LEGACY_ROWS)
    with pytest.raises(SchemaError, match=r"legacy .*eventstore migrate"):
        await open_store(sql_url)
    await migrate.upgrade(sql_url)
    await alembic(sql_url, "downgrade", "0003")
    with pytest.raises(SchemaError, match=r"revision 0003.*eventstore migrate"):
        await open_store(sql_url)
    await alembic(sql_url, "upgrade", "head")
    async with open_store(sql_url) as store:
        assert [e.id for e in await store.get_stream_events("s1", "_default")] == ["b", "a"]


async def test_a_newer_or_foreign_schema_is_refused(sql_url: str) -> None:
    await migrate.upgrade(sql_url)
    await execute(sql_url, "UPDATE eventstore_alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaError, match=r"9999.*newer version"):
        await open_store(sql_url)
    with pytest.raises(SchemaError, match="cannot migrate"):
        await migrate.upgrade(sql_url)


def test_migrate_refuses_unrecognised_tables(sql_url: str) -> None:
    asyncio.run(execute(sql_url, "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)"))
    code, output = run_migrate("--url", sql_url)
    assert code == 1
    assert "does not recognise" in output

    async def open_it() -> None:
        await open_store(sql_url)

    with pytest.raises(SchemaError, match="does not recognise"):
        asyncio.run(open_it())


async def test_open_store_without_create_schema_leaves_an_empty_database(sql_url: str) -> None:
    if sql_url.startswith("sqlite"):
        path = sql_url.split("///", 1)[1]
        await asyncio.to_thread(lambda: sqlite3.connect(path).execute("VACUUM").connection.close())
    with pytest.raises(SchemaError, match=r"no event store tables.*eventstore migrate"):
        await open_store(sql_url, create_schema=False)
    assert (await migrate.status(sql_url)).state is SchemaState.EMPTY


async def test_open_store_without_create_schema_creates_no_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.sqlite3"
    with pytest.raises(SchemaError, match=r"the file does not exist.*eventstore migrate"):
        await open_store(f"sqlite:///{path}", create_schema=False)
    assert not await asyncio.to_thread((tmp_path / "sub").exists)
    with pytest.raises(InvalidInputError, match="is not a SQLite database file"):
        await open_store(f"sqlite:///{tmp_path}", create_schema=False)  # a directory


async def test_replicas_starting_together_migrate_once(sql_url: str) -> None:
    reports = await asyncio.gather(*(migrate.upgrade(sql_url) for _ in range(3)))
    assert sorted(len(report.applied) for report in reports) == [0, 0, 5]
    stores = await asyncio.gather(*(open_store(sql_url) for _ in range(3)))
    for store in stores:
        await store.close()


async def test_a_second_migrator_waits_for_the_advisory_lock(postgres_url: str) -> None:
    holder = engine(postgres_url)
    try:
        async with holder.connect() as conn:
            await conn.execute(
                text("SELECT pg_advisory_lock(:key)"), {"key": migrate.ADVISORY_LOCK_KEY}
            )
            await conn.commit()
            waiter = cli("migrate", "--url", postgres_url)
            assert waiter.stdout is not None
            waited = await asyncio.to_thread(_read_through, waiter.stdout, "waiting for it")
            # Waiting, it keeps no transaction open (but for its brief tries): one would
            # hold up the concurrent index builds of the run it waits for, a deadlock.
            samples = []
            for _ in range(10):
                await asyncio.sleep(0.05)
                samples.append(await _transactions_other_than(conn))
            assert min(samples) == 0, samples
            assert waiter.poll() is None
            assert (await migrate.status(postgres_url)).state is SchemaState.EMPTY
            await conn.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": migrate.ADVISORY_LOCK_KEY}
            )
            await conn.commit()
            rest, _ = await asyncio.to_thread(waiter.communicate, timeout=120)
    finally:
        await holder.dispose()
    output = waited + rest
    assert waiter.returncode == 0, output
    assert "another process is migrating this database; waiting for it" in output
    assert "applied 0005 " in output


def _read_through(stream: IO[str], marker: str) -> str:
    """Lines of ``stream`` up to and including the first holding ``marker``."""
    seen = ""
    for line in stream:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never came: {seen}")


async def _transactions_other_than(conn: AsyncConnection) -> int:
    found = await conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
    )
    await conn.commit()
    return int(found.scalar() or 0)


async def test_upgrading_through_an_engine_leaves_its_pool_clean(postgres_url: str) -> None:
    db = engine(postgres_url)
    try:
        await migrate.upgrade(db)
        async with db.connect() as conn:
            timeout = (await conn.execute(text("SHOW lock_timeout"))).scalar()
            locks = (
                await conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
                )
            ).scalar()
        assert (timeout, locks) == ("0", 0)
    finally:
        await db.dispose()


def test_bad_options_are_refused_before_anything_runs(sqlite_url: str) -> None:
    for option, value, message in [
        ("--lock-timeout", "soon", "is not a duration like 500ms"),
        ("--lock-timeout", "0", "at least 1ms"),
        ("--lock-timeout", "30d", "at most"),
        ("--default-stream-id", " ", "default_stream_id must not be empty"),
        ("--default-stream-id", "", "default_stream_id must not be empty"),
        ("--invalid-data", "drop", "'drop' is not one of"),
        ("--batch-size", "0", "0 is not in the range"),
    ]:
        code, output = run_migrate("--url", sqlite_url, option, value)
        assert code == 2, (option, value, output)
        assert message in output, output
        assert "Traceback" not in output
    assert not Path(normalize_url(sqlite_url).database or "").exists()
    assert asyncio.run(migrate.status(sqlite_url)).state is SchemaState.EMPTY


def test_lock_timeout_takes_the_duration_syntax_prune_takes(postgres_url: str) -> None:
    code, script = run_migrate("--url", postgres_url, "--sql", "--lock-timeout", "1h")
    assert code == 0, script
    assert "SET lock_timeout = '3600000ms';" in script
    code, script = run_migrate("--url", postgres_url, "--sql", "--lock-timeout", "1m30s")
    assert "SET lock_timeout = '90000ms';" in script
