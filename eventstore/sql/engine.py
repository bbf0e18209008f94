"""Engines for the supported URLs (the schema comes from :mod:`eventstore.migrations`)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

from eventstore.errors import EventStoreError, InvalidInputError
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
    except ValueError:
        # (The URL is not echoed: it may hold a password.)
        raise InvalidInputError(
            "not a database URL: its port is not a number (or an IPv6 host lacks its ']')"
        ) from None
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    if parsed.drivername in (backend, "postgres"):
        parsed = parsed.set(drivername=_DRIVERS.get(backend, parsed.drivername))
    if parsed.drivername not in _SUPPORTED:
        raise InvalidInputError(
            f"unsupported database URL scheme {parsed.drivername!r}; "
            "use sqlite+aiosqlite:///path, postgresql+asyncpg://... or memory://"
        )
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidInputError(f"not a database URL: port {parsed.port} is not 1-65535")
    return parsed


def display_url(url: URL) -> str:
    """``url`` for messages and logs: its password hidden, also one given in the query."""
    if "password" not in url.query:
        return url.render_as_string(hide_password=True)
    hidden = url.update_query_dict({"password": "***"}).render_as_string(hide_password=True)
    return hidden.replace("password=%2A%2A%2A", "password=***")


def create_engine(
    url: str | URL,
    *,
    sqlite_busy_timeout_ms: int | None = None,
    sqlite_synchronous: str | None = None,
    **engine_options: Any,
) -> AsyncEngine:
    """An async engine configured the way :class:`SqlEventStore` needs it.

    ``sqlite_busy_timeout_ms`` (default 10,000) and ``sqlite_synchronous`` (default
    ``"FULL"``) apply to SQLite only; given for another database they raise
    :class:`~eventstore.errors.InvalidInputError`, as a misplaced setting should.
    ``engine_options`` go to :func:`sqlalchemy.ext.asyncio.create_async_engine`
    (``pool_size``, ``max_overflow``, ``pool_timeout``, ``connect_args``, ...); one it
    does not know raises :class:`~eventstore.errors.InvalidInputError`.
    """
    parsed = normalize_url(url)
    _check_engine_options(parsed, engine_options)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(
            parsed,
            10_000 if sqlite_busy_timeout_ms is None else sqlite_busy_timeout_ms,
            "FULL" if sqlite_synchronous is None else sqlite_synchronous,
            engine_options,
        )
    misplaced = [
        name
        for name, value in (
            ("sqlite_busy_timeout_ms", sqlite_busy_timeout_ms),
            ("sqlite_synchronous", sqlite_synchronous),
        )
        if value is not None
    ]
    if misplaced:
        raise InvalidInputError(
            f"{' and '.join(misplaced)} only apply to SQLite, not to a "
            f"{parsed.get_backend_name()} database"
        )
    # Unless the caller chose pool_pre_ping, only connections left idle are pinged.
    explicit_pre_ping = "pool_pre_ping" in engine_options
    engine_options["connect_args"] = {
        "async_creator_fn": postgresql.connect_driver,
        **engine_options.get("connect_args", {}),
    }
    engine = async_engine(parsed, engine_options)
    postgresql.configure_engine(
        engine, ping_idle_after=None if explicit_pre_ping else postgresql.PING_IDLE_SECONDS
    )
    return engine


def _sqlite_engine(
    url: URL, busy_timeout_ms: object, synchronous: object, engine_options: dict[str, Any]
) -> AsyncEngine:
    _check_sqlite_database(url)
    if (
        isinstance(busy_timeout_ms, bool)
        or not isinstance(busy_timeout_ms, int)
        or not 0 <= busy_timeout_ms <= 2**31 - 1
    ):
        raise InvalidInputError(
            f"sqlite_busy_timeout_ms must be an int from 0 to 2**31-1, not {busy_timeout_ms!r}"
        )
    mode = sqlite.check_synchronous(synchronous)
    # Unless the caller chose a reset, only a transaction left open is rolled back.
    explicit_reset = "pool_reset_on_return" in engine_options
    engine_options.setdefault("pool_reset_on_return", None)
    engine_options["connect_args"] = {
        "async_creator_fn": sqlite.connect_driver,
        **engine_options.get("connect_args", {}),
    }
    engine = async_engine(url, engine_options)
    sqlite.configure_engine(
        engine,
        busy_timeout_ms=busy_timeout_ms,
        synchronous=mode,
        reset_open_transactions=not explicit_reset,
    )
    return engine


# The extra that brings each driver (aiosqlite is a base dependency).
_EXTRAS = {"asyncpg": "postgres"}


#: The pool options SQLAlchemy checks only once a connection is made, or never: checked
#: here, so a bad value fails when the store is opened (or the app built), by name.
_POOL_NUMBERS: dict[str, tuple[str, float]] = {
    "pool_size": ("an int", 0),
    "max_overflow": ("an int", -1),
    "pool_timeout": ("a number", 0),
    "pool_recycle": ("a number", -1),
}

#: aiosqlite's own connect arguments, then those it hands on to ``sqlite3.connect``
#: (a builtin whose signature Python 3.11 cannot inspect).
_SQLITE_CONNECT_PARAMETERS = {
    "async_creator_fn",
    "iter_chunk_size",
    "loop",
    "timeout",
    "detect_types",
    "isolation_level",
    "check_same_thread",
    "factory",
    "cached_statements",
    "uri",
    "autocommit",
}


def _check_engine_options(url: URL, options: dict[str, Any]) -> None:
    for name, (kind, lowest) in _POOL_NUMBERS.items():
        value = options.get(name)
        if value is None:
            continue
        allowed = int if kind == "an int" else (int, float)
        if (
            isinstance(value, bool)
            or not isinstance(value, allowed)
            or not math.isfinite(value)
            or value < lowest
        ):
            raise InvalidInputError(f"{name} must be {kind} >= {lowest:g}, not {value!r}")
    poolclass = options.get("poolclass")
    if poolclass is not None and not (isinstance(poolclass, type) and issubclass(poolclass, Pool)):
        raise InvalidInputError(
            f"poolclass must be a sqlalchemy.pool.Pool class, not {poolclass!r}"
        )
    connect_args = options.get("connect_args", {})
    if not isinstance(connect_args, Mapping):
        raise InvalidInputError(f"connect_args must be a mapping, not {connect_args!r}")
    accepted = _connect_parameters(url.get_backend_name())
    unknown = sorted(str(name) for name in connect_args if name not in accepted)
    if accepted and unknown:
        raise InvalidInputError(
            f"connect_args the {url.get_backend_name()} driver does not take: {', '.join(unknown)}"
        )


def _connect_parameters(backend: str) -> set[str]:
    """The keyword arguments the backend's driver connect takes (empty: not known)."""
    if backend == "sqlite":
        return _SQLITE_CONNECT_PARAMETERS
    try:
        import asyncpg
    except ModuleNotFoundError:
        return set()  # async_engine names the missing driver
    # SQLAlchemy's asyncpg adapter takes these out before it calls asyncpg.connect.
    adapter = {"async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func"}
    return adapter | _parameters(asyncpg.connect)


