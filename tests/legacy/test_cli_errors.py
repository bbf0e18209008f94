"""``eventstore import``/``export``/``info``/``prune`` with bad paths and odd targets: one
``Error:`` line and a non-zero exit, nothing created that was not asked for, and nothing
the user keeps overwritten."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore import StoreEvent, open_store
from tests.legacy.helpers import (
    cli_command,
    cli_env,
    create_legacy_table,
    run_cli,
    stored,
    write_lines,
)
from tests.migrations.helpers import execute

LINES = [
    '{"session_id": "s", "id": "a", "data": 1, "timestamp": 1}',
    '{"session_id": "s", "id": "a",   "data": {"b": 2, "a": "\\u00fc"}, "timestamp": 2}',
    '{"session_id": "s", "id": "b", "data": 3, "timestamp": 3}',
]


def _error(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    return errors[0]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- the reject file ------------------------------------------------------------------


def test_the_reject_file_may_not_be_the_dump(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "victim.jsonl", LINES)
    before = dump.read_bytes()
    target = f"sqlite:///{tmp_path}/t.sqlite3"
    os.symlink(dump, tmp_path / "alias.jsonl")

    for rejects in (str(dump), "victim.jsonl", str(tmp_path / "alias.jsonl"), "./victim.jsonl"):
        result = run_cli("import", str(dump), "--url", target, "--rejects", rejects)
        assert result.exit_code == 2, result.output
        assert "is the source dump: the rejects would overwrite it" in _error(result.output)
    assert dump.read_bytes() == before
    assert _files(tmp_path) == ["alias.jsonl", "victim.jsonl"]


def test_the_reject_file_may_not_be_a_database(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "d.jsonl", LINES)
    target = tmp_path / "t.sqlite3"
    legacy = f"sqlite:///{tmp_path}/legacy.sqlite3"
    create_legacy_table(legacy, [])
    for source, rejects in ((str(dump), target), (legacy, tmp_path / "legacy.sqlite3")):
        url = f"sqlite:///{target}"
        result = run_cli("import", source, "--url", url, "--rejects", str(rejects))
        assert result.exit_code == 2, result.output
        assert "database: the rejects would overwrite it" in _error(result.output)
    assert not target.exists()


def test_the_reject_file_may_not_be_a_database_s_wal_or_journal(tmp_path: Path) -> None:
    # SQLite deletes its -wal and -shm files on close: the rejects would vanish with them.
    dump = write_lines(tmp_path / "d.jsonl", [*LINES, "not json"])
    target = tmp_path / "t.sqlite3"
    for end in ("-wal", "-shm", "-journal"):
        rejects = tmp_path / f"t.sqlite3{end}"
        result = run_cli(
            "import", str(dump), "--url", f"sqlite:///{target}", "--rejects", str(rejects)
        )
        assert result.exit_code == 2, result.output
        assert "is the target database: the rejects would overwrite it" in _error(result.output)
    assert _files(tmp_path) == ["d.jsonl"]


def test_the_reject_file_may_not_replace_or_remove_a_file_of_the_user(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "d.jsonl", [LINES[0], LINES[2]])
    bad_dump = write_lines(tmp_path / "bad.jsonl", [LINES[0], LINES[2], "not json"])
    target = f"sqlite:///{tmp_path}/t.sqlite3"
    precious = tmp_path / "important.txt"
    precious.write_text("precious\n")
    for source in (dump, bad_dump):  # nothing rejected would remove it, a reject replace it
        for args in ([], ["--dry-run"]):
            result = run_cli(
                "import", str(source), "--url", target, "--rejects", str(precious), *args
            )
            assert result.exit_code == 2, result.output
            assert f"--rejects {precious} exists and is not a reject file" in _error(result.output)
    assert precious.read_text() == "precious\n"
    assert not (tmp_path / "t.sqlite3").exists()

    # An earlier run's reject file (or an empty one) is the import's to replace.
    rejects = tmp_path / "r.jsonl"
    assert (
        run_cli("import", str(bad_dump), "--url", target, "--rejects", str(rejects)).exit_code == 3
    )
    earlier = rejects.read_text()
    assert earlier.startswith('{"line":3,')
    assert (
        run_cli("import", str(bad_dump), "--url", target, "--rejects", str(rejects)).exit_code == 3
    )
    assert rejects.read_text() == earlier
    assert run_cli("import", str(dump), "--url", target, "--rejects", str(rejects)).exit_code == 0
    assert not rejects.exists()
    rejects.write_text("")
    assert run_cli("import", str(dump), "--url", target, "--rejects", str(rejects)).exit_code == 0


def test_an_unwritable_reject_file_fails_before_the_target_is_created(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "d.jsonl", LINES)
    target = tmp_path / "t.sqlite3"
    (tmp_path / "a-file").write_text("")
    for rejects, why in (
        ("/nonexistent/dir/r.jsonl", "the directory /nonexistent/dir does not exist"),
        (str(tmp_path / "a-file" / "r.jsonl"), "is not a directory"),
        (str(tmp_path), "it is a directory"),
    ):
        result = run_cli("import", str(dump), "--url", f"sqlite:///{target}", "--rejects", rejects)
        assert result.exit_code in (1, 2), result.output
        error = _error(result.output)
        assert "reject file" in error or "Invalid value for '--rejects'" in error, error
        assert why in error or result.exit_code == 2, error
        assert not target.exists(), "the target database was created anyway"


# -- export ---------------------------------------------------------------------------


def _store(url: str, events: int = 3) -> None:
    async def fill() -> None:
        async with open_store(url) as store:
            await store.apply(
                [StoreEvent(f"s{i % 3}", "1", f"e{i}", {"i": i}, i) for i in range(events)]
            )

    asyncio.run(fill())


def test_export_to_a_path_it_cannot_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    _store(url)
    for output, why in (
        ("/nodir/x.jsonl", "cannot write the output /nodir/x.jsonl: the directory /nodir"),
        (str(tmp_path), "it is a directory"),
        ("/dev/full", "cannot write /dev/full: No space left on device"),
    ):
        result = run_cli("export", "--url", url, "-o", output)
        assert result.exit_code == 1, result.output
        assert why in _error(result.output)
    assert _files(tmp_path) == ["store.sqlite3"]


def test_export_may_not_replace_the_database_it_exports(tmp_path: Path) -> None:
    database = tmp_path / "store.sqlite3"
    url = f"sqlite:///{database}"
    _store(url)
    before = stored(url)
    os.symlink(database, tmp_path / "alias.sqlite3")
    for output in (database, tmp_path / "alias.sqlite3", tmp_path / "store.sqlite3-wal"):
        result = run_cli("export", "--url", url, "-o", str(output))
        assert result.exit_code == 2, result.output
        assert f"--output {output} is the database being exported" in _error(result.output)
    assert stored(url) == before
    assert _files(tmp_path) == ["alias.sqlite3", "store.sqlite3"]


def test_export_to_dash_is_standard_output_and_gz_is_any_case(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    _store(url)
    to_stdout = run_cli("export", "--url", url, "-o", "-")
    assert to_stdout.exit_code == 0, to_stdout.output
    assert len([line for line in to_stdout.output.splitlines() if line.startswith("{")]) == 3
    assert not (tmp_path / "-").exists() and not Path("-").exists()

    assert run_cli("export", "--url", url, "-o", str(tmp_path / "d.jsonl.GZ")).exit_code == 0
    assert (tmp_path / "d.jsonl.GZ").read_bytes()[:2] == b"\x1f\x8b"


def test_a_failed_export_keeps_the_file_it_would_have_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    _store(url)
    dump = tmp_path / "dump.jsonl"
    assert run_cli("export", "--url", url, "-o", str(dump)).exit_code == 0
    good = dump.read_bytes()
    asyncio.run(execute(url, "UPDATE events SET data = '{corrupt' WHERE event_id = 'e2'"))

    result = run_cli("export", "--url", url, "-o", str(dump))

    assert result.exit_code == 1
    assert "its stored data is not JSON" in _error(result.output)
    assert dump.read_bytes() == good
    assert _files(tmp_path) == ["dump.jsonl", "store.sqlite3"]


@pytest.mark.parametrize(
    ("sig", "status", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
def test_an_interrupted_export_leaves_no_dump(
    tmp_path: Path, sqlite_url: str, sig: signal.Signals, status: int, said: str
) -> None:
    # Ctrl-C, or SIGTERM (`kill`, systemd, a container stopping): the same cleanup.
    _store(sqlite_url, 150_000)
    dump = tmp_path / "dump.jsonl"
    process = subprocess.Popen(
        [*cli_command(), "export", "--url", sqlite_url, "-o", str(dump)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None and not partial:
        partial = [p for p in tmp_path.glob(".dump.jsonl.*.partial") if p.stat().st_size]
        time.sleep(0.005)
    assert partial, "the export was over before it could be interrupted"
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == status, stderr
    assert f"{said}: nothing was written to {dump}" in stderr
    assert "Traceback" not in stderr
    assert not dump.exists()
    assert not list(tmp_path.glob(".dump.jsonl.*"))


def test_an_export_whose_reader_stops_early_says_so_in_one_line(sqlite_url: str) -> None:
    # `eventstore export | head -c 10`
    _store(sqlite_url, 50_000)
    process = subprocess.Popen(
        [*cli_command(), "export", "--url", sqlite_url],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)

    assert process.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1] == (
        "Error: standard output was closed before the export finished (broken pipe)"
    ), stderr
    assert "Traceback" not in stderr


def test_export_of_a_memory_store_says_there_is_nothing_to_export() -> None:
    result = run_cli("export", "--url", "memory://")
    assert result.exit_code == 2
    assert "memory:// has nothing to export" in _error(result.output)


# -- read-only commands create nothing --------------------------------------------------


@pytest.mark.parametrize("command", [["info"], ["prune", "--idle", "1h"]])
def test_a_mistyped_sqlite_path_is_an_error_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    for path in ("typo/sub/x.db", "a-file/sub/x.db", "missing.db"):
        result = run_cli(*command, "--url", f"sqlite:///{tmp_path}/{path}")
        assert result.exit_code == 1, result.output
        assert "no eventstore database at" in _error(result.output)
        assert "nothing was created" in result.output
    assert _files(tmp_path) == ["a-file"]


@pytest.mark.parametrize("command", [["info"], ["prune", "--idle", "1h"]])
def test_an_unparsable_url_is_the_only_line(command: list[str]) -> None:
    result = run_cli(*command, "--url", "bogus")
    assert result.exit_code == 2
    assert result.stdout == "", result.stdout
    assert _error(result.output).startswith("Error: not a database URL")


@pytest.mark.parametrize("command", [["info"], ["prune", "--idle", "1h"]])
def test_a_host_database_gets_no_event_store_schema(sql_url: str, command: list[str]) -> None:
    asyncio.run(execute(sql_url, "CREATE TABLE orders (id INTEGER PRIMARY KEY)"))

    result = run_cli(*command, "--url", sql_url)

    assert result.exit_code == 1, result.output
    assert "no event store tables" in _error(result.output)
    tables = asyncio.run(_tables(sql_url))
    assert tables == {"orders"}


async def _tables(url: str) -> set[str]:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    from eventstore.sql.engine import normalize_url

    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def test_info_counts_sessions_streams_and_events(sql_url: str) -> None:
    _store(sql_url, 10)

    result = run_cli("info", "--url", sql_url)

    assert result.exit_code == 0, result.output
    assert "schema: revision 0005 (up to date)" in result.output
    assert "sessions: 3\n" in result.output
    assert "streams: 3\n" in result.output
    assert "events: 10\n" in result.output


def test_prune_refuses_an_absurd_idle_time(sqlite_url: str) -> None:
    _store(sqlite_url)
    for idle in ("99999999999999999999d", "1e9d"):
        result = run_cli("prune", "--idle", idle, "--url", sqlite_url)
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--idle'" in _error(result.output)
    assert len(stored(sqlite_url)) == 3


# -- usage ------------------------------------------------------------------------------


def test_import_usage_errors(tmp_path: Path, sqlite_url: str) -> None:
    dump = write_lines(tmp_path / "d.jsonl", LINES)
    result = run_cli("import", str(dump), "--url", sqlite_url, "--stream-id", "")
    assert result.exit_code == 2
    assert "stream_id must not be empty" in _error(result.output)
    result = run_cli("import", "memory://", "--url", sqlite_url)
    assert result.exit_code == 2
    error = _error(result.output)
    assert "memory:// has nothing to import from" in error
    assert "unsupported database URL scheme" not in error
    (tmp_path / "adir").mkdir()
    result = run_cli("import", str(tmp_path / "adir"), "--url", sqlite_url)
    assert result.exit_code == 1
    assert "is a directory, not a dump file" in _error(result.output)
    help_text = run_cli("import", "--help").output
    for code, meaning in (("0", "done"), ("3", "done, but"), ("1", "failed"), ("2", "bad usage")):
        assert re.search(rf"^\s+{code}\s+{meaning}", help_text, flags=re.M), code
    assert re.search(r"^\s+130\s+interrupted", help_text, flags=re.M)
    assert not Path(sqlite_url.split("///", 1)[1]).exists()


def test_a_dump_path_that_is_not_a_regular_file_says_what_it_is(
    tmp_path: Path, sqlite_url: str
) -> None:
    # /dev/null used to be reported as "no such dump file" though it exists.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for path, error in (
        (
            "/dev/null",
            "/dev/null is a character device, not a regular file; to import from it, "
            "give - and redirect it to standard input",
        ),
        (
            str(fifo),
            f"{fifo} is a named pipe (FIFO), not a regular file; to import from it, "
            "give - and redirect it to standard input",
        ),
        (str(loop), f"cannot read dump file {loop}: Too many levels of symbolic links"),
        (str(tmp_path / "nope.jsonl"), f"no such dump file: {tmp_path / 'nope.jsonl'}"),
    ):
        result = run_cli("import", path, "--url", sqlite_url)
        assert result.exit_code == 1, result.output
        assert _error(result.output) == f"Error: {error}"
    assert not Path(sqlite_url.split("///", 1)[1]).exists()

    result = run_cli("import", "-", "--url", sqlite_url, input="")
    assert result.exit_code == 0, result.output
    assert "imported: 0 new events" in result.output


# -- re-runs and dry runs report what the target holds --------------------------------


def test_a_re_run_reports_nothing_new(tmp_path: Path, sqlite_url: str) -> None:
    dump = write_lines(tmp_path / "d.jsonl", [LINES[0], LINES[2]])
    first = run_cli("import", str(dump), "--url", sqlite_url)
    assert "imported: 2 new events in 1 session (1 stream)" in first.output

    again = run_cli("import", str(dump), "--url", sqlite_url)

    assert again.exit_code == 0, again.output
    assert "already present: 2 events" in again.output
    assert "imported: 0 new events in 0 sessions (0 streams)" in again.output


def test_a_dry_run_checks_the_target_and_writes_nothing(tmp_path: Path, sqlite_url: str) -> None:
    write_lines(tmp_path / "first.jsonl", [LINES[0]])
    assert run_cli("import", str(tmp_path / "first.jsonl"), "--url", sqlite_url).exit_code == 0
    # The target holds s/a = 1; the dump has s/a with other data, and s/b new.
    dump = write_lines(tmp_path / "d.jsonl", [LINES[1], LINES[2]])
    stale = tmp_path / "d.jsonl.rejects.jsonl"
    stale.write_text('{"line":9,"reason":"an earlier run\'s reject","source":"x"}\n')
    before = stored(sqlite_url)

    result = run_cli("import", str(dump), "--url", sqlite_url, "--dry-run")

    assert result.exit_code == 3, result.output
    assert "would reject: 1 lines (1 of them already in the target with other content)" in (
        result.output
    )
    assert "line 1: event id 'a' of session 's' is already in the target with different data" in (
        result.output
    )
    assert "would import: 1 new event in 1 session (1 stream)" in result.output
    assert stored(sqlite_url) == before
    assert stale.read_text() == '{"line":9,"reason":"an earlier run\'s reject","source":"x"}\n'

    real = run_cli("import", str(dump), "--url", sqlite_url)
    assert real.exit_code == 3
    assert "imported: 1 new event in" in real.output
    (record,) = [json.loads(line) for line in stale.read_text().splitlines()]
    assert record["line"] == 1 and "already in the target" in record["reason"]
    # The line as it was in the dump, spacing and escapes included.
    assert record["source"] == LINES[1]


def test_a_conflicting_line_is_reported_as_it_was(tmp_path: Path, sqlite_url: str) -> None:
    dump = write_lines(tmp_path / "d.jsonl", LINES)

    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 3
    (record,) = [
        json.loads(line) for line in (tmp_path / "d.jsonl.rejects.jsonl").read_text().splitlines()
    ]
    assert record["line"] == 2
    assert record["reason"].startswith("duplicate event id 'a' in session 's' with different data")
    assert record["source"] == LINES[1]


def _limit_file_size(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: files may not grow past ``limit`` bytes (``ulimit -f``). A write
    across the limit is cut short and the next one fails with EFBIG, as on a disk that
    fills up mid-write."""

    def limit_it() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_it


