"""``open_store`` turns every unusable URL or option into a clear eventstore error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from eventstore import (
    EventStoreError,
    InMemoryEventStore,
    InvalidInputError,
    SqlEventStore,
    StoreUnavailableError,
    open_store,
)
from eventstore.cli import main


@pytest.mark.parametrize("url", ["", "   ", 0, b"sqlite:///x.db", ["memory://"]])
async def test_an_empty_or_non_text_url_is_refused(url: Any) -> None:
    with pytest.raises(InvalidInputError, match="url"):
        await open_store(url)


@pytest.mark.parametrize("url", ["memory://", "memory:", "memory:///", "MEMORY://"])
async def test_memory_urls(url: str) -> None:
    async with open_store(url) as store:
        assert isinstance(store, InMemoryEventStore)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_event_per_stream": 5}, "max_event_per_stream"),
        ({"sqlite_synchronous": "BOGUS"}, "sqlite_synchronous"),
        ({"sqlite_synchronous": 1}, "sqlite_synchronous"),
        ({"sqlite_busy_timeout_ms": -1}, "sqlite_busy_timeout_ms"),
        ({"sqlite_busy_timeout_ms": "x"}, "sqlite_busy_timeout_ms"),
        ({"max_events_per_stream": 0}, "max_events_per_stream"),
        ({"max_event_bytes": 0}, "max_event_bytes"),
    ],
)
async def test_unusable_options_are_refused_by_name(
    sqlite_url: str, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        await open_store(sqlite_url, **options)


#: Pool and driver options SQLAlchemy takes unchecked: they failed at the first connect
#: or under contention, as a TypeError or AttributeError, or never (a negative pool).
POOL_AND_DRIVER_OPTIONS = [
    ({"poolclass": 1}, "poolclass must be a sqlalchemy.pool.Pool class"),
    ({"pool_size": -5}, "pool_size must be an int >= 0"),
    ({"pool_size": True}, "pool_size must be an int >= 0"),
    ({"max_overflow": "x"}, "max_overflow must be an int >= -1"),
    ({"pool_timeout": "abc"}, "pool_timeout must be a number >= 0"),
    ({"pool_timeout": float("nan")}, "pool_timeout must be a number >= 0"),
    ({"pool_recycle": "x"}, "pool_recycle must be a number >= -1"),
    ({"connect_args": 5}, "connect_args must be a mapping"),
    ({"connect_args": {"bogus": 1}}, "connect_args the .* driver does not take: bogus"),
]


@pytest.mark.parametrize(("options", "message"), POOL_AND_DRIVER_OPTIONS, ids=repr)
async def test_unusable_pool_and_driver_options_are_refused_by_name(
    sql_url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await open_store(sql_url, **options)


async def test_a_value_the_sqlite_driver_refuses_is_an_invalid_input(sqlite_url: str) -> None:
    with pytest.raises(InvalidInputError, match="unusable connect_args for SQLite"):
        await open_store(sqlite_url, connect_args={"timeout": "x"})


async def test_usable_pool_and_driver_options_still_open(sql_url: str) -> None:
    driver_option = (
        {"timeout": 3} if sql_url.startswith("sqlite") else {"prepared_statement_cache_size": 10}
    )
    async with open_store(
        sql_url, pool_timeout=5, pool_recycle=3600, connect_args=driver_option
    ) as store:
        assert (await store.store_event("s", "a", "e", 1)).seq == 1


async def test_a_blank_database_url_variable_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # EVENTSTORE_DATABASE_URL=$DB_URL with DB_URL unset: a replica must not quietly run
    # on a private SQLite file of its own.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    for blank in ("", "  "):
        monkeypatch.setenv("EVENTSTORE_DATABASE_URL", blank)
        with pytest.raises(InvalidInputError, match="EVENTSTORE_DATABASE_URL is set but empty"):
            await open_store()
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


async def test_an_unknown_postgresql_option_is_refused(postgres_url: str) -> None:
    with pytest.raises(InvalidInputError, match="pool_sise"):
        await open_store(postgres_url, pool_sise=3)


@pytest.mark.parametrize(
    "options",
    [{"sqlite_synchronous": "FULL"}, {"sqlite_busy_timeout_ms": 5}],
    ids=["synchronous", "busy timeout"],
)
async def test_sqlite_options_for_postgresql_are_refused(
    postgres_url: str, options: dict[str, Any]
) -> None:
    # Silently ignored, a setting the caller relies on would not be in force.
    with pytest.raises(InvalidInputError, match=f"{next(iter(options))} only apply to SQLite"):
        await open_store(postgres_url, **options)


async def test_a_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidInputError, match="cannot create the directory"):
        await open_store(f"sqlite:///{blocker}/sub/events.db")
    assert blocker.read_text() == "not a directory"


async def test_a_path_sqlite_cannot_open_leaves_no_driver_thread_behind(tmp_path: Path) -> None:
    # aiosqlite's thread ends with a call into the event loop: left running, it prints a
    # traceback once a command that reported this error has closed its loop.
    with pytest.raises(EventStoreError, match="unable to open database file") as raised:
        await open_store(f"sqlite:///{tmp_path}")  # a directory
    # The same error as a WAL file whose -wal/-shm files cannot be made (read-only media,
    # which root ignores here): the message says what SQLite needs.
    assert "the file and its directory must exist and be writable" in str(raised.value)
    assert not [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


async def test_a_file_that_is_not_a_database_is_not_called_transient(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(EventStoreError, match="not a database") as raised:
        await open_store(f"sqlite:///{path}")
    assert not isinstance(raised.value, StoreUnavailableError)
    assert path.read_bytes().startswith(b"these are my notes")


async def test_sqlite_file_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="in-memory"):
        await open_store("sqlite:///file:mem1?mode=memory&cache=shared&uri=true")
    target = tmp_path / "by-uri.db"
    async with open_store(f"sqlite:///file:{target}?uri=true") as store:
        await store.store_event("s", "a", "e", 1)
    # The database is where the URI says, and no stray "file:" directory appeared.
    names = {p.name for p in tmp_path.iterdir()}  # noqa: ASYNC240
    assert "by-uri.db" in names
    assert {name for name in names if not name.startswith("by-uri.db")} == set()


MISSING_DRIVER = (
    "postgresql needs the asyncpg driver, which is not installed: install the postgres "
    "extra (pip install -e '.[postgres]' in a checkout, or "
    "pip install 'mcp-eventstore[postgres]')"
)


async def test_a_missing_driver_names_the_extra_that_brings_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    with pytest.raises(EventStoreError) as raised:
        await open_store("postgresql://user@127.0.0.1:1/db")
    assert str(raised.value) == MISSING_DRIVER


def test_the_cli_says_a_missing_driver_in_one_line() -> None:
    cli = "import sys; sys.modules['asyncpg'] = None; from eventstore.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", cli, "info", "--url", "postgresql://user@127.0.0.1:1/db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: {MISSING_DRIVER}"]


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def test_libpq_settings_in_a_postgresql_url_are_used(postgres_url: str) -> None:
    # The way PostgreSQL URLs are written (cloud providers' sslmode=require included):
    # SQLAlchemy passed each to asyncpg.connect as a keyword, a TypeError at first use.
    url = _with_query(
        postgres_url,
        "sslmode=disable&application_name=es-replica-7&connect_timeout=0"
        "&target_session_attrs=read-write"
        "&options=-c%20statement_timeout%3D12345",
    )
    async with open_store(url) as store:
        assert isinstance(store, SqlEventStore)
        async with store.engine.connect() as conn:
            name = await conn.scalar(text("SELECT current_setting('application_name')"))
            timeout = await conn.scalar(text("SHOW statement_timeout"))
        assert (name, timeout) == ("es-replica-7", "12345ms")
        assert (await store.store_event("s", "a", "e", 1)).seq == 1


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("connect_timeout=soon", InvalidInputError, "connect_timeout .* must be seconds"),
        ("connect_timeout=inf", InvalidInputError, "connect_timeout .* must be finite"),
        ("target_session_attrs=bogus", InvalidInputError, "must be one of any, .*not 'bogus'"),
        ("sslmode=disable&sslmode=require", InvalidInputError, "gives sslmode more than once"),
        # The server names a setting it does not know; no TypeError from the driver.
        ("no_such_setting=1", EventStoreError, 'unrecognized configuration parameter "no_such'),
    ],
)
async def test_unusable_settings_in_a_postgresql_url_are_named(
    postgres_url: str, query: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await open_store(_with_query(postgres_url, query))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:secret@127.0.0.1:99999/db", "port 99999 is not 1-65535"),
        ("postgresql://u:secret@127.0.0.1:abc/db", "port is not a number"),
        ("postgresql://u:secret@[::1/db", "port is not a number"),
        ("sqlite://u:secret@h:0/x.db", "port 0 is not 1-65535"),
    ],
)
async def test_a_bad_port_is_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as refused:
        await open_store(url)
    assert "secret" not in str(refused.value)


def test_every_cli_command_takes_libpq_settings_in_a_postgresql_url(postgres_url: str) -> None:
    # migrate's schema look and the legacy source reader make engines of their own.
    url = _with_query(postgres_url, "sslmode=disable&application_name=es-cli")
    runner = CliRunner()
    for args in (
        ["migrate", "--url", url],
        ["info", "--url", url],
        ["prune", "--url", url, "--idle", "1h"],
        ["export", "--url", url, "-o", "-"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output


def test_asyncio_run_of_open_store_says_how_to_use_it() -> None:
    """``asyncio.run`` takes only coroutines, and ``open_store`` returns an awaitable that
    is also an async context manager: the error names both ways to use it."""
    with pytest.raises(ValueError, match=r"await open_store\(url\).*async with open_store"):
        asyncio.run(open_store("memory://"))  # type: ignore[arg-type]
