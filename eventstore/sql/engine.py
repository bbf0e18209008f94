"""Engines for the supported URLs (the schema comes from :mod:`eventstore.migrations`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from eventstore.errors import InvalidInputError
from eventstore.sql import postgresql, sqlite

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_SUPPORTED = set(_DRIVERS.values())


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, filling in our async driver when only the database is named.

    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db`` and ``postgresql://...`` (or
    ``postgres://``) becomes ``postgresql+asyncpg://...``; any other driver is refused.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(f"not a database URL: {exc}") from None
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    if parsed.drivername in (backend, "postgres"):
        parsed = parsed.set(drivername=_DRIVERS.get(backend, parsed.drivername))
    if parsed.drivername not in _SUPPORTED:
        raise InvalidInputError(
            f"unsupported database URL scheme {parsed.drivername!r}; "
            "use sqlite+aiosqlite:///path, postgresql+asyncpg://... or memory://"
        )
    return parsed


def create_engine(
    url: str | URL,
    *,
    sqlite_busy_timeout_ms: int = 10_000,
    sqlite_synchronous: str = "FULL",
    **engine_options: Any,
) -> AsyncEngine:
    """An async engine configured the way :class:`SqlEventStore` needs it.

    ``engine_options`` go to :func:`sqlalchemy.ext.asyncio.create_async_engine`
    (``pool_size``, ``max_overflow``, ``pool_timeout``, ``connect_args``, ...).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise InvalidInputError(
                "an in-memory SQLite database is private to one connection; "
                "use memory:// for an in-process store or give a file path"
            )
        # Unless the caller chose a reset, only a transaction left open is rolled back.
        explicit_reset = "pool_reset_on_return" in engine_options
        engine_options.setdefault("pool_reset_on_return", None)
        engine = create_async_engine(parsed, **engine_options)
        sqlite.configure_engine(
            engine,
            busy_timeout_ms=sqlite_busy_timeout_ms,
            synchronous=sqlite_synchronous,
            reset_open_transactions=not explicit_reset,
        )
        return engine
    # Unless the caller chose pool_pre_ping, only connections left idle are pinged.
    explicit_pre_ping = "pool_pre_ping" in engine_options
    engine = create_async_engine(parsed, **engine_options)
    postgresql.configure_engine(
        engine, ping_idle_after=None if explicit_pre_ping else postgresql.PING_IDLE_SECONDS
    )
    return engine


def ensure_sqlite_directory(url: URL) -> None:
    """Create the directory of a SQLite file URL's database, so a new file can be made."""
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
