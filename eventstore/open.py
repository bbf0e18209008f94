"""``open_store``: one entry point from a URL to a ready store."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.exc import DBAPIError

from eventstore.codec import DEFAULT_MAX_EVENT_BYTES, check_cap
from eventstore.config import default_url
from eventstore.errors import SchemaError, StoreUnavailableError
from eventstore.memory import InMemoryEventStore
from eventstore.sql.engine import create_engine, create_schema, has_schema, normalize_url
from eventstore.sql.store import SqlEventStore
from eventstore.store import EventStore

_UNSET: Any = object()


class StoreOpener:
    """What :func:`open_store` returns: await it, or use it as ``async with``."""

    def __init__(self, url: str | None, options: dict[str, Any]) -> None:
        self._url = url
        self._options = options
        self._store: EventStore | None = None

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
    * ``create_schema`` -- create the tables on a database that has none (default
      ``True``). A database that has them in an older version raises
      :class:`~eventstore.errors.SchemaError`.
    * ``sqlite_busy_timeout_ms``, ``sqlite_synchronous`` and any
      :func:`~sqlalchemy.ext.asyncio.create_async_engine` option (``pool_size``, ...).
    """
    return StoreOpener(url, options)


async def _open(
    url: str | None,
    *,
    max_events_per_stream: int | None = _UNSET,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    create_schema: bool = True,
    **engine_options: Any,
) -> EventStore:
    url = url or default_url()
    if url.strip().lower() in ("memory://", "memory:"):
        cap = None if max_events_per_stream is _UNSET else max_events_per_stream
        return InMemoryEventStore(max_events_per_stream=cap, max_event_bytes=max_event_bytes)
    if max_events_per_stream is not _UNSET:
        check_cap(max_events_per_stream)
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        _ensure_directory(parsed.database)
    engine = create_engine(parsed, **engine_options)
    store = SqlEventStore(engine, max_event_bytes=max_event_bytes, owns_engine=True)
    try:
        await _prepare(store, create_schema)
        if max_events_per_stream is not _UNSET:
            await store.set_max_events_per_stream(max_events_per_stream)
    except BaseException:
        await store.close()
        raise
    return store


def _ensure_directory(sqlite_path: str) -> None:
    Path(sqlite_path).expanduser().parent.mkdir(parents=True, exist_ok=True)


async def _prepare(store: SqlEventStore, create: bool) -> None:
    try:
        async with store.engine.begin() as conn:
            if await has_schema(conn):
                return
            if not create:
                raise SchemaError(
                    "the database has no event store tables; run `eventstore migrate` "
                    "or open it with create_schema=True"
                )
            await create_schema(conn)
    except DBAPIError as exc:
        raise StoreUnavailableError(f"cannot open the database: {exc.orig}") from exc
    except OSError as exc:
        raise StoreUnavailableError(f"cannot open the database: {exc}") from exc
