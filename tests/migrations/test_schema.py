"""The schema the migrations build is the models' plus the dialect modules' triggers.

Autogenerate (see test_history.py) compares tables, columns and indexes but not CHECK
constraints and not triggers; these tests compare a migrated database with one built
straight from :data:`eventstore.sql.schema.metadata` and the dialect modules'
``CREATE_TRIGGERS``, object by object, and follow the triggers through the history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect

from eventstore import migrate
from eventstore.sql import postgresql, sqlite
from eventstore.sql.schema import metadata
from tests.migrations.helpers import alembic, engine, query, schema_objects


async def _build_from_models(url: str) -> None:
    db = engine(url)
    module = postgresql if url.startswith("postgresql") else sqlite
    try:
        async with db.begin() as conn:
            await conn.run_sync(metadata.create_all)
            for statement in module.CREATE_TRIGGERS:
                await conn.exec_driver_sql(statement)
    finally:
        await db.dispose()


async def _structure(url: str) -> dict[str, Any]:
    """Every table of the store: columns, key, indexes and CHECK constraints."""
    db = engine(url)

    def read(sync_conn: Any) -> dict[str, Any]:
        inspector = inspect(sync_conn)
        tables: dict[str, Any] = {}
        for name in sorted(metadata.tables):
            tables[name] = {
                "columns": sorted(
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(name)
                ),
                "primary key": inspector.get_pk_constraint(name)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(name)
                ),
                "checks": sorted(
                    (c["name"], " ".join(c["sqltext"].split()))
                    for c in inspector.get_check_constraints(name)
                ),
            }
        return tables

    try:
        async with db.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await db.dispose()


async def _triggers(url: str) -> dict[str, str]:
    """Trigger (and, on PostgreSQL, trigger function) definitions by name."""
    if url.startswith("postgresql"):
        rows = await query(
            url,
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE tgrelid = to_regclass('events') AND NOT tgisinternal "
            "UNION ALL "
            "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
            "WHERE proname LIKE 'eventstore%'",
        )
    else:
        rows = await query(url, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    return {str(name): str(definition) for name, definition in rows}


async def test_head_is_the_models_plus_the_triggers(two_urls: tuple[str, str]) -> None:
    migrated, reference = two_urls
    await migrate.upgrade(migrated)
    await _build_from_models(reference)

    assert await _structure(migrated) == await _structure(reference)
    triggers = await _triggers(migrated)
    assert triggers == await _triggers(reference)
    expected = {"eventstore_trim_streams"}
    if migrated.startswith("postgresql"):
        expected |= {"eventstore_assign_seq"}
    assert set(triggers) == expected


async def test_triggers_come_and_go_with_their_revisions(sql_url: str) -> None:
    on_postgres = sql_url.startswith("postgresql")
    assign = ["eventstore_assign_seq"] if on_postgres else []
    both = sorted([*assign, "eventstore_trim_streams"])

    async def objects() -> tuple[list[str], list[str]]:
        found = await schema_objects(sql_url)
        return found["triggers"], found["functions"]

    await alembic(sql_url, "upgrade", "0002")
    assert await objects() == ([], [])
    await alembic(sql_url, "upgrade", "0003")
    assert await objects() == (assign, assign)
    await alembic(sql_url, "upgrade", "0004")
    assert await objects() == (both, both if on_postgres else [])
    # SQLite rebuilds the table here, which drops its triggers: they must be back.
    await alembic(sql_url, "upgrade", "0005")
    assert await objects() == (both, both if on_postgres else [])
    await alembic(sql_url, "downgrade", "0004")
    assert await objects() == (both, both if on_postgres else [])
    await alembic(sql_url, "downgrade", "0003")
    assert await objects() == (assign, assign)
    await alembic(sql_url, "downgrade", "0002")
    assert await objects() == ([], [])
    await alembic(sql_url, "downgrade", "base")
    tables = await query(
        sql_url,
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if not on_postgres
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    )
    assert [t[0] for t in tables] == ["eventstore_alembic_version"]


async def test_a_migrated_database_has_no_leftovers(sql_url: str) -> None:
    """No temporary index or table, no invalid index, only the model's indexes."""
    await migrate.upgrade(sql_url)
    found = await schema_objects(sql_url)
    model = sorted(index.name or "" for index in metadata.tables["events"].indexes)
    if sql_url.startswith("postgresql"):
        model = sorted([*model, "events_pkey"])
    assert found["indexes"] == model
    if not sql_url.startswith("postgresql"):
        tables = await query(sql_url, "SELECT name FROM sqlite_master WHERE type = 'table'")
        assert sorted(t[0] for t in tables) == sorted(
            [*metadata.tables, "eventstore_alembic_version"]
        )
