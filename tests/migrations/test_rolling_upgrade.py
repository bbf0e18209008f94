"""A server of the previous version keeps writing while PostgreSQL is upgraded."""

from __future__ import annotations

import asyncio

import pytest

from tests.migrations.helpers import (
    LegacyWriter,
    alembic,
    assert_numbered_in_order,
    cli,
    query,
    schema_objects,
    seed_generated,
)


async def test_a_legacy_writer_never_fails_during_the_upgrade(
    postgres_url: str, record_property: pytest.RecordProperty
) -> None:
    await alembic(postgres_url, "upgrade", "0001")
    await seed_generated(postgres_url, sessions=100, per_session=300)
    # Existing sessions (numbered by the backfill, or by the trigger once it is in) and
    # new ones (created by the writer while the upgrade runs).
    writer = LegacyWriter(postgres_url, ["s1", "s2", "new-a", "s3", "new-b"])
    writing = asyncio.create_task(writer.run())
    try:
        await asyncio.sleep(0.3)
        before = len(writer.latencies)
        upgrade = cli("migrate", "--url", postgres_url, "--batch-size", "500")
        output, _ = await asyncio.to_thread(upgrade.communicate, timeout=600)
        during = len(writer.latencies) - before
        await asyncio.sleep(0.3)
    finally:
        writer.stop()
        await writing
    assert upgrade.returncode == 0, output
    assert during > 20, "the writer barely ran during the upgrade"
    assert writer.failures == []
    written = await query(postgres_url, "SELECT count(*) FROM events WHERE event_id LIKE 'w%'")
    assert written == [(len(writer.latencies),)]
    await assert_numbered_in_order(postgres_url)
    assert not any("invalid" in name for name in (await schema_objects(postgres_url))["indexes"])
    record_property("writer_max_stall_s", round(writer.max_stall, 3))
    print(
        f"\nlegacy writer: {len(writer.latencies)} inserts, {during} during the upgrade, "
        f"max stall {writer.max_stall * 1000:.0f} ms"
    )
