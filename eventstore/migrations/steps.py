"""What the revisions share: their options, lock-bounded DDL, concurrent index builds.

On PostgreSQL the revisions follow three rules, so that writers never queue for long behind
a migration:

* a statement whose lock blocks writers (``ALTER TABLE``, ``CREATE TRIGGER``, ``LOCK
  TABLE``) waits at most ``lock_timeout`` (option, default 500 ms) for its lock and is then
  retried after a pause, up to ``lock_retries`` times: a writer waits at most one
  ``lock_timeout`` per attempt, and between attempts the queue drains;
* work that does not block writers (``CREATE``/``DROP INDEX CONCURRENTLY``, ``VALIDATE
  CONSTRAINT``) may wait up to :data:`CONCURRENT_LOCK_TIMEOUT_MS` for its lock;
* a step of several statements runs in the migration's transaction and takes its lock
  first (:func:`lock_table`); long work runs outside any transaction
  (:func:`autocommit`), one self-contained statement at a time.

Options come from ``alembic -x name=value`` or, programmatically, from
``config.attributes["eventstore_options"]`` (see :func:`eventstore.migrate.upgrade`).
Retry pauses (:func:`pause`) yield to the caller's event loop instead of blocking it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from alembic import context, op
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, MissingGreenlet
from sqlalchemy.util import await_only

from eventstore.codec import check_id
from eventstore.errors import InvalidInputError, SchemaError, StoreUnavailableError
from eventstore.events import DEFAULT_STREAM_ID

log = logging.getLogger("eventstore.migrations")

#: How long work that never blocks writers may wait for its lock.
CONCURRENT_LOCK_TIMEOUT_MS = 60_000

_LOCK_NOT_AVAILABLE = "55P03"
_UNIQUE_VIOLATION = "23505"

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
#: Longest duration :func:`parse_duration_ms` accepts (about 146 million years): any
#: sum with a timestamp in epoch ms stays inside a signed 64-bit integer.
MAX_DURATION_MS = 2**62
#: PostgreSQL's largest ``lock_timeout`` (INT_MAX milliseconds, about 24.8 days).
MAX_LOCK_TIMEOUT_MS = 2**31 - 1
#: How legacy rows whose ``data`` is not JSON are handled (``invalid_data`` option).
INVALID_DATA_MODES = ("refuse", "string")


def parse_duration_ms(value: str) -> int:
    """``500ms``, ``90s``, ``15m``, ``1h``, ``1h30m``, ``1.5h`` or ``2d``, in milliseconds.

    Every part needs a unit, except a bare ``0``. Raises
    :class:`~eventstore.errors.InvalidInputError` for anything else, and for a duration
    longer than :data:`MAX_DURATION_MS`. This is the one duration syntax of the command
    line (``eventstore prune --idle``, ``eventstore migrate --lock-timeout``) and of the
    migrations' ``-x lock_timeout``.
    """
    text_ = str(value).strip().lower().replace(" ", "")
    if text_ == "0":
        return 0
    parts = _DURATION_PART.findall(text_)
    if not text_ or "".join(number + unit for number, unit in parts) != text_:
        raise InvalidInputError(
            f"{value!r} is not a duration like 500ms, 90s, 15m, 1h, 1h30m or 2d "
            "(every number needs a unit)"
        )
    total = sum(float(number) * _UNIT_MS[unit] for number, unit in parts)
    if total > MAX_DURATION_MS:
        raise InvalidInputError(f"{value!r} is too long a duration")
    return round(total)


@dataclass(frozen=True)
class Options:
    """The knobs of a migration run."""

    #: Stream that legacy rows (and legacy writers' later inserts) belong to.
    default_stream_id: str = DEFAULT_STREAM_ID
    #: Rows numbered per statement by the PostgreSQL backfill.
    batch_size: int = 5_000
    #: Longest wait for a lock that blocks writers, per attempt.
    lock_timeout_ms: int = 500
    #: Attempts at such a lock before the run gives up (it resumes when re-run).
    lock_retries: int = 60
    #: Legacy rows whose data is not JSON: ``refuse`` the upgrade (naming the rows) or
    #: keep each such ``data`` as a JSON ``string`` of its text.
    invalid_data: str = "refuse"

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> Options:
        """Options from ``-x``-style strings (or already typed values); unknown keys are
        ignored, bad values raise :class:`~eventstore.errors.InvalidInputError`."""
        options = cls()
        if "default_stream_id" in raw:
            stream = check_id("default_stream_id", raw["default_stream_id"])
            options = _replace(options, default_stream_id=stream)
        if "batch_size" in raw:
            options = _replace(options, batch_size=_positive("batch_size", raw["batch_size"]))
        if "lock_timeout" in raw:
            options = _replace(options, lock_timeout_ms=_milliseconds(raw["lock_timeout"]))
        if "lock_retries" in raw:
            retries = _positive("lock_retries", raw["lock_retries"])
            options = _replace(options, lock_retries=retries)
        if "invalid_data" in raw:
            mode = str(raw["invalid_data"]).strip().lower()
            if mode not in INVALID_DATA_MODES:
                raise InvalidInputError(
                    f"invalid_data must be one of {', '.join(INVALID_DATA_MODES)}, "
                    f"not {raw['invalid_data']!r}"
                )
            options = _replace(options, invalid_data=mode)
        return options


def _replace(options: Options, **changes: object) -> Options:
    return Options(**{**options.__dict__, **changes})


def _positive(name: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidInputError(f"{name} must be a positive integer, not {value!r}") from None
    if number < 1:
        raise InvalidInputError(f"{name} must be a positive integer, not {value!r}")
    return number


def _milliseconds(value: object) -> int:
    """A lock timeout: an ``int`` is milliseconds, a string a duration (``500ms``, ``2s``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    else:
        try:
            amount = parse_duration_ms(str(value))
        except InvalidInputError as exc:
            raise InvalidInputError(f"lock_timeout: {exc}") from None
    if amount < 1:
        raise InvalidInputError("lock_timeout must be at least 1ms (0 would wait forever)")
    if amount > MAX_LOCK_TIMEOUT_MS:
        raise InvalidInputError(
            f"lock_timeout must be at most {MAX_LOCK_TIMEOUT_MS} ms (about 24 days)"
        )
    return amount


def options() -> Options:
    """This run's options: ``config.attributes["eventstore_options"]``, then ``-x``."""
    raw: dict[str, object] = dict(context.config.attributes.get("eventstore_options", {}))
    raw.update(context.get_x_argument(as_dictionary=True))
    return Options.parse(raw)


def is_postgresql() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def is_offline() -> bool:
    """``alembic upgrade --sql``: statements are printed, nothing can be read back."""
    return bool(context.is_offline_mode())


def autocommit() -> AbstractContextManager[None]:
    """On PostgreSQL, leave the migration's transaction: each statement commits alone.

    What the migration did so far is committed first. SQLite has no such mode here: its
    revisions run in one transaction (it has one writer at a time anyway).
    """
    if is_postgresql():
        return op.get_context().autocommit_block()
    return nullcontext()


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a database error (asyncpg through SQLAlchemy), if it has one."""
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def _set_lock_timeout(bind: Connection | None, milliseconds: int) -> None:
    statement = f"SET lock_timeout = '{int(milliseconds)}ms'"
    if bind is None:
        op.execute(statement)
    else:
        bind.exec_driver_sql(statement)


def pause(seconds: float) -> None:
    """Sleep without blocking the event loop the migration runs in.

    Revisions run inside ``AsyncConnection.run_sync`` (a greenlet of the caller's event
    loop): there the pause is an ``asyncio.sleep`` the loop serves other tasks during.
    Anywhere else (a plain sync connection) it is ``time.sleep``.
    """
    try:
        await_only(asyncio.sleep(seconds))
    except MissingGreenlet:
        time.sleep(seconds)


def _attempts(what: str) -> Iterator[int]:
    """Attempt numbers, pausing between them so writers queued behind a wait drain."""
    retries = options().lock_retries
    for attempt in range(1, retries + 1):
        if attempt > 1:
            log.info("%s: lock not available, attempt %d of %d", what, attempt, retries)
            pause(min(0.05 * attempt, 1.0))
        yield attempt


def _gave_up(what: str, timeout_ms: int) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"{what}: the lock was not available within {timeout_ms} ms in "
        f"{options().lock_retries} attempts (a long transaction holds a conflicting lock); "
        "re-run the migration later, it resumes where it stopped"
    )


def lock_table(table: str, mode: str) -> None:
    """Lock ``table`` in ``mode`` for the rest of the migration's transaction (PostgreSQL).

    Each attempt waits at most ``lock_timeout``; a failed attempt rolls back to a
    savepoint and is retried. Call it before anything else in the transaction takes a
    lock, so that a retry holds nothing writers wait for.
    """
    if not is_postgresql():
        return
    statement = f"LOCK TABLE {table} IN {mode} MODE"
    timeout = options().lock_timeout_ms
    if is_offline():
        _set_lock_timeout(None, timeout)
        op.execute(statement)
        return
    bind = op.get_bind()
    _set_lock_timeout(bind, timeout)
    for _ in _attempts(statement):
        try:
            with bind.begin_nested():
                bind.exec_driver_sql(statement)
            return
        except DBAPIError as exc:
            if sqlstate(exc) != _LOCK_NOT_AVAILABLE:
                raise
    raise _gave_up(statement, timeout)


def run(statement: str, *, blocks_writers: bool = True) -> None:
    """Run one self-contained statement in an :func:`autocommit` block (PostgreSQL).

    ``blocks_writers`` picks the lock wait: ``lock_timeout`` with retries, or
    :data:`CONCURRENT_LOCK_TIMEOUT_MS`.
    """
    timeout = options().lock_timeout_ms if blocks_writers else CONCURRENT_LOCK_TIMEOUT_MS
    if is_offline():
        _set_lock_timeout(None, timeout)
        op.execute(statement)
        return
    bind = op.get_bind()
    _set_lock_timeout(bind, timeout)
    for _ in _attempts(statement):
        try:
            bind.exec_driver_sql(statement)
            return
        except DBAPIError as exc:
            if sqlstate(exc) != _LOCK_NOT_AVAILABLE:
                raise
    raise _gave_up(statement, timeout)


def read(statement: str, **params: object) -> list[tuple[object, ...]]:
    """Rows of a query (online only)."""
    return [tuple(row) for row in op.get_bind().execute(text(statement), params)]


def index_is_valid(name: str) -> bool | None:
    """PostgreSQL: whether index ``name`` is valid; None when it does not exist.

    An interrupted ``CREATE INDEX CONCURRENTLY`` leaves an invalid index behind.
    """
    rows = read("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)", name=name)
    return None if not rows else bool(rows[0][0])


def build_index_concurrently(
    name: str, create: str, *, on_unique_violation: Callable[[], None] | None = None
) -> None:
    """``create`` (a ``CREATE ... INDEX CONCURRENTLY name ...``) in an autocommit block.

    An invalid leftover of an interrupted build is dropped and built again; a valid index
    is kept. A unique index that fails on duplicates calls ``on_unique_violation`` (which
    resolves them) and tries again; without it the error propagates.
    """
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {name}"
    if is_offline():
        run(drop, blocks_writers=False)
        run(create, blocks_writers=False)
        return
    bind = op.get_bind()
    for _ in _attempts(f"CREATE INDEX {name}"):
        valid = index_is_valid(name)
        if valid:
            return
        if valid is False:
            log.info("dropping %s, an invalid leftover of an interrupted build", name)
            run(drop, blocks_writers=False)
        _set_lock_timeout(bind, CONCURRENT_LOCK_TIMEOUT_MS)
        started = time.monotonic()
        try:
            bind.exec_driver_sql(create)
        except DBAPIError as exc:
            code = sqlstate(exc)
            if code == _UNIQUE_VIOLATION and on_unique_violation is not None:
                log.info("%s: rows became duplicates during the build; resolving", name)
                on_unique_violation()
                continue
            if code == _LOCK_NOT_AVAILABLE:
                continue
            raise
        took = time.monotonic() - started
        # Worth a line by default on a table big enough to make one wait, not otherwise.
        log.log(
            logging.INFO if took >= 1.0 else logging.DEBUG, "built index %s in %.2fs", name, took
        )
        return
    raise SchemaError(f"could not build index {name}; re-run the migration, it resumes")


def drop_index_concurrently(name: str) -> None:
    """Drop index ``name`` if it exists, without blocking writers (PostgreSQL)."""
    run(f"DROP INDEX CONCURRENTLY IF EXISTS {name}", blocks_writers=False)