def test_an_unbuffered_export_to_a_full_file_is_an_error(tmp_path: Path, sqlite_url: str) -> None:
    # `PYTHONUNBUFFERED=1 eventstore export > dump.jsonl` on a disk that fills: standard
    # output is then raw, so a short write returns a count instead of raising.
    async def fill() -> None:
        async with open_store(sqlite_url) as store:
            await store.apply([StoreEvent("s", "1", f"e{i}", "x" * 40_000, i) for i in range(3)])

    asyncio.run(fill())
    dump = tmp_path / "dump.jsonl"
    with dump.open("wb") as out:
        result = subprocess.run(
            [*cli_command(), "export", "--url", sqlite_url],
            env=cli_env(PYTHONUNBUFFERED="1"),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            preexec_fn=_limit_file_size(64 * 1024),
            check=False,
        )

    assert dump.stat().st_size == 64 * 1024  # the write was cut short
    assert result.returncode == 1, result.stderr
    assert "cannot write standard output: File too large" in _error(result.stderr)
    assert "exported" not in result.stderr


def test_prune_refuses_a_zero_idle_time(sqlite_url: str) -> None:
    # 0 would drop every session, even those written a moment ago.
    _store(sqlite_url)
    for idle in ("0", "0s", "0m", "0ms", "0h0m"):
        result = run_cli("prune", "--idle", idle, "--url", sqlite_url)
        assert result.exit_code == 2, result.output
        error = _error(result.output)
        assert "Invalid value for '--idle'" in error and "must be longer than 0" in error, error
    assert len(stored(sqlite_url)) == 3
    assert run_cli("prune", "--idle", "1h", "--url", sqlite_url).exit_code == 0


