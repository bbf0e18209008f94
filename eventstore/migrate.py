"""Bring a database to this version's schema: what it holds, and the upgrade.

The Alembic history in :mod:`eventstore.migrations` is the only way the SQL schema is
created. This module drives it for ``eventstore migrate``, for :func:`eventstore.open_store`
(which creates a new database's schema) and for applications::

    report = await eventstore.migrate.upgrade("postgresql+asyncpg://user:pass@host/db")

It runs inside the caller's event loop: Alembic runs in ``AsyncConnection.run_sync``, not
in a nested ``asyncio.run``. What it finds decides what it does (:class:`SchemaState`):

* an empty database gets every revision;
* a **legacy** database -- the pre-stream ``events`` table, never under Alembic -- is
  stamped with the legacy baseline revision, then upgraded;
* a database behind the head is upgraded; one at the head is left alone;
* a database ahead of this version, or holding tables this version does not recognise,
  is refused with :class:`~eventstore.errors.SchemaError`.

On PostgreSQL the run holds an advisory lock, so replicas starting together migrate
once: the others wait, then find the database current.
"""

from __future__ import annotations

import asyncio
import enum
import io
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, func, inspect, pool, select, table, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventstore.config import default_url
from eventstore.errors import SchemaError
from eventstore.migrations import LEGACY_BASELINE, SCRIPT_LOCATION, VERSION_TABLE
from eventstore.migrations.steps import Options
from eventstore.sql.engine import create_engine, ensure_sqlite_directory, normalize_url

__all__ = [
    "AppliedRevision",
    "Revision",
    "SchemaState",
    "SchemaStatus",
    "UpgradeReport",
    "status",
    "upgrade",
    "upgrade_script",
]

#: ``pg_advisory_lock`` key held while migrating ("eventsto" in ASCII).
ADVISORY_LOCK_KEY = 0x6576_656E_7473_746F

_LEGACY_COLUMNS = frozenset({"id", "session_id", "event_id", "data", "timestamp"})
_STORE_TABLES = frozenset({"events", "event_streams", "eventstore_settings", VERSION_TABLE})

Target = AsyncEngine | str | URL | None
Progress = Callable[[str], None]


class SchemaState(enum.Enum):
    """What a database holds, as far as the event store is concerned."""

    EMPTY = "empty"
    LEGACY = "legacy"
    BEHIND = "behind"
    CURRENT = "current"
    AHEAD = "ahead"
    UNRECOGNISED = "unrecognised"


@dataclass(frozen=True)
class Revision:
    """One revision of the history: its id and the first line of its docstring."""

    id: str
    title: str

    def __str__(self) -> str:
        return f"{self.id} {self.title}"


@dataclass(frozen=True)
class SchemaStatus:
    """A database's schema, and what :func:`upgrade` would do to it."""

    state: SchemaState
    #: The applied revision of this history; None when the database has no history.
    revision: str | None
    #: The newest revision this version of the library knows.
    head: str
    #: Revisions an upgrade applies, oldest first.
    pending: tuple[Revision, ...] = ()
    #: Rows of a legacy table (None unless ``state`` is LEGACY).
    legacy_rows: int | None = None
    #: Why the schema was not recognised.
    detail: str = ""

    def describe(self) -> str:
        """One sentence about the database's schema."""
        if self.state is SchemaState.EMPTY:
            return "no event store tables"
        if self.state is SchemaState.LEGACY:
            return (
                f"a legacy (pre-stream) events table of {self.legacy_rows} rows "
                "without migration history"
            )
        if self.state is SchemaState.CURRENT:
            return f"up to date (revision {self.revision})"
        if self.state is SchemaState.BEHIND:
            return f"at revision {self.revision}; this version's head is {self.head}"
        if self.state is SchemaState.AHEAD:
            return (
                f"at revision {self.revision}, which this version of mcp-eventstore does "
                f"not know (its head is {self.head}): a newer version migrated it"
            )
        return f"tables this version does not recognise as an event store: {self.detail}"

    def plan(self) -> list[str]:
        """What :func:`upgrade` will do, one step a line (nothing for a current database,
        and nothing for one it refuses)."""
        lines = []
        if self.state is SchemaState.LEGACY:
            lines.append(f"stamp {LEGACY_BASELINE} (the legacy table is that revision)")
        lines.extend(f"apply {revision}" for revision in self.pending)
        return lines

    def problem(self) -> str:
        """Why a store cannot open this database, and the command that fixes it."""
        if self.state is SchemaState.EMPTY:
            return (
                "the database has no event store tables; run `eventstore migrate` or open "
                "it with create_schema=True"
            )
        if self.state in (SchemaState.LEGACY, SchemaState.BEHIND):
            return (
                f"the database holds {self.describe()}; upgrade it with "
                "`eventstore migrate --url URL` (or `alembic upgrade head`)"
            )
        if self.state is SchemaState.AHEAD:
            return f"the database is {self.describe()}; upgrade mcp-eventstore"
        return f"the database holds {self.describe()}"


