"""Security review: values never become SQL text, and URL secrets never leave the process.

Parameterised SQL is shown, not grepped for: every statement the process sends through
SQLAlchemy is captured (a class-level ``before_cursor_execute`` listener, so engines the
library creates internally are included) while every public operation runs with hostile
ids and data carrying one marker. The marker must appear in bound parameters and never in
statement text. On PostgreSQL the server's own statement log is checked the same way, so
a driver-level shortcut past SQLAlchemy could not hide a string-built statement.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import subprocess
import sys
import traceback
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from eventstore import (
    ClearSession,
    ClearStream,
    EventStore,
    EventStoreError,
    StoreEvent,
    UpdateLastEventId,
    open_store,
)
from eventstore.legacy import LegacyEventStore
from eventstore.transfer.exporter import export_events
from eventstore.worker import PersistenceWorker

MARK = f"MARK{uuid.uuid4().hex}"


def hostile(kind: str) -> str:
    """An id or value built to break string-built SQL, carrying :data:`MARK`."""
    return f"{kind}'\"; DROP TABLE events; -- %s %(x)s {{0}} ? $1 :p \\ {MARK}"


@dataclass
class Captured:
    statements: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every statement and parameter set any SQLAlchemy engine executes meanwhile."""
    capture = Captured()

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        capture.statements.append(statement)
        capture.parameters.append(repr(parameters))

    event.listen(Engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield capture
    finally:
        event.remove(Engine, "before_cursor_execute", before_cursor_execute)


async def exercise(store: EventStore) -> None:
    """Every public operation, with hostile values in every position a caller controls."""
    session, stream, other = hostile("session"), hostile("stream"), hostile("other")
    events = [hostile(f"event{i}") for i in range(4)]
    data = {hostile("key"): [hostile("value"), {"nested": hostile("deep")}]}
    await store.store_event(session, stream, events[0], data)
    await store.store_event(session, stream, events[0], data)  # retry: the lookup path
    with pytest.raises(EventStoreError):
        await store.store_event(session, stream, events[0], hostile("conflict"))
    await store.apply(
        [
            StoreEvent(session, stream, events[1], hostile("batch")),
            StoreEvent(session, other, events[2], hostile("batch")),
            UpdateLastEventId(session, stream, events[1]),
            StoreEvent(session, stream, events[1], hostile("batch")),
        ]
    )
    await store.get_stream_events(session, stream)
    await store.get_stream_events(session, stream, limit=1)
    await store.get_events_after(session, stream, events[0])
    await store.get_events_after(session, stream, events[0], limit=1)
    with pytest.raises(EventStoreError):
        await store.get_events_after(session, stream, hostile("unknown-cursor"))
    await store.stream_count(session)
    await store.get_stream_info(session, stream)
    await store.set_max_events_per_stream(3, session_id=session, stream_id=stream)
    await store.set_max_events_per_stream(5)
    await store.get_max_events_per_stream()
    async with PersistenceWorker(store) as worker:
        await worker.store_event(session, stream, events[3], hostile("worker"))
        await worker.get_events_after(session, stream, events[3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = LegacyEventStore(store)
    await legacy.store_event(hostile("legacy"), hostile("legacy-event"), hostile("legacy"))
    await legacy.get_events_after(hostile("legacy"), hostile("legacy-event"))
    await export_events(store, io.BytesIO(), session_ids=[session, hostile("absent")])
    await store.apply([ClearStream(session, other), ClearSession(hostile("legacy"))])
    await store.clear_stream(session, stream)
    await store.clear_session(session)
    await store.prune_idle_sessions(0)


async def test_no_value_ever_becomes_sql_text(sql_url: str, captured: Captured) -> None:
    async with open_store(sql_url) as store:
        await exercise(store)
    assert len(captured.statements) > 40
    leaks = [statement for statement in captured.statements if MARK in statement]
    assert leaks == [], "values were spliced into SQL text"
    # The values did reach the database, as bound parameters.
    assert sum(MARK in parameters for parameters in captured.parameters) > 20


_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d ", re.MULTILINE)


async def test_postgresql_server_log_shows_only_placeholders(
    postgres_server: Any, postgres_url: str
) -> None:
    """The server's own view: with ``log_statement = 'all'`` values appear only in the
    ``DETAIL: parameters`` lines of the log, never in a logged statement."""
    cluster = postgres_server.cluster
    if cluster is None:
        pytest.skip("an external server: its log is not readable here")
    database = make_url(postgres_url).database
    admin = await asyncpg.connect(cluster.dsn)
    try:
        await admin.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
    finally:
        await admin.close()
    log_file = cluster.workdir / "log"
    start = log_file.stat().st_size
    async with open_store(postgres_url) as store:
        await exercise(store)
    await asyncio.sleep(0.2)  # the logging collector writes asynchronously
    with log_file.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode("utf-8", "replace")
    entries = [e for e in _ENTRY.split(text) if MARK in e]
    assert entries, "log_statement did not log our statements"
    leaks = [e for e in entries if "DETAIL:" not in e.split("\n", 1)[0]]
    assert leaks == [], f"values in logged statement text: {leaks[:2]}"


# -- secrets in URLs ------------------------------------------------------------------------

SECRET = f"pw-{uuid.uuid4().hex}"


#: Where a URL carries its password: user:password@host, or libpq's ?password=.
PASSWORD_PLACES = ["authority", "query"]


def _with_password(url: str, where: str = "authority") -> str:
    parsed = make_url(url)
    if where == "query":
        parsed = parsed.update_query_dict({"password": SECRET})
    else:
        parsed = parsed.set(password=SECRET)
    return parsed.render_as_string(hide_password=False)


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("where", PASSWORD_PLACES)
async def test_a_password_in_the_url_is_never_logged_or_shown(
    postgres_url: str, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """The test cluster trusts every login, so any password connects."""
    url = _with_password(postgres_url, where)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy").setLevel(logging.DEBUG)
    try:
        async with open_store(url, echo="debug") as store:
            await store.store_event("s", "a", "e1", 1)
            async with PersistenceWorker(store) as worker:
                await worker.store_event("s", "a", "e2", 2)
                shown = [repr(store), str(store), repr(worker), repr(store.engine)]  # type: ignore[attr-defined]
            await store.get_stream_events("s", "a")
    finally:
        logging.getLogger("sqlalchemy").setLevel(logging.NOTSET)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert SECRET not in caplog.text
    assert not any(SECRET in text for text in shown)


@pytest.mark.parametrize("where", PASSWORD_PLACES)
@pytest.mark.parametrize(
    "bad_part",
    [{"port": 1}, {"database": "no_such_database"}, {"host": "host.invalid"}],
    ids=["refused", "no-database", "no-host"],
)
async def test_a_password_never_appears_in_connection_errors(
    postgres_url: str, bad_part: dict[str, Any], where: str
) -> None:
    url = make_url(_with_password(postgres_url, where)).set(**bad_part)
    with pytest.raises(EventStoreError) as raised:
        await open_store(url.render_as_string(hide_password=False), pool_timeout=5)
    assert SECRET not in _all_text(raised.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from eventstore.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("where", PASSWORD_PLACES)
def test_the_cli_never_prints_the_password(postgres_url: str, where: str) -> None:
    url = _with_password(postgres_url, where)
    unreachable = make_url(url).set(port=1).render_as_string(hide_password=False)
    runs = [
        # Before the schema exists: read-only commands refuse, naming the database.
        _cli("-vv", "info", "--url", url),
        _cli("-vv", "migrate", "--url", url, "--sql"),
        _cli("-vv", "migrate", "--url", url),
        _cli("-vv", "info", "--url", url),
        _cli("-vv", "info", "--url", unreachable),
        _cli("-vv", "prune", "--url", url, "--idle", "1h"),
        _cli("-vv", "export", "--url", url),
    ]
    assert runs[0].returncode != 0
    assert [run.returncode for run in runs[2:4]] == [0, 0], runs[3].stderr
    assert runs[4].returncode != 0
    for run in runs:
        assert SECRET not in run.stdout + run.stderr, run.args
