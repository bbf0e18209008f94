"""A host application's own Alembic history and ours, in one database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from eventstore import migrate, open_store
from eventstore.migrate import SchemaState
from tests.migrations.helpers import alembic_config, query

_HOST_ENV = """
import asyncio

from alembic import context
from sqlalchemy import Column, Integer, MetaData, Table, Text, pool
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
Table("orders", metadata, Column("id", Integer, primary_key=True), Column("item", Text))


def include_name(name, type_, parent_names):
    # The host compares its own tables only, as we compare ours.
    return type_ != "table" or name in metadata.tables


def run(connection):
    context.configure(
        connection=connection, target_metadata=metadata, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(context.config.attributes["url"], poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run)
    await engine.dispose()


asyncio.run(main())
"""

_HOST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "h1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("item", sa.Text)
    )


def downgrade():
    op.drop_table("orders")
"""


def _host_config(tmp_path: Path, url: str) -> Config:
    (tmp_path / "host" / "versions").mkdir(parents=True)
    (tmp_path / "host" / "env.py").write_text(_HOST_ENV)
    (tmp_path / "host" / "versions" / "h1_orders.py").write_text(_HOST_REVISION)
    config = Config()
    config.set_main_option("script_location", str(tmp_path / "host"))
    config.attributes["url"] = url
    return config


def _versions(url: str) -> tuple[list[tuple[str]], list[tuple[str]]]:
    return (
        asyncio.run(query(url, "SELECT version_num FROM alembic_version")),
        asyncio.run(query(url, "SELECT version_num FROM eventstore_alembic_version")),
    )


def test_both_histories_upgrade_and_neither_sees_the_other(sql_url: str, tmp_path: Path) -> None:
    host = _host_config(tmp_path, sql_url)
    ours = alembic_config(sql_url)

    command.upgrade(host, "head")
    command.upgrade(ours, "head")
    command.upgrade(host, "head")
    assert _versions(sql_url) == ([("h1",)], [("0005",)])
    # Autogenerate on either side finds its own models in sync and nothing to add or drop.
    command.check(host)
    command.check(ours)
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT

    async def store_works() -> None:
        async with open_store(sql_url) as store:
            await store.store_event("s", "a", "e", 1)

    asyncio.run(store_works())

    command.downgrade(ours, "base")
    assert asyncio.run(query(sql_url, "SELECT count(*) FROM orders")) == [(0,)]
    assert _versions(sql_url) == ([("h1",)], [])
    command.upgrade(ours, "head")
    command.downgrade(host, "base")
    assert _versions(sql_url) == ([], [("0005",)])
    assert asyncio.run(query(sql_url, "SELECT count(*) FROM events")) == [(0,)]