@dataclass(frozen=True)
class AppliedRevision:
    """A revision an upgrade applied (or, for a legacy database, stamped)."""

    revision: Revision
    seconds: float
    stamped: bool = False


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade` found and did."""

    before: SchemaStatus
    applied: list[AppliedRevision] = field(default_factory=list)


#: Alembic's ``context`` and ``op`` are process-wide: one Alembic run at a time per process,
#: whatever the thread or event loop.
_ALEMBIC_RUN = threading.Lock()


@asynccontextmanager
async def _alembic_turn() -> AsyncIterator[None]:
    """Wait, without blocking the event loop, until no other Alembic run is going on."""
    if not _ALEMBIC_RUN.acquire(blocking=False):
        waiting = asyncio.get_running_loop().run_in_executor(None, _ALEMBIC_RUN.acquire)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The lock is still taken for us in the executor; hand it straight back.
            waiting.add_done_callback(lambda _: _ALEMBIC_RUN.release())
            raise
    try:
        yield
    finally:
        _ALEMBIC_RUN.release()


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config(
    *,
    connection: Connection | None = None,
    url: URL | None = None,
    options: Mapping[str, object] | None = None,
    on_apply: Callable[..., None] | None = None,
    output: io.StringIO | None = None,
) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes.update(
        connection=connection,
        url=url,
        eventstore_options=dict(options or {}),
        on_version_apply=on_apply,
    )
    return config


def _revision(script_id: str) -> Revision:
    script = _script().get_revision(script_id)
    assert script is not None
    return Revision(script.revision, script.doc.strip().rstrip("."))


def _pending(current: str | None, head: str) -> tuple[Revision, ...]:
    scripts = _script().iterate_revisions(head, current or "base")
    return tuple(reversed([_revision(s.revision) for s in scripts]))


def _inspect(connection: Connection) -> SchemaStatus:
    head = _script().get_current_head()
    assert head is not None
    names = set(inspect(connection).get_table_names())
    current = None
    if VERSION_TABLE in names:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        heads = context.get_current_heads()
        current = heads[0] if heads else None
    if current is not None:
        try:
            known = _script().get_revision(current) is not None
        except CommandError:
            known = False
        if not known:
            return SchemaStatus(SchemaState.AHEAD, current, head)
        if current == head:
            return SchemaStatus(SchemaState.CURRENT, current, head)
        return SchemaStatus(SchemaState.BEHIND, current, head, _pending(current, head))
    ours = names & _STORE_TABLES
    if not ours - {VERSION_TABLE}:
        return SchemaStatus(SchemaState.EMPTY, None, head, _pending(None, head))
    if ours - {VERSION_TABLE} == {"events"}:
        columns = {column["name"] for column in inspect(connection).get_columns("events")}
        if _LEGACY_COLUMNS <= columns and "stream_id" not in columns:
            rows = connection.execute(select(func.count()).select_from(table("events")))
            return SchemaStatus(
                SchemaState.LEGACY,
                None,
                head,
                _pending(LEGACY_BASELINE, head),
                legacy_rows=int(rows.scalar_one()),
            )
        detail = f"events table with columns {sorted(columns)}"
    else:
        detail = f"tables {sorted(ours)} without a migration history"
    return SchemaStatus(SchemaState.UNRECOGNISED, None, head, detail=detail)


@asynccontextmanager
async def _connect(target: Target, *, discard: bool) -> AsyncIterator[AsyncConnection]:
    """A connection to ``target``; with ``discard``, it is closed rather than pooled, so
    the migration's session state (settings, advisory lock) leaves with it."""
    if isinstance(target, AsyncEngine):
        engine, owned = target, False
    else:
        url = normalize_url(target or default_url())
        ensure_sqlite_directory(url)
        engine, owned = create_engine(url, poolclass=pool.NullPool), True
    try:
        async with engine.connect() as connection:
            try:
                yield connection
            finally:
                if discard and not connection.closed:
                    await connection.invalidate()
    finally:
        if owned:
            await engine.dispose()


async def _status(connection: AsyncConnection) -> SchemaStatus:
    try:
        return await connection.run_sync(_inspect)
    finally:
        await connection.rollback()


async def status(target: Target = None) -> SchemaStatus:
    """What the database at ``target`` (an engine, a URL, or None for the default
    database) holds, and what :func:`upgrade` would do to it."""
    async with _connect(target, discard=False) as connection:
        return await _status(connection)


def _options(
    default_stream_id: str | None, batch_size: int | None, lock_timeout: str | int | None
) -> dict[str, object]:
    given: dict[str, object] = {
        "default_stream_id": default_stream_id,
        "batch_size": batch_size,
        "lock_timeout": lock_timeout,
    }
    options = {name: value for name, value in given.items() if value is not None}
    Options.parse(options)  # bad values fail here, before anything runs
    return options


def _refuse(found: SchemaStatus) -> None:
    if found.state in (SchemaState.AHEAD, SchemaState.UNRECOGNISED):
        raise SchemaError(f"cannot migrate: the database holds {found.describe()}")


async def _advisory_lock(connection: AsyncConnection, progress: Progress) -> None:
    if connection.dialect.name != "postgresql":
        return
    key = {"key": ADVISORY_LOCK_KEY}
    got = (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key)).scalar()
    if not got:
        progress("another process is migrating this database; waiting for it")
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
    await connection.commit()


async def upgrade(
    target: Target = None,
    *,
    default_stream_id: str | None = None,
    batch_size: int | None = None,
    lock_timeout: str | int | None = None,
    progress: Progress | None = None,
) -> UpgradeReport:
    """Upgrade the database at ``target`` to this version's schema.

    ``target`` is an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (one of its connections
    is used, then discarded rather than pooled), a URL, or None for the default database
    (``$EVENTSTORE_DATABASE_URL``, else the embedded SQLite file). Options, used by the
    revisions that need them: ``default_stream_id`` (stream of legacy rows),
    ``batch_size`` (rows per PostgreSQL backfill statement), ``lock_timeout`` (longest
    wait for a lock that blocks writers: ``"500ms"``, ``"2s"`` or milliseconds).
    ``progress`` receives the plan and a line per revision with its duration.

    Raises :class:`~eventstore.errors.SchemaError` for a database ahead of this version
    or holding unrecognised tables, and
    :class:`~eventstore.errors.StoreUnavailableError` when a lock stayed unavailable;
    either way, what was applied stays applied and a re-run resumes.
    """
    say = progress or (lambda _line: None)
    options = _options(default_stream_id, batch_size, lock_timeout)
    async with _alembic_turn(), _connect(target, discard=True) as connection:
        await _advisory_lock(connection, say)
        found = await _status(connection)
        _refuse(found)
        say(f"database: {found.describe()}")
        if found.state is SchemaState.CURRENT:
            return UpgradeReport(found)
        for line in found.plan():
            say(f"will {line}")
        applied = await connection.run_sync(_run_upgrade, found, options, say)
        return UpgradeReport(found, applied)


def _run_upgrade(
    connection: Connection,
    found: SchemaStatus,
    options: Mapping[str, object],
    say: Progress,
) -> list[AppliedRevision]:
    applied: list[AppliedRevision] = []
    started = time.monotonic()

    def on_apply(*, step: MigrationInfo, **_: Any) -> None:
        nonlocal started
        now = time.monotonic()
        revision = _revision(step.up_revision_id or "")
        applied.append(AppliedRevision(revision, now - started, stamped=step.is_stamp))
        verb = "stamped" if step.is_stamp else "applied"
        say(f"{verb} {revision} in {now - started:.2f}s")
        started = now

    config = _config(connection=connection, options=options, on_apply=on_apply)
    if found.state is SchemaState.LEGACY:
        command.stamp(config, LEGACY_BASELINE)
    command.upgrade(config, "head")
    return applied


async def upgrade_script(
    target: Target = None,
    *,
    default_stream_id: str | None = None,
    batch_size: int | None = None,
    lock_timeout: str | int | None = None,
) -> str:
    """The SQL :func:`upgrade` would run on ``target``, as a script for a DBA.

    The database is read to decide where the script starts (and it is refused like
    :func:`upgrade` refuses it); nothing is written. Data steps run set-based in the
    script, not in batches.
    """
    options = _options(default_stream_id, batch_size, lock_timeout)
    async with _connect(target, discard=False) as connection:
        found = await _status(connection)
        url = connection.engine.url
    _refuse(found)
    if found.state is SchemaState.CURRENT:
        return f"-- {found.describe()}: nothing to do\n"
    output = io.StringIO()
    config = _config(url=url, options=options, output=output)
    async with _alembic_turn():
        if found.state is SchemaState.LEGACY:
            command.stamp(config, LEGACY_BASELINE, sql=True)
            command.upgrade(config, f"{LEGACY_BASELINE}:head", sql=True)
        elif found.state is SchemaState.BEHIND:
            command.upgrade(config, f"{found.revision}:head", sql=True)
        else:
            command.upgrade(config, "head", sql=True)
    return output.getvalue()
