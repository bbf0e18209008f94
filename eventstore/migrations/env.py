r"""Alembic environment of the event store's schema: async SQLite and PostgreSQL.

Where the database is, first match wins:

1. ``config.attributes["connection"]``: a sync :class:`~sqlalchemy.engine.Connection`
   (from ``AsyncConnection.run_sync``, as :func:`eventstore.migrate.upgrade` does) or an
   :class:`~sqlalchemy.ext.asyncio.AsyncEngine`. A connection should not be inside a
   transaction: PostgreSQL steps commit as they go.
2. ``config.attributes["url"]``, ``-x url=...``, then ``sqlalchemy.url`` of the ini file;
3. ``$EVENTSTORE_DATABASE_URL``, else the embedded SQLite file.

The history records itself in its own version table, and autogenerate compares only the
store's own tables, so it shares a database with a host application's Alembic history.

An upgrade (online) of a legacy database -- the pre-stream ``events`` table, never under
Alembic -- stamps it with the legacy baseline revision first, so ``alembic upgrade head``
upgrades it as ``eventstore migrate`` does; tables this history does not recognise are
refused before anything runs. A ``--sql`` script stops at its first error: on PostgreSQL
it starts with ``\set ON_ERROR_STOP on`` for ``psql``; for SQLite run it with
``sqlite3 -bail``.
PostgreSQL runs one transaction per revision, because revisions commit long work in
steps; SQLite runs the whole upgrade in one ``BEGIN IMMEDIATE`` transaction (given an
engine of :func:`eventstore.sql.engine.create_engine`, which issues it), so two processes
creating the same new file serialise instead of racing.
"""

from __future__ import annotations

import asyncio
import logging.config
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection, pool
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.config import default_url
from eventstore.errors import InvalidInputError, SchemaError
from eventstore.migrations import LEGACY_BASELINE, VERSION_TABLE, steps
from eventstore.sql.engine import (
    create_engine,
    display_url,
    ensure_sqlite_directory,
    normalize_url,
)
from eventstore.sql.schema import metadata

config = context.config
log = logging.getLogger("eventstore.migrations")

# Only the alembic command line has an ini file with logging sections; a programmatic
# run keeps the caller's logging.
if config.config_file_name is not None and config.file_config.has_section("loggers"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

#: Checked at each lock wait and long statement: a migration whose client died stops
#: instead of running on unobserved (PostgreSQL 14 and later).
_CLIENT_CHECK_INTERVAL = "2s"


def _url() -> URL:
    given = config.attributes.get("url")
    if given is None:
        given = context.get_x_argument(as_dictionary=True).get("url")
    if isinstance(given, str) and not given.strip():
        # What `-x url="$LEGACY_DATABASE_URL"` gives with the variable unset: taken for
        # "no URL", the upgrade would run on the embedded SQLite file instead.
        raise CommandError(
            'the url is empty: if it came from a variable (like "$LEGACY_DATABASE_URL"), '
            "that variable is unset or empty"
        )
    try:
        url = given or config.get_main_option("sqlalchemy.url") or default_url()
        if str(url).strip().lower().startswith("memory:"):
            raise InvalidInputError(
                "memory:// has no schema to migrate; give a sqlite+aiosqlite:/// or "
                "postgresql+asyncpg:// URL"
            )
        return normalize_url(url)
    except InvalidInputError as exc:
        # One FAILED line from alembic, not a traceback.
        raise CommandError(str(exc)) from exc


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Autogenerate looks at the store's tables only: a host application's tables in the
    # same database are none of this history's business.
    return type_ != "table" or name in metadata.tables


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        compare_type=True,
        compare_server_default=True,
        on_version_apply=config.attributes.get("on_version_apply"),
        **options,
    )


_PSQL_HEADER = """\\set ON_ERROR_STOP on
-- mcp-eventstore schema upgrade for PostgreSQL. Run it with psql, so that it stops at
-- the first error (such as a lock timeout) instead of running the rest against a
-- half-upgraded database; the line above makes sure of that:
--   psql -v ON_ERROR_STOP=1 -f FILE DATABASE_URL
-- After an error, run `eventstore migrate` (or print a new script with
-- `eventstore migrate --sql`): it starts where this one stopped."""

_SQLITE_HEADER = """-- mcp-eventstore schema upgrade for SQLite. Run it so that it stops at the
-- first error (each revision is one transaction):
--   sqlite3 -bail DATABASE < FILE"""


