"""``eventstore migrate`` when things go wrong: one ``Error:`` line, never a traceback.

Unreachable databases, a revision that fails, Ctrl-C; ``--sql`` that must only read; a
lock wait that must not block the caller's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url

from eventstore import StoreUnavailableError, migrate
from eventstore.cli import main
from eventstore.migrate import MigrationError, SchemaState
from eventstore.sql.engine import normalize_url
from tests.migrations.helpers import (
    ROOT,
    alembic,
    assert_numbered_in_order,
    cli,
    create_unversioned_legacy,
    engine,
    execute,
    query,
    run_migrate,
    seed_generated,
    wait_until,
)

LEGACY_ROWS = [("s1", "a", "1", 10), ("s1", "b", "2", 5), ("s2", "a", "3", 7)]


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    return errors[0]


def _unreachable(postgres_url: str) -> list[tuple[str, str]]:
    url = make_url(postgres_url)
    return [
        (url.set(host="nohost.invalid").render_as_string(False), "nohost.invalid"),
        (url.set(port=1).render_as_string(False), "Connect call failed"),
        (url.set(username="nobody").render_as_string(False), 'role "nobody" does not exist'),
        (url.set(database="no_such_db").render_as_string(False), "no_such_db"),
    ]


@pytest.mark.parametrize("case", range(4), ids=["no-host", "refused", "bad-role", "no-database"])
def test_an_unreachable_database_is_one_error_line(postgres_url: str, case: int) -> None:
    url, detail = _unreachable(postgres_url)[case]
    for args in (["--url", url], ["--url", url, "--sql"], ["--url", url, "--downgrade", "0001"]):
        result = subprocess.run(
            [sys.executable, "-c", "from eventstore.cli import main; main()", "migrate", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        error = _one_error_line(result.stderr)
        assert error.startswith("Error: cannot connect to postgresql+asyncpg://"), error
        assert detail in error


async def test_the_library_raises_store_unavailable(postgres_url: str) -> None:
    url, _ = _unreachable(postgres_url)[1]
    with pytest.raises(StoreUnavailableError, match="cannot connect to"):
        await migrate.upgrade(url)
    with pytest.raises(StoreUnavailableError, match="cannot connect to"):
        await migrate.status(url)


def test_a_failing_revision_is_named(sql_url: str) -> None:
    """A stray head table that the expand revision would create."""
    asyncio.run(create_unversioned_legacy(sql_url, LEGACY_ROWS))
    asyncio.run(alembic(sql_url, "stamp", "0001"))
    asyncio.run(execute(sql_url, "CREATE TABLE event_streams (x INTEGER)"))

    code, output = run_migrate("--url", sql_url)

    assert code == 1
    error = _one_error_line(output)
    assert error.startswith("Error: revision 0002 Expand: stream_id, a nullable seq"), error
    assert "event_streams" in error and "already exists" in error
    assert "run the upgrade again" in error
    with pytest.raises(MigrationError) as raised:
        asyncio.run(migrate.upgrade(sql_url))
    assert raised.value.revision is not None and raised.value.revision.id == "0002"

    asyncio.run(execute(sql_url, "DROP TABLE event_streams"))
    code, output = run_migrate("--url", sql_url)
    assert code == 0, output
    asyncio.run(assert_numbered_in_order(sql_url))


async def test_ctrl_c_stops_the_upgrade_with_130_and_a_rerun_finishes(sql_url: str) -> None:
    await alembic(sql_url, "upgrade", "0001")
    await seed_generated(sql_url, sessions=200, per_session=1000)
    upgrade = cli("migrate", "--url", sql_url, "--batch-size", "100")

    async def started() -> bool:
        if sql_url.startswith("postgresql"):
            rows = await query(
                sql_url,
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'events' AND column_name = 'seq'",
            )
            if rows != [(1,)]:
                return False
            numbered = await query(sql_url, "SELECT count(*) FROM events WHERE seq IS NOT NULL")
            return bool(numbered[0][0])
        return _wal_size(sql_url) > 1024 * 1024

    await wait_until(started, every=0.005)
    upgrade.send_signal(signal.SIGINT)
    output, _ = await asyncio.to_thread(upgrade.communicate, timeout=120)

    assert upgrade.returncode == 130, output
    assert "Traceback" not in output
    assert "PendingRollbackError" not in output
    assert "interrupted: the upgrade stopped" in output
    if sql_url.startswith("postgresql"):
        assert "what it committed stays. Run the same command again to finish" in output
    else:
        # It may have printed "applied 0002": on SQLite that was undone with the rest.
        assert "SQLite runs it in one transaction, so none of it was committed" in output
        assert (await migrate.status(sql_url)).revision == "0001"
    assert (await migrate.status(sql_url)).state is SchemaState.BEHIND

    again = cli("migrate", "--url", sql_url)
    output, _ = await asyncio.to_thread(again.communicate, timeout=600)
    assert again.returncode == 0, output
    await assert_numbered_in_order(sql_url)


def _wal_size(url: str) -> int:
    wal = f"{normalize_url(url).database}-wal"
    return os.path.getsize(wal) if os.path.exists(wal) else 0


def test_sql_only_reads_a_sqlite_path_that_does_not_exist(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/not/there/events.sqlite3"

    code, script = run_migrate("--url", url, "--sql")

    assert code == 0, script
    assert "CREATE TABLE events" in script
    assert list(tmp_path.iterdir()) == []
    assert asyncio.run(migrate.status(url)).state is SchemaState.EMPTY
    assert list(tmp_path.iterdir()) == []


def test_sql_leaves_an_existing_legacy_file_byte_for_byte(tmp_path: Path) -> None:
    """A legacy store's file in rollback-journal mode: a WAL switch would change it."""
    path = tmp_path / "legacy.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, "
            "event_id TEXT NOT NULL, data TEXT NOT NULL, timestamp BIGINT NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO events (session_id, event_id, data, timestamp) VALUES (?, ?, ?, ?)",
            LEGACY_ROWS,
        )
    conn.close()
    url = f"sqlite:///{path}"
    before = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns

    code, script = run_migrate("--url", url, "--sql")

    assert code == 0, script
    assert "INSERT INTO eventstore_alembic_version (version_num) VALUES ('0001')" in script
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy.sqlite3"]


