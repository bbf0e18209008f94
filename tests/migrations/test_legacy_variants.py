"""Legacy tables as real legacy stores left them, and what the upgrade promises about them.

Not every legacy table is the baseline: some lack the session index, some declare the
timestamp ``REAL`` and hold fractions of milliseconds, some hold rows whose data is not
JSON. Each upgrades (or is refused, naming the rows) through ``eventstore migrate``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from eventstore import (
    DEFAULT_STREAM_ID,
    CorruptDataError,
    EventStoreError,
    StoreEvent,
    migrate,
    open_store,
)
from eventstore.cli import main
from eventstore.migrate import SchemaState
from tests.migrations.helpers import (
    LEGACY_INSERT,
    alembic,
    assert_numbered_in_order,
    create_unversioned_legacy,
    engine,
    events_rows,
    execute,
    query,
    run_migrate,
    schema_objects,
)

ROWS = [("s1", "a", '{"n": 1}', 30), ("s1", "b", '"b"', 10), ("s2", "a", "[1]", 20)]


async def _stream(url: str, session_id: str, stream_id: str = DEFAULT_STREAM_ID) -> list[object]:
    async with open_store(url, create_schema=False) as store:
        events = await store.get_stream_events(session_id, stream_id)
        return [(e.id, e.seq, e.data, e.timestamp) for e in events]


def test_a_legacy_table_without_the_session_index(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS, index=False))
    assert "ix_events_session_id" not in asyncio.run(schema_objects(sql_url))["indexes"]

    code, output = run_migrate("--url", sql_url)

    assert code == 0, output
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    asyncio.run(assert_numbered_in_order(sql_url))
    assert asyncio.run(_stream(sql_url, "s1")) == [("b", 1, "b", 10), ("a", 2, {"n": 1}, 30)]
    # Downgrading goes back to the baseline, which has the index.
    asyncio.run(alembic(sql_url, "downgrade", "0001"))
    assert "ix_events_session_id" in asyncio.run(schema_objects(sql_url))["indexes"]


@pytest.mark.parametrize(
    ("dialect", "declared"),
    # A PostgreSQL BIGINT column cannot hold fractions; SQLite's can.
    [("sqlite", "REAL"), ("sqlite", "BIGINT"), ("postgres", "DOUBLE PRECISION")],
)
def test_fractional_timestamps_become_whole_milliseconds(
    request: pytest.FixtureRequest, dialect: str, declared: str
) -> None:
    """Legacy writers stored ``time.time() * 1000``: fractions, in a REAL (PostgreSQL:
    double precision) column or, on SQLite, even in a BIGINT one."""
    sql_url = str(request.getfixturevalue(f"{dialect}_url"))
    rows = [
        ("s", "late", '"late"', 1_700_000_000_456.9),
        ("s", "early", '"early"', 1_700_000_000_123.75),
        ("s", "same-ms", '"same-ms"', 1_700_000_000_123.25),
    ]
    asyncio.run(create_unversioned_legacy(sql_url, rows, timestamp_type=declared))

    code, output = run_migrate("--url", sql_url)

    assert code == 0, output
    events = asyncio.run(_stream(sql_url, "s"))
    # Truncated to whole ms; equal ms go in insertion (id) order.
    assert events == [
        ("early", 1, "early", 1_700_000_000_123),
        ("same-ms", 2, "same-ms", 1_700_000_000_123),
        ("late", 3, "late", 1_700_000_000_456),
    ]
    assert all(type(timestamp) is int for *_, timestamp in events)
    asyncio.run(assert_numbered_in_order(sql_url))
    if sql_url.startswith("postgresql"):
        declared_now = "SELECT data_type FROM information_schema.columns WHERE table_name = "
        declared_now += "'events' AND column_name = 'timestamp'"
        assert asyncio.run(query(sql_url, declared_now)) == [("bigint",)]
    else:
        kinds = asyncio.run(query(sql_url, "SELECT DISTINCT typeof(timestamp) FROM events"))
        assert kinds == [("integer",)]
        table = asyncio.run(query(sql_url, "SELECT sql FROM sqlite_master WHERE name = 'events'"))
        assert "timestamp BIGINT NOT NULL" in table[0][0]


BAD_ROWS = [
    ("s1", "ok", '{"fine": true}', 10),
    ("s1", "broken", "{not json", 20),
    ("s2", "nan", "NaN", 30),
    ("s2", "ok", '"\\u0000 fine"', 40),
]


def test_rows_whose_data_is_not_json_stop_the_upgrade_before_any_change(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, BAD_ROWS))
    ids = {
        event_id: row_id
        for row_id, event_id in asyncio.run(query(sql_url, "SELECT id, event_id FROM events"))
    }

    code, output = run_migrate("--url", sql_url)

    assert code == 1
    assert "Traceback" not in output
    error = next(line for line in output.splitlines() if line.startswith("Error: "))
    assert "revision 0002" in error
    assert "2 legacy row(s) hold data that is not JSON" in error
    assert f"events.id {ids['broken']}, {ids['nan']}" in error
    assert "--invalid-data string" in error
    # Nothing changed but the stamp: the legacy table is as it was.
    assert asyncio.run(migrate.status(sql_url)).revision == "0001"
    columns = asyncio.run(
        query(
            sql_url,
            "SELECT count(*) FROM events WHERE data IN ('{not json', 'NaN')",
        )
    )
    assert columns == [(2,)]
    with pytest.raises(Exception, match="stream_id"):
        asyncio.run(query(sql_url, "SELECT stream_id FROM events"))

    code, output = run_migrate("--url", sql_url, "--invalid-data", "string")

    assert code == 0, output
    assert asyncio.run(_stream(sql_url, "s1")) == [
        ("ok", 1, {"fine": True}, 10),
        ("broken", 2, "{not json", 20),
    ]
    assert asyncio.run(_stream(sql_url, "s2")) == [
        ("nan", 1, "NaN", 30),
        ("ok", 2, "\x00 fine", 40),
    ]


def test_sqlite_data_with_a_nul_byte_after_its_json_is_not_json(sqlite_url: str) -> None:
    # SQLite's json_valid() stops reading at the NUL and says yes; every read of the
    # stream would then fail on the row.
    asyncio.run(create_unversioned_legacy(sqlite_url, [BAD_ROWS[0], ("s1", "nul", "1", 20)]))
    asyncio.run(
        execute(
            sqlite_url,
            "UPDATE events SET data = CAST('[2]' || char(0) || 'junk' AS TEXT) "
            "WHERE event_id = 'nul'",
        )
    )
    nul_id = asyncio.run(query(sqlite_url, "SELECT id FROM events WHERE event_id = 'nul'"))[0][0]

    code, output = run_migrate("--url", sqlite_url)

    assert code == 1, output
    assert "1 legacy row(s) hold data that is not JSON (RFC 8259)" in output
    assert f"not replay: events.id {nul_id}." in output

    code, output = run_migrate("--url", sqlite_url, "--invalid-data", "string")

    assert code == 0, output
    assert asyncio.run(_stream(sqlite_url, "s1")) == [
        ("ok", 1, {"fine": True}, 10),
        ("nul", 2, "[2]\x00junk", 20),
    ]


def test_alembic_refuses_bad_data_too_and_takes_the_option(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, BAD_ROWS))
    with pytest.raises(EventStoreError, match="not JSON"):
        asyncio.run(alembic(sql_url, "upgrade", "head"))
    asyncio.run(alembic(sql_url, "upgrade", "head", invalid_data="string"))
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT


def test_reading_a_corrupt_row_names_it(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))
    asyncio.run(migrate.upgrade(sql_url))
    asyncio.run(execute(sql_url, "UPDATE events SET data = '{corrupt' WHERE event_id = 'b'"))
    with pytest.raises(CorruptDataError) as raised:
        asyncio.run(_stream(sql_url, "s1"))
    assert str(raised.value).startswith(
        "event 'b' (session 's1', stream '_default', seq 1) holds data that is not JSON"
    )
    assert str(raised.value).endswith("; fix or delete that row")


def test_exporting_a_corrupt_row_is_one_error_line_and_no_file(
    sql_url: str, tmp_path: Path
) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))
    asyncio.run(migrate.upgrade(sql_url))
    asyncio.run(execute(sql_url, "UPDATE events SET data = '{corrupt' WHERE event_id = 'b'"))
    dump = tmp_path / "dump.jsonl"

    result = CliRunner().invoke(main, ["export", "--url", sql_url, "-o", str(dump)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cannot export event 'b' (session 's1', stream '_default', seq 1)" in result.output
    assert "not JSON" in result.output
    assert [p.name for p in tmp_path.iterdir() if "dump" in p.name] == [], "a partial dump"


def test_migrated_sessions_are_not_idle_right_after_the_upgrade(sql_url: str) -> None:
    """Their events are old, but the upgrade is now: pruning counts from the upgrade."""
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))  # timestamps from 1970
    before = time.time_ns() // 10**6
    assert run_migrate("--url", sql_url)[0] == 0

    result = CliRunner().invoke(main, ["prune", "--idle", "1h", "--url", sql_url])

    assert result.exit_code == 0, result.output
    assert "pruned 0 idle session(s)" in result.output
    assert len(asyncio.run(events_rows(sql_url))) == len(ROWS)
    heads = asyncio.run(
        query(sql_url, "SELECT session_id, created_at, updated_at FROM event_streams")
    )
    assert sorted((s, created) for s, created, _ in heads) == [("s1", 10), ("s2", 20)]
    assert all(updated >= before for *_, updated in heads)


def test_migrate_with_a_default_stream_id(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))

    code, output = run_migrate("--url", sql_url, "--default-stream-id", "stdio")

    assert code == 0, output
    assert {row[2] for row in asyncio.run(events_rows(sql_url))} == {"stdio"}
    assert [e[0] for e in asyncio.run(_stream(sql_url, "s1", "stdio"))] == ["b", "a"]
    # A legacy writer's rows (PostgreSQL) land there too: it is the column's default.
    default = asyncio.run(
        query(
            sql_url,
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'events' AND column_name = 'stream_id'"
            if sql_url.startswith("postgresql")
            else "SELECT dflt_value FROM pragma_table_info('events') WHERE name = 'stream_id'",
        )
    )
    assert "stdio" in default[0][0]


def test_a_downgrade_folds_several_streams_back_into_their_sessions(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))
    asyncio.run(migrate.upgrade(sql_url))

    async def write_streams() -> None:
        async with open_store(sql_url) as store:
            requests = [
                StoreEvent("s1", stream, f"{stream}-{i}", {"i": i}, 100 + i)
                for stream in ("1", "2", "_GET_stream")
                for i in range(3)
            ]
            for request in [*requests, StoreEvent("s3", "7", "only", "x", 5)]:
                await store.apply([request])

    asyncio.run(write_streams())
    upgraded = asyncio.run(events_rows(sql_url))
    assert len({(row[1], row[2]) for row in upgraded}) == 6

    code, output = run_migrate("--url", sql_url, "--downgrade", "0001")

    assert code == 0, output
    for revision in ("0005", "0004", "0003", "0002"):
        assert f"reverted {revision} " in output
    assert asyncio.run(migrate.status(sql_url)).revision == "0001"
    legacy = asyncio.run(
        query(sql_url, "SELECT id, session_id, event_id, data, timestamp FROM events ORDER BY id")
    )
    # Every event of every stream is still there, in its session, with its data and time.
    assert legacy == [(r[0], r[1], r[4], r[5], r[6]) for r in upgraded]
    event_ids = [(session, event_id) for _, session, event_id, _, _ in legacy]
    assert len(event_ids) == len(set(event_ids)) == 3 + 10

    # Upgrading again puts them all in the session's one (default) stream, by time.
    assert run_migrate("--url", sql_url)[0] == 0
    asyncio.run(assert_numbered_in_order(sql_url))
    s1 = asyncio.run(_stream(sql_url, "s1"))
    streams = ("1", "2", "_GET_stream")
    assert [e[0] for e in s1] == ["b", "a", *(f"{st}-{i}" for i in range(3) for st in streams)]


@pytest.mark.parametrize("data_type", ["JSONB", "JSON"])
def test_a_json_or_jsonb_data_column_becomes_text(postgres_url: str, data_type: str) -> None:
    """The store reads and writes data as text: the upgrade converts the column."""
    rows = [("s1", "a", '{"b": 1, "a": [2]}', 10), ("s1", "b", '"b"', 20)]
    asyncio.run(create_unversioned_legacy(postgres_url, rows, data_type=data_type))

    code, output = run_migrate("--url", postgres_url)

    assert code == 0, output
    declared = asyncio.run(
        query(
            postgres_url,
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'events' AND column_name = 'data'",
        )
    )
    assert declared == [("text",)]
    assert asyncio.run(_stream(postgres_url, "s1")) == [
        ("a", 1, {"b": 1, "a": [2]}, 10),
        ("b", 2, "b", 20),
    ]

    async def write_and_read() -> list[object]:
        async with open_store(postgres_url) as store:
            await store.store_event("s1", DEFAULT_STREAM_ID, "c", {"z": 0, "y": "\u0000"})
            return [e.data for e in await store.get_stream_events("s1", DEFAULT_STREAM_ID)]

    assert asyncio.run(write_and_read())[-1] == {"z": 0, "y": "\u0000"}
    # A legacy writer's text insert still lands (in the default stream, numbered).
    asyncio.run(execute(postgres_url, LEGACY_INSERT, [_legacy("s1", "d", '"d"', 40)]))
    assert [e[0] for e in asyncio.run(_stream(postgres_url, "s1"))] == ["a", "b", "c", "d"]


def _legacy(
    session_id: str | None, event_id: str | None, data: str | None, ts: int | None
) -> dict[str, object]:
    return {"session_id": session_id, "event_id": event_id, "data": data, "timestamp": ts}


def _declared_nullable(url: str) -> dict[str, bool]:
    async def read() -> dict[str, bool]:
        db = engine(url)
        try:
            async with db.connect() as conn:
                columns = await conn.run_sync(lambda c: inspect(c).get_columns("events"))
        finally:
            await db.dispose()
        return {column["name"]: bool(column["nullable"]) for column in columns}

    return asyncio.run(read())


def test_rows_without_a_session_event_id_or_timestamp_stop_the_upgrade(sql_url: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, nullable=True))
    asyncio.run(
        execute(
            sql_url,
            LEGACY_INSERT,
            [
                _legacy("s1", "ok", "1", 10),
                _legacy(None, "no-session", "2", 20),
                _legacy("s1", None, "3", 30),
                _legacy("s1", "no-time", "4", None),
                _legacy(None, None, "5", None),
            ],
        )
    )

    code, output = run_migrate("--url", sql_url, "--invalid-data", "string")

    assert code == 1, output
    error = next(line for line in output.splitlines() if line.startswith("Error: "))
    assert "revision 0002" in error
    assert (
        "4 legacy row(s) have no value (NULL) where the store needs one: session_id in "
        "events.id 2, 5; event_id in events.id 3, 5; timestamp in events.id 4, 5. No row "
        "or table was changed (at most, the database was stamped 0001" in error
    ), error
    assert asyncio.run(migrate.status(sql_url)).revision == "0001"
    assert len(asyncio.run(query(sql_url, "SELECT id FROM events"))) == 5
    with pytest.raises(Exception, match="stream_id"):
        asyncio.run(query(sql_url, "SELECT stream_id FROM events"))

    asyncio.run(execute(sql_url, "DELETE FROM events WHERE id > 1"))
    code, output = run_migrate("--url", sql_url)

    assert code == 0, output
    nullable = _declared_nullable(sql_url)
    assert [c for c in ("session_id", "event_id", "data", "timestamp") if nullable[c]] == []


def test_null_data_kept_as_json_null_says_so(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, nullable=True))
    asyncio.run(
        execute(
            sql_url,
            LEGACY_INSERT,
            [_legacy("s1", "null", None, 10), _legacy("s1", "text", "{no", 20)],
        )
    )

    with caplog.at_level(logging.WARNING, logger="eventstore.migrations"):
        asyncio.run(migrate.upgrade(sql_url, invalid_data="string"))

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "kept the data of 1 legacy row(s) that was not JSON as JSON strings: events.id 2",
        "1 legacy row(s) had no data (NULL); they now hold JSON null: events.id 1",
    ]
    assert asyncio.run(_stream(sql_url, "s1")) == [("null", 1, None, 10), ("text", 2, "{no", 20)]
    assert not _declared_nullable(sql_url)["data"]
