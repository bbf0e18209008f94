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
once: the others wait, then find the database current. :func:`downgrade` goes back to an
older revision (``eventstore migrate --downgrade REV``), :func:`status` and
:func:`upgrade_script` only read (a SQLite file that does not exist is an empty database,
and is not created). Failures come as :mod:`eventstore.errors` types: a database that
cannot be reached as :class:`~eventstore.errors.StoreUnavailableError`, a revision that
fails as :class:`MigrationError` naming it.

A host application's own Alembic autogenerate should leave this history's tables alone:
:func:`is_eventstore_table` says which they are (see MIGRATION.md for the ``env.py``
recipe).
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
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, func, inspect, pool, select, table, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventstore.config import default_url
from eventstore.errors import EventStoreError, InvalidInputError, SchemaError, StoreUnavailableError
from eventstore.migrations import LEGACY_BASELINE, SCRIPT_LOCATION, VERSION_TABLE
from eventstore.migrations.steps import Options, parse_duration_ms
from eventstore.sql.engine import (
    async_engine,
    create_engine,
    display_url,
    ensure_sqlite_directory,
    normalize_url,
)
from eventstore.sql.store import database_error

__all__ = [
    "STORE_TABLES",
    "AppliedRevision",
    "MigrationError",
    "Revision",
    "SchemaState",
    "SchemaStatus",
    "UpgradeReport",
    "downgrade",
    "inspect_schema",
    "is_eventstore_table",
    "parse_duration_ms",
    "status",
    "upgrade",
    "upgrade_if_empty",
    "upgrade_script",
]

#: ``pg_advisory_lock`` key held while migrating ("eventsto" in ASCII).
ADVISORY_LOCK_KEY = 0x6576_656E_7473_746F
#: How often a process waiting for another's migration tries the lock again.
_LOCK_POLL_SECONDS = 0.1

_LEGACY_COLUMNS = frozenset({"id", "session_id", "event_id", "data", "timestamp"})
#: Every table this history creates, its version table included.
STORE_TABLES = frozenset({"events", "event_streams", "eventstore_settings", VERSION_TABLE})
_STORE_TABLES = STORE_TABLES


def is_eventstore_table(name: str | None) -> bool:
    """Whether ``name`` is one of the event store's tables (:data:`STORE_TABLES`).

    For a host application sharing the database: its Alembic ``env.py`` skips these in
    autogenerate, so ``alembic revision --autogenerate`` never proposes to drop them::

        def include_name(name, type_, parent_names):
            if type_ == "table":
                return not is_eventstore_table(name)
            return True

        context.configure(..., include_name=include_name)
    """
    return name in STORE_TABLES


class MigrationError(SchemaError):
    """A revision failed while it ran; :attr:`revision` names it.

    What was committed before stays (on PostgreSQL each revision commits on its own; on
    SQLite the run is one transaction and rolls back whole); running the same upgrade or
    downgrade again resumes.
    """

    def __init__(self, message: str, revision: Revision | None) -> None:
        super().__init__(message)
        self.revision = revision


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

    def found(self) -> str:
        """What the database holds, as the end of "the database ...": "is at revision
        0003; ...", "holds a legacy (pre-stream) events table ...", ..."""
        verb = "is" if self.state in (SchemaState.BEHIND, SchemaState.AHEAD) else "holds"
        if self.state is SchemaState.CURRENT:
            verb = "is"
        return f"{verb} {self.describe()}"

    def problem(self) -> str:
        """Why a store cannot open this database, and the command that fixes it."""
        if self.state is SchemaState.EMPTY:
            return (
                "the database has no event store tables; run `eventstore migrate` or open "
                "it with create_schema=True"
            )
        if self.state in (SchemaState.LEGACY, SchemaState.BEHIND):
            return (
                f"the database {self.found()}; upgrade it with "
                "`eventstore migrate --url URL` (or `alembic -x url=URL upgrade head`)"
            )
        if self.state is SchemaState.AHEAD:
            return f"the database {self.found()}; upgrade mcp-eventstore"
        return f"the database {self.found()}"


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


def inspect_schema(connection: Connection) -> SchemaStatus:
    """What the database behind ``connection`` (sync, e.g. inside ``run_sync``) holds.

    Only reads; the Alembic environment uses it to recognise a legacy database.
    """
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