@pytest.mark.parametrize(
    "command",
    [
        ["info"],
        ["prune", "--idle", "1h"],
        ["export"],
        ["import", "dump.jsonl"],
        ["import", "dump.jsonl", "--dry-run"],
        ["migrate"],
        ["migrate", "--sql"],
    ],
)
def test_an_empty_url_is_refused_not_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # `--url "$LEGACY_DATABASE_URL"` with the variable unset: it must not fall back to
    # the embedded store (which would get imported into, migrated, pruned, ...).
    data_home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.delenv("EVENTSTORE_DATABASE_URL", raising=False)
    write_lines(tmp_path / "dump.jsonl", [LINES[0]])
    for url in ("", "  "):
        result = run_cli(*command, "--url", url)

        assert result.exit_code == 2, result.output
        error = _error(result.output)
        assert "Invalid value for '--url'" in error and "is empty" in error, error
        assert "unset" in error, error
    # The same variable empty in the environment: Click would take it for unset.
    monkeypatch.setenv("EVENTSTORE_DATABASE_URL", "")
    result = run_cli(*command)
    assert result.exit_code == 2, result.output
    assert "$EVENTSTORE_DATABASE_URL is set but empty" in _error(result.output)
    assert not data_home.exists()


def test_an_empty_import_source_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    # `eventstore import "$LEGACY_DATABASE_URL"` with the variable unset.
    result = run_cli("import", "", "--url", sqlite_url)

    assert result.exit_code == 2, result.output
    error = _error(result.output)
    assert "Invalid value for 'SOURCE'" in error and "is empty" in error, error
    assert "unset" in error, error
    assert not Path(sqlite_url.split("///", 1)[1]).exists()


