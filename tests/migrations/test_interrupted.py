"""An upgrade killed with SIGKILL completes when re-run, leaving nothing behind."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import text

from eventstore import migrate
from eventstore.migrate import SchemaState
from eventstore.sql.engine import normalize_url
from tests.migrations.helpers import (
    alembic,
    assert_numbered_in_order,
    cli,
    engine,
    kill,
    other_backends,
    query,
    schema_objects,
    seed_generated,
    wait_until,
)
from tests.pgcluster import PostgresCluster

_CLEAN_INDEXES = ["events_pkey", "uq_events_session_event", "uq_events_stream_seq"]


async def _numbered(url: str) -> tuple[int, int]:
    """(rows with seq, rows without), or (0, 0) before the column exists."""
    columns = await query(
        url,
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'events' AND column_name = 'seq'",
    )
    if columns != [(1,)]:
        return 0, 0
    rows = await query(
        url,
        "SELECT count(*) FILTER (WHERE seq IS NOT NULL), count(*) FILTER (WHERE seq IS NULL) "
        "FROM events",
    )
    return rows[0][0], rows[0][1]


async def _rerun_completes(url: str) -> None:
    again = cli("migrate", "--url", url)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    assert (await migrate.status(url)).state is SchemaState.CURRENT
    await assert_numbered_in_order(url)


async def _wait_for_the_migrations_backend_to_end(url: str, *, others: int = 0) -> None:
    """The killed client's server process notices (client_connection_check_interval)."""
    watcher = engine(url)
    try:
        async with watcher.connect() as conn:

            async def gone() -> bool:
                count = await other_backends(conn)
                await conn.rollback()
                return count == others

            await wait_until(gone, timeout=60)
    finally:
        await watcher.dispose()


async def test_postgres_killed_in_the_middle_of_the_backfill(postgres_url: str) -> None:
    await alembic(postgres_url, "upgrade", "0001")
    await seed_generated(postgres_url, sessions=200, per_session=500)
    upgrade = cli("migrate", "--url", postgres_url, "--batch-size", "200")

    async def halfway() -> bool:
        done, pending = await _numbered(postgres_url)
        return done > 0 and pending > 0

    await wait_until(halfway, every=0.005)
    kill(upgrade)
    await _wait_for_the_migrations_backend_to_end(postgres_url)
    done, pending = await _numbered(postgres_url)
    assert done > 0 and pending > 0, "the kill did not land in the backfill"
    assert (await migrate.status(postgres_url)).revision == "0002"

    await _rerun_completes(postgres_url)
    assert (await schema_objects(postgres_url))["indexes"] == _CLEAN_INDEXES


async def test_postgres_killed_in_the_middle_of_an_index_build(postgres_url: str) -> None:
    """A concurrent build waits for older snapshots with its index marked invalid; a
    transaction holding one keeps the build there while the migration is killed."""
    await alembic(postgres_url, "upgrade", "0001")
    await seed_generated(postgres_url, sessions=100, per_session=300)
    upgrade = cli("migrate", "--url", postgres_url, "--batch-size", "100")

    async def pending_index_built() -> bool:
        valid = await query(
            postgres_url,
            "SELECT indisvalid FROM pg_index "
            "WHERE indexrelid = to_regclass('ix_events_pending_seq')",
        )
        return valid == [(True,)]

    async def unique_index_waiting() -> bool:
        rows = await query(
            postgres_url,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'virtualxid' "
            "AND query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY uq_events_session_event%'",
        )
        return rows == [(1,)]

    holder = engine(postgres_url)
    try:
        async with holder.connect() as snapshot:
            await wait_until(pending_index_built, every=0.005)
            # Taken while the backfill runs: older than the unique index build to come.
            snapshot = await snapshot.execution_options(isolation_level="REPEATABLE READ")
            await snapshot.execute(text("SELECT 1"))
            await wait_until(unique_index_waiting)
            kill(upgrade)
            await _wait_for_the_migrations_backend_to_end(postgres_url, others=1)
            await snapshot.rollback()
    finally:
        await holder.dispose()
    indexes = (await schema_objects(postgres_url))["indexes"]
    assert "uq_events_session_event (invalid)" in indexes, indexes

    await _rerun_completes(postgres_url)
    assert (await schema_objects(postgres_url))["indexes"] == _CLEAN_INDEXES


async def test_sqlite_killed_in_the_middle_of_the_upgrade(sqlite_url: str) -> None:
    """SQLite upgrades in one transaction: a kill leaves the database as it was."""
    await alembic(sqlite_url, "upgrade", "0001")
    await seed_generated(sqlite_url, sessions=200, per_session=1500)
    database = normalize_url(sqlite_url).database
    assert database is not None
    upgrade = cli("migrate", "--url", sqlite_url)

    async def writing() -> bool:
        return _journal_size(database) > 4 * 1024 * 1024

    await wait_until(writing, every=0.005)
    kill(upgrade)
    assert upgrade.returncode < 0, "the upgrade finished before the kill"
    assert (await migrate.status(sqlite_url)).revision == "0001"

    await _rerun_completes(sqlite_url)


def _journal_size(database: str) -> int:
    journal = f"{database}-wal"
    return os.path.getsize(journal) if os.path.exists(journal) else 0


async def test_postgres_restarted_in_the_middle_of_the_backfill(
    own_postgres_cluster: PostgresCluster,
) -> None:
    url = await asyncio.to_thread(own_postgres_cluster.create_database)
    await alembic(url, "upgrade", "0001")
    await seed_generated(url, sessions=200, per_session=500)
    upgrade = cli("migrate", "--url", url, "--batch-size", "200")

    async def halfway() -> bool:
        done, pending = await _numbered(url)
        return done > 0 and pending > 0

    await wait_until(halfway, every=0.005)
    await asyncio.to_thread(own_postgres_cluster.stop, "fast")
    await asyncio.to_thread(own_postgres_cluster.start)
    output, _ = await asyncio.to_thread(upgrade.communicate, timeout=120)

    assert upgrade.returncode == 1, output
    assert "Traceback" not in output and "PendingRollbackError" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert errors[0].startswith(
        "Error: revision 0003 Backfill: per-stream seq for existing rows, unique event ids, "
        "the replay indexes: the connection to the database was lost during this revision"
    ), errors[0]
    assert errors[0].endswith(
        "; run `eventstore migrate` again once the database is back: it resumes where it stopped"
    ), errors[0]
    done, pending = await _numbered(url)
    assert done > 0 and pending > 0, "the restart did not land in the backfill"

    await _rerun_completes(url)
    assert (await schema_objects(url))["indexes"] == _CLEAN_INDEXES