def _parameters(function: Any) -> set[str]:
    try:
        return set(inspect.signature(function).parameters) - {"args", "kwargs"}
    except (TypeError, ValueError):
        return set()


def async_engine(url: URL, options: dict[str, Any]) -> AsyncEngine:
    """SQLAlchemy's ``create_async_engine``, with its errors as :mod:`eventstore.errors`:
    a missing driver names the extra that installs it, a bad option is refused by name,
    and a PostgreSQL URL's libpq settings (``?sslmode=...``) reach asyncpg."""
    if url.get_backend_name() == "postgresql":
        url, connect_args = postgresql.connect_args_from_query(url, options.get("connect_args", {}))
        options = {**options, "connect_args": connect_args}
    try:
        return create_async_engine(url, **options)
    except ModuleNotFoundError as exc:
        # SQLAlchemy imports the driver here; without it, a traceback would be all.
        extra = _EXTRAS.get(exc.name or "")
        hint = (
            f": install the {extra} extra (pip install -e '.[{extra}]' in a checkout, or "
            f"pip install 'mcp-eventstore[{extra}]')"
            if extra
            else ""
        )
        raise EventStoreError(
            f"{url.get_backend_name()} needs the {exc.name} driver, which is not installed{hint}"
        ) from None
    except (TypeError, ValueError, AttributeError, ArgumentError) as exc:
        # SQLAlchemy names the options it does not know, or the value it refused.
        raise InvalidInputError(f"unusable store option: {exc}") from None


def _check_sqlite_database(url: URL) -> None:
    if url.database in (None, "", ":memory:") or _sqlite_uri_in_memory(url):
        raise InvalidInputError(
            "an in-memory SQLite database is private to one connection; "
            "use memory:// for an in-process store or give a file path"
        )


def _is_sqlite_uri(url: URL) -> bool:
    return str(url.query.get("uri", "")).lower() in ("true", "1")


def _sqlite_uri_in_memory(url: URL) -> bool:
    # SQLAlchemy hands the URL's other query parameters on to SQLite as URI parameters.
    database = url.database or ""
    return _is_sqlite_uri(url) and (
        url.query.get("mode") == "memory"
        or "mode=memory" in database
        or database.removeprefix("file:").startswith(":memory:")
    )


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; ``None`` for another database or a ``file:`` URI."""
    if url.get_backend_name() != "sqlite" or not url.database or _is_sqlite_uri(url):
        return None
    return Path(url.database).expanduser()


def ensure_sqlite_directory(url: URL) -> None:
    """Create the directory of a SQLite file URL's database, so a new file can be made.

    A directory that cannot be made (permission refused, a file in the way) raises
    :class:`~eventstore.errors.InvalidInputError` naming it. ``file:`` URIs
    (``?uri=true``) are left to SQLite.
    """
    path = sqlite_file(url)
    if path is None:
        return
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot create the directory {str(directory)!r} for the SQLite database: "
            f"{exc.strerror or exc}"
        ) from None