def test_memory_has_nothing_to_migrate() -> None:
    for args in (["--url", "memory://"], ["--url", "memory://", "--sql"]):
        code, output = run_migrate(*args)
        assert code == 2
        assert "memory:// is an in-process store without a schema: there is nothing to migrate" in (
            output
        )
        assert "unsupported database URL scheme" not in output


def test_the_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("eventstore, version ")


async def test_a_lock_wait_does_not_block_the_event_loop(postgres_url: str) -> None:
    """Retries pause with asyncio.sleep inside run_sync, so the caller's loop runs on."""
    await create_unversioned_legacy(postgres_url, LEGACY_ROWS)
    holder = engine(postgres_url)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    try:
        async with holder.connect() as conn:
            # An open transaction that read the table: r0002's ACCESS EXCLUSIVE waits.
            await conn.execute(text("SELECT count(*) FROM events"))
            ticks = asyncio.create_task(ticker())
            upgrade = asyncio.create_task(migrate.upgrade(postgres_url, lock_timeout="20ms"))
            await asyncio.sleep(2.0)  # about 8 failed attempts, 1.75 s of pauses
            assert not upgrade.done()
            await conn.rollback()
        await upgrade
        stop.set()
        await ticks
    finally:
        await holder.dispose()
    assert (await migrate.status(postgres_url)).state is SchemaState.CURRENT
    assert max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.2f}s"


def test_prune_and_migrate_share_one_duration_syntax(sqlite_url: str) -> None:
    assert CliRunner().invoke(main, ["migrate", "--url", sqlite_url]).exit_code == 0
    for idle in ("1h", "1h30m", "1.5h", "500ms"):
        result = CliRunner().invoke(main, ["prune", "--idle", idle, "--url", sqlite_url])
        assert result.exit_code == 0, (idle, result.output)
    for idle in ("0", "0s"):  # durations, but prune refuses zero (it would drop every session)
        result = CliRunner().invoke(main, ["prune", "--idle", idle, "--url", sqlite_url])
        assert result.exit_code == 2 and "must be longer than 0" in result.output, idle
    for idle in ("1", "99999999999999999999d", "1x"):
        result = CliRunner().invoke(main, ["prune", "--idle", idle, "--url", sqlite_url])
        assert result.exit_code == 2, (idle, result.output)
        assert "Traceback" not in result.output
        assert "Error: Invalid value for '--idle'" in result.output


def test_alembic_lock_timeout_takes_the_same_syntax() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-x",
            "url=postgresql://user@host/db",
            "-x",
            "lock_timeout=2m",
            "upgrade",
            "head",
            "--sql",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "SET lock_timeout = '120000ms';" in result.stdout


def test_downgrade_refuses_what_it_cannot_or_must_not_do(sqlite_url: str) -> None:
    assert run_migrate("--url", sqlite_url)[0] == 0
    assert run_migrate("--url", sqlite_url, "--downgrade", "0003")[0] == 0
    for revision, message in (
        ("base", "downgrading to base drops the events table"),
        ("0009", "unknown revision '0009'; the history has 0001, 0002, 0003, 0004, 0005"),
        ("0004", "the database is at revision 0003; 0004 is not below it"),
    ):
        code, output = run_migrate("--url", sqlite_url, "--downgrade", revision)
        assert code == 1, output
        assert message in _one_error_line(output)
    code, output = run_migrate("--url", sqlite_url, "--downgrade", "0003")
    assert code == 0 and "already at revision 0003: nothing to do" in output
    code, output = run_migrate("--url", sqlite_url, "--downgrade", "0001", "--sql")
    assert code == 2 and "--downgrade takes only --url and --lock-timeout" in output
    assert asyncio.run(migrate.status(sqlite_url)).revision == "0003"


async def test_a_sqlite_upgrade_failing_midway_says_the_earlier_revisions_were_undone(
    sqlite_url: str,
) -> None:
    await alembic(sqlite_url, "upgrade", "0001")
    await seed_generated(sqlite_url, sessions=2, per_session=3)
    # Refuses the backfill's numbering (r0003), after r0002 reported itself applied.
    await execute(
        sqlite_url,
        "CREATE TRIGGER refuse_numbering BEFORE UPDATE OF seq ON events "
        "BEGIN SELECT RAISE(ABORT, 'numbering refused by the host'); END",
    )

    code, output = await asyncio.to_thread(run_migrate, "--url", sqlite_url)

    assert code == 1, output
    assert "applied 0002 " in output
    assert "revision 0003" in output and "numbering refused by the host" in output
    assert "SQLite runs the whole upgrade in one transaction" in output
    assert "resumes where it stopped" not in output
    assert (await migrate.status(sqlite_url)).revision == "0001"