def _target_url(target: str | URL | None) -> URL:
    """The URL of a target named by a string (``memory://`` has nothing to migrate)."""
    if isinstance(target, str) and target.strip().lower().startswith("memory:"):
        raise InvalidInputError(
            "memory:// is an in-process store without a schema: there is nothing to migrate"
        )
    return normalize_url(target or default_url())


def _safe(url: URL) -> str:
    return display_url(url)


def _sqlite_file_missing(url: URL) -> bool:
    if url.get_backend_name() != "sqlite" or not url.database:
        return False
    return not Path(url.database).expanduser().is_file()


def _read_only(url: URL) -> URL:
    """A URL that cannot write: SQLite's ``mode=ro`` (no WAL switch, no new file)."""
    if url.get_backend_name() != "sqlite":
        return url
    path = Path(url.database or "").expanduser().resolve()
    return url.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})


def _unreachable(url: URL, exc: BaseException) -> EventStoreError:
    """A failed connection: transient (no host, refused, timed out) or not (a database
    that does not exist, a role refused, a file that is not a database)."""
    if isinstance(exc, DBAPIError):
        return database_error(exc, f"cannot connect to {_safe(url)}")
    text_ = str(exc).strip() or type(exc).__name__
    return StoreUnavailableError(f"cannot connect to {_safe(url)}: {text_}")


@asynccontextmanager
async def _connect(
    target: Target, *, discard: bool, read_only: bool = False
) -> AsyncIterator[AsyncConnection]:
    """A connection to ``target``; with ``discard``, it is closed rather than pooled, so
    the migration's session state (settings, advisory lock) leaves with it. With
    ``read_only``, a URL target is opened so that nothing can be written (nor created)."""
    if isinstance(target, AsyncEngine):
        engine, owned, url = target, False, target.url
    else:
        url = _target_url(target)
        if read_only:
            engine = async_engine(_read_only(url), {"poolclass": pool.NullPool})
        else:
            try:
                ensure_sqlite_directory(url)
            except OSError as exc:
                raise StoreUnavailableError(f"cannot create {_safe(url)}: {exc}") from exc
            engine = create_engine(url, poolclass=pool.NullPool)
        owned = True
    try:
        try:
            connection = await engine.connect()
        except (DBAPIError, OSError, asyncio.TimeoutError) as exc:
            raise _unreachable(url, exc) from exc
        try:
            yield connection
        finally:
            if discard and not connection.closed:
                await connection.invalidate()
            await connection.close()
    finally:
        if owned:
            await engine.dispose()


async def _status(connection: AsyncConnection) -> SchemaStatus:
    try:
        return await connection.run_sync(inspect_schema)
    except DBAPIError as exc:
        raise database_error(exc, "cannot read the database") from exc
    finally:
        await connection.rollback()


def _empty() -> SchemaStatus:
    head = _script().get_current_head()
    assert head is not None
    return SchemaStatus(SchemaState.EMPTY, None, head, _pending(None, head))


async def status(target: Target = None) -> SchemaStatus:
    """What the database at ``target`` (an engine, a URL, or None for the default
    database) holds, and what :func:`upgrade` would do to it.

    Only reads: a URL is opened read-only, and a SQLite file that does not exist is
    reported as an empty database without being created.
    """
    if not isinstance(target, AsyncEngine) and _sqlite_file_missing(_target_url(target)):
        return _empty()
    async with _connect(target, discard=False, read_only=True) as connection:
        return await _status(connection)


def _options(
    default_stream_id: str | None,
    batch_size: int | None,
    lock_timeout: str | int | None,
    invalid_data: str | None = None,
) -> dict[str, object]:
    given: dict[str, object] = {
        "default_stream_id": default_stream_id,
        "batch_size": batch_size,
        "lock_timeout": lock_timeout,
        "invalid_data": invalid_data,
    }
    options = {name: value for name, value in given.items() if value is not None}
    Options.parse(options)  # bad values fail here, before anything runs
    return options


def _refuse(found: SchemaStatus) -> None:
    if found.state in (SchemaState.AHEAD, SchemaState.UNRECOGNISED):
        raise SchemaError(f"cannot migrate: the database {found.found()}")