def run_offline() -> None:
    """``--sql``: print the script of the chosen dialect."""
    url = _url()
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transactional_ddl=True,
        transaction_per_migration=True,
    )
    migration = context.get_context()
    header = _PSQL_HEADER if migration.dialect.name == "postgresql" else _SQLITE_HEADER
    migration.impl.static_output(header)
    with context.begin_transaction():
        context.run_migrations()


def _is_upgrade() -> bool:
    """Whether this run is ``alembic upgrade`` (not downgrade, stamp, current, check)."""
    work = context.get_context().opts.get("fn")
    return getattr(work, "__name__", "") == "upgrade"


def _adopt_legacy(connection: Connection) -> bool:
    """Before an upgrade: whether the database holds an unversioned legacy table to stamp
    with the baseline (refusing tables this history does not recognise)."""
    from eventstore.migrate import SchemaState, inspect_schema

    found = inspect_schema(connection)
    if found.state is SchemaState.UNRECOGNISED:
        raise SchemaError(f"cannot migrate: {found.problem()}")
    return found.state is SchemaState.LEGACY


def run_on(connection: Connection) -> None:
    """Migrate through ``connection`` (sync; inside ``run_sync`` for async engines)."""
    postgresql = connection.dialect.name == "postgresql"
    # SQLite DDL is transactional with our driver setup (explicit BEGIN IMMEDIATE), though
    # Alembic assumes otherwise; saying so makes the whole upgrade one transaction there.
    _configure(connection=connection, transactional_ddl=True, transaction_per_migration=postgresql)
    if postgresql:
        _limit_waits(connection)
    try:
        with context.begin_transaction():
            # SQLite: inside the upgrade's one transaction, so a failed upgrade leaves no
            # stamp; PostgreSQL: committed with the first revision.
            if _is_upgrade() and _adopt_legacy(connection):
                log.info("an unversioned legacy events table: stamping %s", LEGACY_BASELINE)
                context.get_context().stamp(context.script, LEGACY_BASELINE)
            context.run_migrations()
    finally:
        if postgresql:
            _restore_waits(connection)


def _limit_waits(connection: Connection) -> None:
    connection.exec_driver_sql(f"SET lock_timeout = '{steps.options().lock_timeout_ms}ms'")
    if _checks_client(connection):
        connection.exec_driver_sql(
            f"SET client_connection_check_interval = '{_CLIENT_CHECK_INTERVAL}'"
        )
    connection.commit()


def _restore_waits(connection: Connection) -> None:
    # An injected connection goes back to its owner without our session settings.
    try:
        connection.rollback()
        connection.exec_driver_sql("RESET lock_timeout")
        if _checks_client(connection):
            connection.exec_driver_sql("RESET client_connection_check_interval")
        connection.commit()
    except DBAPIError:
        # The connection broke with the migration; its pool discards it.
        connection.invalidate()


def _checks_client(connection: Connection) -> bool:
    return (connection.dialect.server_version_info or (0,)) >= (14,)


async def _run_async(engine: AsyncEngine, *, dispose: bool, url: URL | None = None) -> None:
    try:
        try:
            connection = await engine.connect()
        except (DBAPIError, OSError) as exc:
            if url is None:
                raise
            # The alembic command line: one FAILED line, as for a bad URL.
            reason = exc.orig if isinstance(exc, DBAPIError) else exc
            raise CommandError(f"cannot connect to {display_url(url)}: {reason}") from exc
        try:
            await connection.run_sync(run_on)
        finally:
            await connection.close()
    finally:
        if dispose:
            await engine.dispose()


def run_online() -> None:
    injected = config.attributes.get("connection")
    if isinstance(injected, Connection):
        run_on(injected)
    elif isinstance(injected, AsyncEngine):
        asyncio.run(_run_async(injected, dispose=False))
    elif injected is None:
        url = _url()
        ensure_sqlite_directory(url)
        engine = create_engine(url, poolclass=pool.NullPool)
        asyncio.run(_run_async(engine, dispose=True, url=url))
    else:
        raise TypeError(
            "config.attributes['connection'] must be a sqlalchemy Connection or an "
            f"AsyncEngine, not {type(injected).__name__}"
        )


if context.is_offline_mode():
    run_offline()
else:
    run_online()
