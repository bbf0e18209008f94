"""Legacy timestamps a BIGINT cannot hold (NaN, Infinity, 1e30, text) stop the upgrade
before any change, naming the rows, online and in a ``--sql`` script; they were turned
into 9223372036854775807 or 0 (SQLite) or failed as 'bigint out of range' (PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.migrations.helpers import create_unversioned_legacy, execute, query, run_migrate
from tests.migrations.test_offline_script import _psql, _script, _sqlite3
from tests.migrations.test_unservable_data import _assert_untouched

#: (event id, SQL giving its timestamp) per dialect.
BAD = {
    "postgres": [("nan", "'NaN'"), ("inf", "'Infinity'"), ("minf", "'-Infinity'"), ("big", "1e30")],
    "sqlite": [("inf", "9e999"), ("big", "1e30"), ("text", "'notanumber'"), ("blob", "x'01'")],
}


def _legacy(url: str) -> list[int]:
    """A legacy table (double precision / REAL timestamps) with good rows and bad ones."""
    dialect = "postgres" if url.startswith("postgresql") else "sqlite"
    declared = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    rows = [("s", "ok", "1", 1_700_000_000_123.5), ("s", "neg", "2", -5.0)]
    rows += [("s", event_id, "0", 1.0) for event_id, _ in BAD[dialect]]
    asyncio.run(create_unversioned_legacy(url, rows, timestamp_type=declared))
    for event_id, value in BAD[dialect]:
        # Test constants only.
        statement = f"UPDATE events SET timestamp = {value} WHERE event_id = '{event_id}'"  # noqa: S608
        asyncio.run(execute(url, statement))
    ids = asyncio.run(query(url, "SELECT id FROM events WHERE event_id NOT IN ('ok', 'neg')"))
    return sorted(row[0] for row in ids)


@pytest.mark.parametrize("invalid_data", ["refuse", "string"])
def test_migrate_refuses_timestamps_a_bigint_cannot_hold(sql_url: str, invalid_data: str) -> None:
    ids = _legacy(sql_url)

    code, output = run_migrate("--url", sql_url, "--invalid-data", invalid_data)

    assert code == 1, output
    assert "Traceback" not in output
    assert f"{len(ids)} legacy row(s) have a timestamp that is not a number" in output
    assert "events.id " + ", ".join(map(str, ids)) + "." in output
    assert "No row or table was changed" in output
    _assert_untouched(sql_url)


def test_a_script_refuses_them_too(sql_url: str, tmp_path: Path) -> None:
    ids = _legacy(sql_url)
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(sql_url))

    if sql_url.startswith("postgresql"):
        ran = _psql(sql_url, script, "-v", "ON_ERROR_STOP=1")
        shown = ", ".join(map(str, ids))
        assert f"holds (NaN, Infinity, beyond 2^63): events.id {shown};" in ran.stderr
    else:
        ran = _sqlite3(sql_url, script)
        assert "malformed JSON" in ran.stderr
    assert ran.returncode != 0
    _assert_untouched(sql_url)


def test_good_timestamps_still_upgrade(sql_url: str) -> None:
    declared = "DOUBLE PRECISION" if sql_url.startswith("postgresql") else "REAL"
    rows = [("s", "ok", "1", 1_700_000_000_123.5), ("s", "neg", "2", -5.0)]
    asyncio.run(create_unversioned_legacy(sql_url, rows, timestamp_type=declared))

    code, output = run_migrate("--url", sql_url)

    assert code == 0, output
    got = asyncio.run(query(sql_url, "SELECT event_id, timestamp FROM events ORDER BY id"))
    assert got == [("ok", 1_700_000_000_123), ("neg", -5)]
