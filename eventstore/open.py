"""``open_store``: one entry point from a URL to a ready store."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from eventstore.codec import DEFAULT_MAX_EVENT_BYTES, check_cap, check_max_event_bytes
from eventstore.config import default_url
from eventstore.errors import InvalidInputError, SchemaError, StoreUnavailableError
from eventstore.memory import InMemoryEventStore
from eventstore.migrate import SchemaState, upgrade_if_empty
from eventstore.migrate import status as schema_status
from eventstore.sql.engine import (
    create_engine,
    ensure_sqlite_directory,
    normalize_url,
    sqlite_file,
)
from eventstore.sql.store import SqlEventStore, database_error
from eventstore.store import EventStore

_UNSET: Any = object()


class StoreOpener:
    """What :func:`open_store` returns: await it, or use it as ``async with``."""

    def __init__(self, url: str | None, options: dict[str, Any]) -> None:
        self._url = url
        self._options = options
        self._store: EventStore | None = None

    def __repr__(self) -> str:
        # Shown by asyncio.run(open_store(...)), which takes only coroutines.
        return (
            "<StoreOpener: not a coroutine; await it inside one "
            "(store = await open_store(url)) or use 'async with open_store(url) as store'>"
        )

    def __await__(self) -> Generator[Any, None, EventStore]:
        return _open(self._url, **self._options).__await__()

    async def __aenter__(self) -> EventStore:
        self._store = await _open(self._url, **self._options)
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def open_store(url: str | None = None, **options: Any) -> StoreOpener:
    """Open the store at ``url``: ``store = await open_store(url)`` or ``async with``.

    ``url`` is ``memory://``, ``sqlite+aiosqlite:///path/to/file``,
    ``postgresql+asyncpg://user:pass@host/db`` (``sqlite://`` and ``postgresql://`` get
    the async driver filled in), or ``None`` for ``$EVENTSTORE_DATABASE_URL`` and else
    the embedded SQLite file (see :func:`eventstore.config.default_sqlite_path`).

    Options:

    * ``max_events_per_stream`` -- the per-stream cap. On an SQL store it is written to
      the database (shared by every process using it) and existing streams are trimmed
      to it; left out, the database's current setting stays.
    * ``max_event_bytes`` -- largest accepted JSON encoding of ``data`` (default 16 MiB).
    * ``create_schema`` -- on a database with none of the store's tables, create them by
      running the migrations to the head (default ``True``). A legacy (pre-stream) or
      older schema, one newer than this version, or unrecognised tables raise
      :class:`~eventstore.errors.SchemaError` naming ``eventstore migrate``, which
      upgrades it.
    * ``sqlite_busy_timeout_ms``, ``sqlite_synchronous`` and any
      :func:`~sqlalchemy.ext.asyncio.create_async_engine` option (``pool_size``, ...).
    """
    return StoreOpener(url, options)


@dataclass(frozen=True)
class _Plan:
    """What :func:`open_store` was asked for, checked, before anything is connected."""

    url: URL | None  # None: memory://
    cap: Any  # _UNSET: keep the database's
    max_event_bytes: int
    create_schema: bool
    engine_options: dict[str, Any]


def _plan(
    url: str | None,
    *,
    max_events_per_stream: int | None = _UNSET,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    create_schema: bool = True,
    **engine_options: Any,
) -> _Plan:
    parsed = check_url(url)
    check_max_event_bytes(max_event_bytes)
    if max_events_per_stream is not _UNSET:
        check_cap(max_events_per_stream)
    if not isinstance(create_schema, bool):
        raise InvalidInputError(f"create_schema must be True or False, not {create_schema!r}")
    if parsed is None and engine_options:
        raise InvalidInputError(
            f"memory:// has no database to configure: {', '.join(sorted(engine_options))}"
        )
    return _Plan(parsed, max_events_per_stream, max_event_bytes, create_schema, engine_options)


def check_options(url: str | None, options: Mapping[str, Any]) -> None:
    """Raise :class:`~eventstore.errors.InvalidInputError` for what ``open_store(url,
    **options)`` would refuse before connecting: the URL, every option, the driver.

    Nothing is connected or created (not even a SQLite file's directory).
    """
    if not isinstance(options, Mapping) or not all(isinstance(name, str) for name in options):
        raise InvalidInputError(
            f"store options must be a mapping of option names to values, not {options!r}"
        )
    plan = _plan(url, **options)
    if plan.url is not None:
        # An engine connects only when first used: this checks the engine options and
        # imports the driver, nothing more.
        create_engine(plan.url, **plan.engine_options)


async def _open(url: str | None, **options: Any) -> EventStore:
    plan = _plan(url, **options)
    if plan.url is None:
        cap = None if plan.cap is _UNSET else plan.cap
        return InMemoryEventStore(max_events_per_stream=cap, max_event_bytes=plan.max_event_bytes)
    if not plan.create_schema and (path := sqlite_file(plan.url)) is not None:
        # SQLite would create the file (and leave it behind) just to find no tables in it.
        if not await asyncio.to_thread(path.is_file):
            if await asyncio.to_thread(path.exists):
                raise InvalidInputError(f"{path} is not a SQLite database file")
            raise SchemaError(
                f"no event store database at {path}: the file does not exist "
                "(create_schema=False creates nothing); run `eventstore migrate` or open "
                "it with create_schema=True to create it"
            )
    ensure_sqlite_directory(plan.url)
    engine = create_engine(plan.url, **plan.engine_options)
    store = SqlEventStore(engine, max_event_bytes=plan.max_event_bytes, owns_engine=True)
    try:
        await _prepare(store, plan.create_schema)
        if plan.cap is not _UNSET:
            await store.set_max_events_per_stream(plan.cap)
    except BaseException:
        await store.close()
        raise
    return store


def check_url(url: str | None) -> URL | None:
    """The database ``url`` names (``None``: the default), or ``None`` for ``memory://``.

    Raises :class:`~eventstore.errors.InvalidInputError` for anything :func:`open_store`
    would refuse as a URL, without connecting.
    """
    if url is None:
        url = default_url()
    if not isinstance(url, str):
        raise InvalidInputError(f"url must be a str or None, not {type(url).__name__}")
    if not url.strip():
        raise InvalidInputError("url is empty; pass None for the default database")
    if url.strip().lower() in ("memory://", "memory:", "memory:///"):
        return None
    if url.strip().lower().startswith("memory:"):
        raise InvalidInputError(f"memory:// takes no path, host or options: {url!r}")
    return normalize_url(url)


async def _prepare(store: SqlEventStore, create: bool) -> None:
    """A current schema opens as it is; an empty database gets one from the migrations;
    anything else (legacy, behind, ahead) is left to ``eventstore migrate``.

    Replicas starting together on an empty database: one creates the schema, under the
    migration lock, while the others see it half built (or their look deadlocks with
    its DDL). So short of a current schema, the decision is taken again under that
    lock, once the other's run is over.
    """
    try:
        if not create:
            found = await schema_status(store.engine)
            if found.state is not SchemaState.CURRENT:
                raise SchemaError(found.problem())
            return
        try:
            if (await schema_status(store.engine)).state is SchemaState.CURRENT:
                return
        except StoreUnavailableError:
            pass  # this look deadlocked with another's migration: look again under its lock
        await upgrade_if_empty(store.engine)
    except DBAPIError as exc:
        raise database_error(exc, "cannot open the database") from exc
    except OSError as exc:
        raise StoreUnavailableError(f"cannot open the database: {exc}") from exc