async def _advisory_lock(connection: AsyncConnection, progress: Progress) -> None:
    """Take the migration lock, waiting for another process's run to end.

    Polled, with no transaction open between tries: a run builds indexes
    ``CONCURRENTLY``, which waits for every transaction in progress, so one blocked in
    ``pg_advisory_lock`` would deadlock with the run it waits for.
    """
    if connection.dialect.name != "postgresql":
        return
    key = {"key": ADVISORY_LOCK_KEY}
    try_lock = text("SELECT pg_try_advisory_lock(:key)")
    got = (await connection.execute(try_lock, key)).scalar()
    await connection.commit()
    if not got:
        progress("another process is migrating this database; waiting for it")
    while not got:
        await asyncio.sleep(_LOCK_POLL_SECONDS)
        got = (await connection.execute(try_lock, key)).scalar()
        await connection.commit()


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, then the exceptions it arose from or while handling, oldest last."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not other for other in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or arose while handling, a cancellation or Ctrl-C."""
    return any(isinstance(e, (asyncio.CancelledError, KeyboardInterrupt)) for e in _chain(exc))


def _lost_connection(exc: BaseException) -> tuple[bool, str]:
    """Whether ``exc`` came from losing the connection, and the driver's word on it.

    The driver error that invalidated the connection is often not the one raised:
    cleanup on the dead connection (Alembic leaving an autocommit block, a rollback)
    raises ``PendingRollbackError`` from it, which alone says nothing about the cause.
    """
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True, str(error.orig).strip()
    if any(isinstance(error, PendingRollbackError) for error in chain):
        return True, "the connection was invalidated"
    return False, ""


@asynccontextmanager
async def _cancellation_stays_cancellation() -> AsyncIterator[None]:
    """A cancelled run ends in ``CancelledError``, not in the error its cleanup raised
    (a rollback on a connection the cancellation broke)."""
    try:
        yield
    except Exception as exc:
        if _interrupted(exc):
            raise asyncio.CancelledError() from exc
        raise


@asynccontextmanager
async def _migrating(
    target: Target, say: Progress
) -> AsyncIterator[tuple[AsyncConnection, SchemaStatus]]:
    """A connection holding the migration lock, and the schema found once it was taken."""
    async with (
        _cancellation_stays_cancellation(),
        _alembic_turn(),
        _connect(target, discard=True) as connection,
    ):
        await _advisory_lock(connection, say)
        yield connection, await _status(connection)


async def upgrade(
    target: Target = None,
    *,
    default_stream_id: str | None = None,
    batch_size: int | None = None,
    lock_timeout: str | int | None = None,
    invalid_data: str | None = None,
    progress: Progress | None = None,
) -> UpgradeReport:
    """Upgrade the database at ``target`` to this version's schema.

    ``target`` is an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (one of its connections
    is used, then discarded rather than pooled), a URL, or None for the default database
    (``$EVENTSTORE_DATABASE_URL``, else the embedded SQLite file). Options, used by the
    revisions that need them: ``default_stream_id`` (stream of legacy rows),
    ``batch_size`` (rows per PostgreSQL backfill statement), ``lock_timeout`` (longest
    wait for a lock that blocks writers: a duration such as ``"500ms"`` or ``"2s"``, or
    an ``int`` of milliseconds), ``invalid_data`` (legacy rows whose data is not JSON:
    ``"refuse"``, the default, stops before changing anything and names them;
    ``"string"`` keeps each as a JSON string of its text). ``progress`` receives the plan
    and a line per revision with its duration.

    Raises :class:`~eventstore.errors.SchemaError` for a database ahead of this version
    or holding unrecognised tables, :class:`MigrationError` (a ``SchemaError``) naming
    the revision that failed, and :class:`~eventstore.errors.StoreUnavailableError` when
    the database cannot be reached, the connection to it is lost during a revision (a
    server restart), or a lock stayed unavailable; either way, what was
    applied stays applied and a re-run resumes.
    """
    say = progress or (lambda _line: None)
    options = _options(default_stream_id, batch_size, lock_timeout, invalid_data)
    async with _migrating(target, say) as (connection, found):
        _refuse(found)
        say(f"database: {found.describe()}")
        if found.state is SchemaState.CURRENT:
            return UpgradeReport(found)
        for line in found.plan():
            say(f"will {line}")
        applied = await connection.run_sync(_run_upgrade, found, options, say)
        return UpgradeReport(found, applied)