def _target_holding(kind: str, url: str) -> None:
    """A target the import refuses: a legacy table, a foreign ``events`` table, or a
    store at the older revision 0003."""
    if kind == "legacy":
        create_legacy_table(
            url, [{"session_id": "x", "event_id": "y", "data": "1", "timestamp": 1}]
        )
    elif kind == "foreign":
        asyncio.run(execute(url, "CREATE TABLE events (x INTEGER)"))
    else:

        async def create() -> None:
            async with open_store(url):
                pass

        asyncio.run(create())
        assert run_cli("migrate", "--url", url, "--downgrade", "0003").exit_code == 0


@pytest.mark.parametrize("kind", ["legacy", "foreign", "revision 0003"])
def test_a_dry_run_refuses_the_targets_the_import_refuses(
    tmp_path: Path, sql_url: str, kind: str
) -> None:
    _target_holding(kind, sql_url)
    dump = write_lines(tmp_path / "dump.jsonl", LINES)
    before = asyncio.run(_tables(sql_url))

    dry = run_cli("import", str(dump), "--url", sql_url, "--dry-run")

    assert dry.exit_code == 1, dry.output
    assert "would import" not in dry.output
    assert asyncio.run(_tables(sql_url)) == before
    real = run_cli("import", str(dump), "--url", sql_url)
    assert real.exit_code == 1, real.output
    assert _error(dry.output) == _error(real.output)
