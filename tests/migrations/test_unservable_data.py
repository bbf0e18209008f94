"""Legacy data that is valid JSON, or looks it to the database, but that the store's
reader refuses: the upgrade's check refuses it too (naming the rows), online and in a
``--sql`` script, or converts it under ``--invalid-data string``; what it lets through
the store reads and exports."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventstore import migrate
from eventstore.cli import main
from eventstore.migrate import SchemaState
from tests.migrations.helpers import create_unversioned_legacy, execute, query, run_migrate
from tests.migrations.test_offline_script import _psql, _script, _sqlite3

DIGITS = "9" * 4301
#: Rows the reader serves, though they hold what the check looks at more closely.
GOOD = [
    ("s1", "ok", '{"fine": "\u00e9\u6f22\U0001f600", "n": 1e5, "tiny": 1e-400}', 10),
    ("s1", "long", "[" + "1" * 4300 + ", 1.5e308, " + "7" * 400 + "]", 11),
]
#: (event id, data as inserted, or SQL giving it; the data after --invalid-data string).
SQLITE_BAD = [
    ("inf", "'1e400'", '"1e400"'),
    ("mantissa", f"'[{'1' * 250}e99]'", json.dumps(f"[{'1' * 250}e99]")),
    ("blob", "x'7b2278223a317d'", '{"x":1}'),
    ("utf8", "cast(x'22ff22' as text)", "\"X'22FF22'\""),
    ("digits", f"'[{DIGITS}]'", json.dumps(f"[{DIGITS}]")),
]
POSTGRES_BAD = [
    ("inf", "'1e400'", '"1e400"'),
    ("mantissa", f"'[{'1' * 250}e99]'", json.dumps(f"[{'1' * 250}e99]")),
    ("nested", """'{"x":-1E+400}'""", '"{\\"x\\":-1E+400}"'),
    ("digits", f"'[{DIGITS}]'", json.dumps(f"[{DIGITS}]")),
]


def _legacy(url: str) -> tuple[list[tuple[str, str, str]], list[int]]:
    """A legacy table with the good rows and the dialect's bad ones; their ids."""
    bad = POSTGRES_BAD if url.startswith("postgresql") else SQLITE_BAD
    rows = [*GOOD, *((f"s{n}", event_id, "0", 20 + n) for n, (event_id, _, _) in enumerate(bad))]
    asyncio.run(create_unversioned_legacy(url, rows))
    for event_id, value, _ in bad:
        # Test constants only; the values are SQL expressions (x'..', casts).
        asyncio.run(execute(url, f"UPDATE events SET data = {value} WHERE event_id = '{event_id}'"))  # noqa: S608
    ids = asyncio.run(query(url, "SELECT id FROM events WHERE event_id NOT IN ('ok', 'long')"))
    return bad, sorted(row[0] for row in ids)


def _assert_untouched(url: str) -> None:
    assert asyncio.run(migrate.status(url)).revision == "0001"
    with pytest.raises(Exception, match="stream_id"):
        asyncio.run(query(url, "SELECT stream_id FROM events"))


def _assert_converted(url: str, bad: list[tuple[str, str, str]]) -> None:
    """Every row is readable: the export reads them all, and the bad ones were converted."""
    assert asyncio.run(migrate.status(url)).state is SchemaState.CURRENT
    data = dict(asyncio.run(query(url, "SELECT event_id, data FROM events")))
    assert {event_id: data[event_id] for event_id, _, _ in bad} == {
        event_id: converted for event_id, _, converted in bad
    }
    result = CliRunner().invoke(main, ["export", "--url", url])
    assert result.exit_code == 0, result.output
    assert "exported " + str(len(GOOD) + len(bad)) + " events" in result.output


def test_migrate_refuses_what_the_reader_refuses(sql_url: str) -> None:
    bad, ids = _legacy(sql_url)

    code, output = run_migrate("--url", sql_url)

    assert code == 1, output
    assert "Traceback" not in output
    assert f"{len(ids)} legacy row(s) hold data that is not JSON (RFC 8259)" in output
    assert "events.id " + ", ".join(map(str, ids)) + "." in output
    _assert_untouched(sql_url)

    code, output = run_migrate("--url", sql_url, "--invalid-data", "string")

    assert code == 0, output
    _assert_converted(sql_url, bad)


def test_a_script_refuses_what_the_reader_refuses(sql_url: str, tmp_path: Path) -> None:
    bad, ids = _legacy(sql_url)
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(sql_url))

    if sql_url.startswith("postgresql"):
        ran = _psql(sql_url, script, "-v", "ON_ERROR_STOP=1")
        shown = ", ".join(map(str, ids))
        assert f"legacy rows hold data that is not JSON: events.id {shown};" in ran.stderr
    else:
        ran = _sqlite3(sql_url, script)
        assert "malformed JSON" in ran.stderr
    assert ran.returncode != 0
    _assert_untouched(sql_url)

    script.write_text(_script(sql_url, "--invalid-data", "string"))
    if sql_url.startswith("postgresql"):
        ran = _psql(sql_url, script, "-v", "ON_ERROR_STOP=1")
    else:
        ran = _sqlite3(sql_url, script)
    assert ran.returncode == 0, ran.stderr
    _assert_converted(sql_url, bad)