async def upgrade_if_empty(target: Target = None) -> bool:
    """Create the schema of a database that has none; ``True`` if this call created it.

    Decided under the migration lock (PostgreSQL), so that of several processes opening
    one empty database at once, one creates the schema and the others, once it is done,
    find it current. A current database is left as it is; any other state (legacy,
    behind, ahead, unrecognised tables) raises :class:`~eventstore.errors.SchemaError`
    saying what to run: only an empty database is changed without being asked.
    """
    say: Progress = lambda _line: None  # noqa: E731
    async with _migrating(target, say) as (connection, found):
        if found.state is SchemaState.CURRENT:
            return False
        if found.state is not SchemaState.EMPTY:
            raise SchemaError(found.problem())
        options = _options(None, None, None, None)
        await connection.run_sync(_run_upgrade, found, options, say)
        return True


class _Steps:
    """Collects the revisions a run applies (``on_version_apply``), with their timings."""

    def __init__(self, say: Progress, verb: str, *, one_transaction: bool) -> None:
        self.say = say
        self.verb = verb
        #: SQLite runs the whole run in one transaction: a failure undoes every revision.
        self.one_transaction = one_transaction
        self.done: list[AppliedRevision] = []
        self._started = time.monotonic()

    def __call__(self, *, step: MigrationInfo, **_: Any) -> None:
        now = time.monotonic()
        if step.is_upgrade or step.is_stamp:
            revision_id = step.up_revision_id
        else:
            revision_id = step.up_revision_id or next(iter(step.source_revision_ids), None)
        revision = _revision(revision_id or "")
        self.done.append(AppliedRevision(revision, now - self._started, stamped=step.is_stamp))
        verb = "stamped" if step.is_stamp else self.verb
        self.say(f"{verb} {revision} in {now - self._started:.2f}s")
        self._started = now

    def failed(self, planned: tuple[Revision, ...], exc: Exception, action: str) -> Exception:
        """The error to raise for ``exc``, naming the revision that was running."""
        ran = len([step for step in self.done if not step.stamped])
        revision = planned[ran] if ran < len(planned) else None
        where = f"revision {revision}" if revision else f"{action} of the database"
        lost, cause = _lost_connection(exc)
        if lost:
            during = "during this revision" if revision else f"during the {action}"
            command = "eventstore migrate" + (
                " --downgrade REVISION" if action == "downgrade" else ""
            )
            return StoreUnavailableError(
                f"{where}: the connection to the database was lost {during} ({cause}); "
                f"run `{command}` again once the database is back: it resumes where it "
                "stopped"
            )
        if isinstance(exc, DBAPIError):
            detail = str(exc.orig).strip()
        elif isinstance(exc, EventStoreError):
            detail = str(exc)
            if isinstance(exc, StoreUnavailableError):
                return StoreUnavailableError(f"{where}: {detail}")
            if isinstance(exc, SchemaError):  # says what to do itself
                return MigrationError(f"{where} stopped: {detail}", revision)
        else:
            detail = f"{type(exc).__name__}: {exc}"
        if self.one_transaction and ran:
            return MigrationError(
                f"{where} failed: {detail}; SQLite runs the whole {action} in one "
                f"transaction, so the revisions reported {self.verb} before it were undone "
                f"with it: fix the cause and run the {action} again",
                revision,
            )
        return MigrationError(
            f"{where} failed: {detail}; fix the cause and run the {action} again: it "
            "resumes where it stopped",
            revision,
        )


def _run_upgrade(
    connection: Connection,
    found: SchemaStatus,
    options: Mapping[str, object],
    say: Progress,
) -> list[AppliedRevision]:
    steps = _Steps(say, "applied", one_transaction=connection.dialect.name == "sqlite")
    config = _config(connection=connection, options=options, on_apply=steps)
    try:
        if found.state is SchemaState.LEGACY:
            command.stamp(config, LEGACY_BASELINE)
        command.upgrade(config, "head")
    except Exception as exc:
        if _interrupted(exc):
            raise
        raise steps.failed(found.pending, exc, "upgrade") from exc
    return steps.done


