"""``eventstore import`` of a legacy in-memory store dump: checked event by event."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from eventstore import InMemoryEventStore, open_store
from eventstore.transfer import DumpFile, Reject, import_events
from tests.legacy.helpers import Row, run_cli, stored, write_lines

# Three sessions with 3, 2 and 4 events, out of timestamp order, with a duplicated line,
# a corrupt line, a NUL inside a string, a reused id, missing ids and a blank line.
DUMP = [
    '{"session_id": "alpha", "id": "a-3", "data": {"step": 3}, "timestamp": 3000}',
    '{"session_id": "alpha", "id": "a-1", "data": {"step": 1}, "timestamp": 1000}',
    '{"session_id": "beta", "id": "b-1", "data": "nul \\u0000 inside", "timestamp": 500}',
    '{"session_id": "alpha", "id": "a-2", "data": {"step": 2}, "timestamp": 2000}',
    '{"session_id": "gamma", "id": "g-2", "data": [1, 2], "timestamp": 7000}',
    '{"session_id": "alpha", "id": "a-1", "data": {"step": 1}, "timestamp": 1000}',
    '{"session_id": "gamma", "id": "g-1", "data": null, "timestamp": 7000}',
    '{"session_id": "beta", "id": "b-2", "data": {"big": 123456789012345678901234567890},'
    ' "timestamp": 400}',
    "this is not json {",
    '{"session_id": "gamma", "data": 1, "timestamp": 1}',
    '{"session_id": "alpha", "id": "a-2", "data": {"step": "other"}, "timestamp": 2500}',
    '{"session_id": "gamma", "id": "g-0", "data": "\\u00fc \\u2713 \\ud83d\\ude80",'
    ' "timestamp": 6999}',
    "",
    '{"session_id": "gamma", "id": "g-3", "data": {"a": {"b": [true, false]}}, "timestamp": 9000}',
    '{"id": "x", "data": 1, "timestamp": 1}',
]

EXPECTED: list[Row] = [
    ("alpha", "_default", 1, "a-1", {"step": 1}, 1000),
    ("alpha", "_default", 2, "a-2", {"step": 2}, 2000),
    ("alpha", "_default", 3, "a-3", {"step": 3}, 3000),
    ("beta", "_default", 1, "b-2", {"big": 123456789012345678901234567890}, 400),
    ("beta", "_default", 2, "b-1", "nul \x00 inside", 500),
    ("gamma", "_default", 1, "g-0", "ü ✓ 🚀", 6999),
    # Equal timestamps: source order (line 5 before line 7).
    ("gamma", "_default", 2, "g-2", [1, 2], 7000),
    ("gamma", "_default", 3, "g-1", None, 7000),
    ("gamma", "_default", 4, "g-3", {"a": {"b": [True, False]}}, 9000),
]

EXPECTED_REJECTS = [
    (9, "not JSON", "this is not json {"),
    (10, "missing field 'id'", DUMP[9]),
    (11, "duplicate event id 'a-2' in session 'alpha' with different data (first at line 4)", None),
    (15, "missing field 'session_id'", DUMP[14]),
]


def check_rejects(path: Path) -> None:
    records = sorted(
        (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()),
        key=lambda r: r["line"],
    )
    assert [r["line"] for r in records] == [line for line, _, _ in EXPECTED_REJECTS]
    for record, (_, reason, source) in zip(records, EXPECTED_REJECTS, strict=True):
        assert record["reason"].startswith(reason), record
        if source is not None:
            assert record["source"] == source
    conflict = json.loads(records[2]["source"])
    assert conflict["id"] == "a-2" and conflict["data"] == {"step": "other"}


def test_a_legacy_dump_imports_event_by_event(tmp_path: Path, sql_url: str) -> None:
    dump = write_lines(tmp_path / "legacy.jsonl", DUMP)

    result = run_cli("import", str(dump), "--url", sql_url)

    assert result.exit_code == 3, result.output
    assert stored(sql_url) == EXPECTED
    check_rejects(tmp_path / "legacy.jsonl.rejects.jsonl")
    assert "read: 11 events" in result.output
    assert "skipped: 1 identical duplicate lines" in result.output
    assert "rejected: 4 lines" in result.output
    assert "imported: 9 new events in 3 sessions (3 streams)" in result.output


def test_re_running_an_import_stores_nothing_twice(tmp_path: Path, sql_url: str) -> None:
    dump = write_lines(tmp_path / "legacy.jsonl", DUMP)
    run_cli("import", str(dump), "--url", sql_url)
    first = stored(sql_url)

    again = run_cli("import", str(dump), "--url", sql_url)

    assert again.exit_code == 3
    assert stored(sql_url) == first == EXPECTED


def test_a_gzip_dump_and_a_chosen_stream(tmp_path: Path, sqlite_url: str) -> None:
    dump = tmp_path / "legacy.jsonl.gz"
    with gzip.open(dump, "wt", encoding="utf-8") as out:
        out.write("".join(line + "\n" for line in DUMP))
    rejects = tmp_path / "rejects.jsonl"

    result = run_cli(
        "import", str(dump), "--url", sqlite_url, "--stream-id", "stdio", "--rejects", str(rejects)
    )

    assert result.exit_code == 3
    assert stored(sqlite_url) == [(s, "stdio", *rest) for s, _, *rest in EXPECTED]
    check_rejects(rejects)


def test_a_dump_on_standard_input(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    clean = [line for line in DUMP if line.startswith('{"session_id"') and '"id"' in line]

    result = run_cli("import", "-", "--url", sqlite_url, input="\n".join(clean) + "\n")

    assert result.exit_code == 3  # the reused id a-2 is still a conflict
    assert stored(sqlite_url) == EXPECTED
    assert (tmp_path / "eventstore-import.rejects.jsonl").is_file()


def test_a_dry_run_reports_and_writes_nothing(tmp_path: Path, sql_url: str) -> None:
    dump = write_lines(tmp_path / "legacy.jsonl", DUMP)
    async_url = sql_url

    result = run_cli("import", str(dump), "--url", async_url, "--dry-run")

    assert result.exit_code == 3
    assert "would import: 9 new events in 3 sessions (3 streams)" in result.output
    assert "would reject: 4 lines" in result.output
    # A dry run creates no tables: the real import does.
    assert "no event store tables yet" in result.output or "does not exist yet" in result.output
    real = run_cli("import", str(dump), "--url", sql_url)
    assert real.exit_code == 3
    assert stored(sql_url) == EXPECTED


async def test_the_library_imports_into_an_in_memory_store(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "legacy.jsonl", DUMP)
    rejects: list[Reject] = []
    async with open_store("memory://") as store:
        assert isinstance(store, InMemoryEventStore)
        report = await import_events(DumpFile(str(dump)), store, on_reject=rejects.append)
        held = [
            (e.session_id, e.stream_id, e.seq, e.id, e.data, e.timestamp)
            for session in ("alpha", "beta", "gamma")
            for e in await store.get_stream_events(session, "_default")
        ]
    assert held == EXPECTED
    assert sorted(r.position for r in rejects) == [9, 10, 11, 15]
    assert (report.read, report.duplicates, report.rejected, report.stored) == (11, 1, 4, 9)


def test_a_clean_dump_exits_zero_and_leaves_no_reject_file(tmp_path: Path, sqlite_url: str) -> None:
    dump = write_lines(tmp_path / "clean.jsonl", [DUMP[0], DUMP[1], DUMP[3]])

    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert [row[3] for row in stored(sqlite_url)] == ["a-1", "a-2", "a-3"]
    assert not (tmp_path / "clean.jsonl.rejects.jsonl").exists()


def test_a_clean_re_run_removes_the_stale_reject_file(tmp_path: Path, sqlite_url: str) -> None:
    dump = write_lines(tmp_path / "legacy.jsonl", DUMP)
    run_cli("import", str(dump), "--url", sqlite_url)
    assert (tmp_path / "legacy.jsonl.rejects.jsonl").is_file()

    write_lines(dump, [DUMP[0], DUMP[1], DUMP[3]])  # the dump, fixed
    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 0
    assert not (tmp_path / "legacy.jsonl.rejects.jsonl").exists()


def test_an_in_memory_target_is_refused(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "legacy.jsonl", DUMP)
    result = run_cli("import", str(dump), "--url", "memory://")
    assert result.exit_code == 2
    assert "in-memory store lives only inside this process" in result.output


def test_an_unreadable_source_fails_before_writing(tmp_path: Path, sqlite_url: str) -> None:
    missing = run_cli("import", str(tmp_path / "nope.jsonl"), "--url", sqlite_url)
    assert missing.exit_code == 1
    assert "no such dump file" in missing.output

    # A truncated gzip stream: nothing at all is imported, not a partial dump.
    whole = gzip.compress(("\n".join(DUMP[:8]) + "\n").encode())
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(whole[: len(whole) // 2])
    result = run_cli("import", str(broken), "--url", sqlite_url)
    assert result.exit_code == 1
    assert "nothing was imported" in result.output
    assert stored(sqlite_url) == []


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_dump_cut_mid_line_imports_nothing(
    tmp_path: Path, sqlite_url: str, compress: bool
) -> None:
    # `eventstore export` ends every line with a newline: a last line without one was cut
    # (a copy that stopped, a full disk), even where what is left parses (the newline
    # alone missing, or a number cut short would still be JSON).
    text = "".join(line + "\n" for line in (DUMP[0], DUMP[1], DUMP[3]))
    for cut in (text[:-20], text[:-1]):
        data = cut.encode()
        dump = tmp_path / ("cut.jsonl.gz" if compress else "cut.jsonl")
        dump.write_bytes(gzip.compress(data) if compress else data)

        for args in ([], ["--dry-run"]):
            result = run_cli("import", str(dump), "--url", sqlite_url, *args)

            assert result.exit_code == 1, result.output
            error = [line for line in result.output.splitlines() if line.startswith("Error: ")]
            assert error == [
                f"Error: {dump} is cut short: its last line (line 3) does not end with a "
                "newline, so it may be incomplete; nothing was imported (if the dump is "
                "whole, add the missing newline and run again)"
            ], result.output
            assert stored(sqlite_url) == []
            assert not (tmp_path / f"{dump.name}.rejects.jsonl").exists()

    # Whole again: it imports.
    dump.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    assert run_cli("import", str(dump), "--url", sqlite_url).exit_code == 0


def test_a_dump_that_starts_with_a_byte_order_mark_imports_whole(
    tmp_path: Path, sqlite_url: str
) -> None:
    dump = tmp_path / "bom.jsonl"
    lines = [DUMP[0], DUMP[1], DUMP[3]]
    dump.write_bytes(b"\xef\xbb\xbf" + "".join(f"{line}\n" for line in lines).encode())

    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert [row[3] for row in stored(sqlite_url)] == ["a-1", "a-2", "a-3"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_dump_in_a_wide_encoding_is_refused_as_not_utf8(
    tmp_path: Path, sqlite_url: str, encoding: str
) -> None:
    # PowerShell's `>` writes UTF-16: split on b"\n" it would be one reject a line and the
    # last line "cut short"; the user has to hear that the encoding is wrong.
    dump = tmp_path / "wide.jsonl"
    dump.write_bytes("".join(f"{line}\n" for line in DUMP[:2]).encode(encoding))

    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 1, result.output
    assert f"Error: {dump} is not UTF-8 text: it looks like UTF-16 or UTF-32" in result.output
    assert "nothing was imported" in result.output
    assert stored(sqlite_url) == []
    assert not (tmp_path / "wide.jsonl.rejects.jsonl").exists()


def test_a_sqlite_database_given_as_a_dump_path_says_to_give_a_url(
    tmp_path: Path, sqlite_url: str
) -> None:
    database = tmp_path / "store.db"
    asyncio.run(_fill(f"sqlite:///{database}"))

    result = run_cli("import", str(database), "--url", sqlite_url)

    assert result.exit_code == 1, result.output
    assert (
        f"Error: {database} is a SQLite database, not a dump: to import from its events "
        f"table, give it as a URL (sqlite:///{database}); nothing was imported"
    ) in result.output
    assert run_cli("import", f"sqlite:///{database}", "--url", sqlite_url).exit_code == 0


def test_a_dump_compressed_twice_is_refused_as_such(tmp_path: Path, sqlite_url: str) -> None:
    dump = tmp_path / "twice.jsonl.gz"
    dump.write_bytes(gzip.compress(gzip.compress("".join(f"{x}\n" for x in DUMP[:2]).encode())))

    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 1, result.output
    assert f"Error: {dump} holds gzip data inside gzip: it was compressed twice" in result.output
    assert stored(sqlite_url) == []


async def _fill(url: str) -> None:
    async with open_store(url) as store:
        await store.store_event("s", "1", "e1", {"x": 1})


def test_a_seq_beyond_64_bits_is_a_rejected_line(tmp_path: Path, sqlite_url: str) -> None:
    # The staging table binds seq as a 64-bit integer: one such line used to end the
    # whole import in an OverflowError traceback, with nothing imported.
    too_big = (
        '{"session_id":"L","id":"a","data":1,"timestamp":10,"stream_id":"s",'
        '"seq":9223372036854775808}'
    )
    fine = '{"session_id":"L","id":"b","data":1,"timestamp":10,"stream_id":"s","seq":1}'
    dump = write_lines(tmp_path / "seq.jsonl", [too_big, fine])

    result = run_cli("import", str(dump), "--url", sqlite_url)

    assert result.exit_code == 3, result.output
    assert stored(sqlite_url) == [("L", "s", 1, "b", 1, 10)]
    rejects = (tmp_path / "seq.jsonl.rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r) for r in rejects] == [
        {
            "line": 1,
            "reason": "seq must be an int from 1 to 2**63-1, not 9223372036854775808",
            "source": too_big,
        }
    ]