#: A PostgreSQL ``json`` column keeps the text as written; ``jsonb`` stores numbers as
#: ``numeric``, so its ``1e400`` reads back as an integer of 401 digits (which the
#: reader takes) and only a fraction beyond a float's range, or an integer of too many
#: digits, stays unreadable. (event id, data as inserted, the data after the upgrade).
JSON_COLUMN_ROWS = {
    "JSON": [
        ("inf", "[1e400]", '"[1e400]"'),
        ("nested", '{"x":-1E+400}', '"{\\"x\\":-1E+400}"'),
        ("digits", f"[{DIGITS}]", json.dumps(f"[{DIGITS}]")),
    ],
    "JSONB": [
        ("inf", "[1e400]", "[1" + "0" * 400 + "]"),
        ("fraction", f"[{'1' * 400}.5]", json.dumps(f"[{'1' * 400}.5]")),
        ("exponent", "[1e5000]", json.dumps("[1" + "0" * 5000 + "]")),
        ("digits", f"[{DIGITS}]", json.dumps(f"[{DIGITS}]")),
    ],
}


def _legacy_json_column(url: str, data_type: str) -> tuple[list[tuple[str, str, str]], list[int]]:
    """A legacy table whose data column is ``data_type``, with the good rows and that
    type's rows; the ids of those the check refuses."""
    rows = JSON_COLUMN_ROWS[data_type]
    legacy = [(f"s{n}", event_id, data, 20 + n) for n, (event_id, data, _) in enumerate(rows)]
    asyncio.run(create_unversioned_legacy(url, [*GOOD, *legacy], data_type=data_type))
    # What the check refuses is what --invalid-data string makes a JSON string.
    refused = {event_id for event_id, _, after in rows if isinstance(json.loads(after), str)}
    ids = asyncio.run(query(url, "SELECT id, event_id FROM events"))
    return rows, sorted(row_id for row_id, event_id in ids if event_id in refused)


@pytest.mark.parametrize("data_type", ["JSON", "JSONB"])
def test_migrate_converts_what_the_reader_refuses_in_a_json_column(
    postgres_url: str, data_type: str
) -> None:
    rows, ids = _legacy_json_column(postgres_url, data_type)

    code, output = run_migrate("--url", postgres_url)

    assert code == 1, output
    assert f"{len(ids)} legacy row(s) hold data that is not JSON (RFC 8259)" in output
    assert "events.id " + ", ".join(map(str, ids)) + "." in output
    _assert_untouched(postgres_url)

    code, output = run_migrate("--url", postgres_url, "--invalid-data", "string")

    assert code == 0, output
    _assert_converted(postgres_url, rows)


@pytest.mark.parametrize("data_type", ["JSON", "JSONB"])
def test_a_script_converts_what_the_reader_refuses_in_a_json_column(
    postgres_url: str, data_type: str, tmp_path: Path
) -> None:
    rows, ids = _legacy_json_column(postgres_url, data_type)
    script = tmp_path / "upgrade.sql"
    script.write_text(_script(postgres_url))

    ran = _psql(postgres_url, script, "-v", "ON_ERROR_STOP=1")

    assert ran.returncode != 0
    shown = ", ".join(map(str, ids))
    assert f"legacy rows hold data that is not JSON: events.id {shown};" in ran.stderr
    _assert_untouched(postgres_url)

    script.write_text(_script(postgres_url, "--invalid-data", "string"))
    ran = _psql(postgres_url, script, "-v", "ON_ERROR_STOP=1")

    assert ran.returncode == 0, ran.stderr
    _assert_converted(postgres_url, rows)


def test_migrate_runs_on_a_python_without_a_limit_on_digits(sqlite_url: str) -> None:
    # Python before 3.10.7, which the package supports, reads integers of any length
    # and has no sys.get_int_max_str_digits; this process lacks only the function.
    asyncio.run(create_unversioned_legacy(sqlite_url, [("s1", "bad", "{not json", 10)]))
    code = "import sys; del sys.get_int_max_str_digits; from eventstore.cli import main; main()"

    ran = subprocess.run(
        [sys.executable, "-c", code, "migrate", "--url", sqlite_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    output = " ".join((ran.stdout + ran.stderr).split())
    assert "1 legacy row(s) hold data that is not JSON (RFC 8259)" in output
    assert "integers of any length" in output
    _assert_untouched(sqlite_url)