async def downgrade(
    target: Target,
    revision: str,
    *,
    lock_timeout: str | int | None = None,
    progress: Progress | None = None,
) -> UpgradeReport:
    """Take the database at ``target`` back to ``revision`` (``"0001"``: the legacy table).

    Every revision above ``revision`` is downgraded, newest first; :attr:`UpgradeReport.
    applied` lists them. ``base`` (which would drop the events table) is refused: use
    ``alembic downgrade base`` if that is what you mean. Raises
    :class:`~eventstore.errors.InvalidInputError` for an unknown revision or one not below
    the database's, :class:`~eventstore.errors.SchemaError` for a database without this
    history, and :class:`MigrationError` naming a revision that fails.
    """
    say = progress or (lambda _line: None)
    wanted = str(revision).strip()
    if wanted.lower() == "base":
        raise InvalidInputError(
            "downgrading to base drops the events table with every event; refusing (run "
            "`alembic downgrade base` yourself if that is really what you want)"
        )
    try:
        known = _script().get_revision(wanted)
    except CommandError:
        known = None
    if known is None or known.revision != wanted:
        ids = ", ".join(r.revision for r in reversed(list(_script().walk_revisions())))
        raise InvalidInputError(f"unknown revision {wanted!r}; the history has {ids}")
    options = _options(None, None, lock_timeout)
    async with _migrating(target, say) as (connection, found):
        if found.state not in (SchemaState.CURRENT, SchemaState.BEHIND):
            raise SchemaError(f"cannot downgrade: the database {found.found()}")
        say(f"database: {found.describe()}")
        if found.revision == wanted:
            say(f"already at revision {wanted}: nothing to do")
            return UpgradeReport(found)
        assert found.revision is not None
        below = [r.id for r in _pending(None, found.revision)][:-1]
        if wanted not in below:
            raise InvalidInputError(
                f"the database is at revision {found.revision}; {wanted} is not below it "
                "(run `eventstore migrate` to upgrade)"
            )
        above = _pending(wanted, found.revision)
        planned = tuple(reversed(above))
        for step in planned:
            say(f"will revert {step}")
        done = await connection.run_sync(_run_downgrade, wanted, planned, options, say)
        return UpgradeReport(found, done)


def _run_downgrade(
    connection: Connection,
    wanted: str,
    planned: tuple[Revision, ...],
    options: Mapping[str, object],
    say: Progress,
) -> list[AppliedRevision]:
    steps = _Steps(say, "reverted", one_transaction=connection.dialect.name == "sqlite")
    config = _config(connection=connection, options=options, on_apply=steps)
    try:
        command.downgrade(config, wanted)
    except Exception as exc:
        if _interrupted(exc):
            raise
        raise steps.failed(planned, exc, "downgrade") from exc
    return steps.done


async def upgrade_script(
    target: Target = None,
    *,
    default_stream_id: str | None = None,
    batch_size: int | None = None,
    lock_timeout: str | int | None = None,
    invalid_data: str | None = None,
) -> str:
    """The SQL :func:`upgrade` would run on ``target``, as a script for a DBA.

    The database is read (read-only) to decide where the script starts, and it is
    refused like :func:`upgrade` refuses it; nothing is written, and a SQLite file that
    does not exist is not created (the script then builds everything). Data steps run
    set-based in the script, not in batches. The script stops at its first error: a
    PostgreSQL one starts with ``\\set ON_ERROR_STOP on`` for ``psql``; run a SQLite one
    with ``sqlite3 -bail``.
    """
    options = _options(default_stream_id, batch_size, lock_timeout, invalid_data)
    if isinstance(target, AsyncEngine):
        url = target.url
        found = await status(target)
    else:
        url = _target_url(target)
        found = await status(url)
    _refuse(found)
    if found.state is SchemaState.CURRENT:
        return f"-- {found.describe()}: nothing to do\n"
    output = io.StringIO()
    config = _config(url=url, options=options, output=output)
    async with _alembic_turn():
        if found.state is SchemaState.LEGACY:
            command.stamp(config, LEGACY_BASELINE, sql=True)
            script = output.getvalue()
            command.upgrade(config, f"{LEGACY_BASELINE}:head", sql=True)
            return _one_header(script, output.getvalue()[len(script) :])
        if found.state is SchemaState.BEHIND:
            command.upgrade(config, f"{found.revision}:head", sql=True)
        else:
            command.upgrade(config, "head", sql=True)
    return output.getvalue()


def _one_header(first: str, second: str) -> str:
    """Two offline runs' output as one script: the second's header (env.py prints one per
    run) goes, the first's stays on top."""
    header_end = second.find("\n\n")
    if header_end >= 0 and second.lstrip().startswith(("\\set", "--")):
        second = second[header_end + 2 :]
    return first + second
