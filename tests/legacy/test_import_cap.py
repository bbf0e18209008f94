"""The target's per-stream cap: an import keeps the newest events and says so."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from eventstore import open_store
from tests.legacy.helpers import DumpLines, run_cli, stored


def capped_store(url: str, cap: int) -> None:
    async def configure() -> None:
        async with open_store(url, max_events_per_stream=cap):
            pass

    asyncio.run(configure())


def test_ten_thousand_events_into_a_store_capped_at_a_thousand(
    tmp_path: Path, sql_url: str
) -> None:
    capped_store(sql_url, 1000)
    dump = DumpLines(tmp_path / "big.jsonl")
    # Newest last by timestamp, but written newest-first: the cap must follow time order.
    for i in reversed(range(10_000)):
        dump.add("busy", f"e{i}", {"i": i}, 1_000_000 + i)
    for i in range(10):
        dump.add("quiet", f"q{i}", i, 5 + i)

    result = run_cli("import", str(dump.write()), "--url", sql_url)

    assert result.exit_code == 0, result.output
    rows = stored(sql_url)
    busy = [row for row in rows if row[0] == "busy"]
    assert [(row[2], row[3], row[5]) for row in busy] == [
        (seq, f"e{i}", 1_000_000 + i) for seq, i in enumerate(range(9000, 10_000), start=1)
    ]
    assert [row[3] for row in rows if row[0] == "quiet"] == [f"q{i}" for i in range(10)]
    assert "keeps at most 1,000 events per stream" in result.output
    assert "(9,000 older events skipped)" in result.output
    assert "session 'busy' stream '_default': 10,000 events, keeps the newest 1,000" in (
        result.output
    )
    assert "imported: 1,010 new events in 2 sessions" in result.output

    # Nothing the first run stored was trimmed, so a re-run recognises all of it.
    again = run_cli("import", str(dump.path), "--url", sql_url)
    assert again.exit_code == 0
    assert stored(sql_url) == rows


def test_a_dry_run_reports_the_cap(tmp_path: Path, sqlite_url: str) -> None:
    capped_store(sqlite_url, 3)
    dump = DumpLines(tmp_path / "d.jsonl")
    for i in range(5):
        dump.add("s", f"e{i}", i, i)

    result = run_cli("import", str(dump.write()), "--url", sqlite_url, "--dry-run")

    assert result.exit_code == 0
    assert "session 's' stream '_default': 5 events, keeps the newest 3" in result.output
    assert "would import: 3 new events" in result.output
    assert stored(sqlite_url) == []


def test_the_exit_codes_say_what_a_cap_does(tmp_path: Path, sqlite_url: str) -> None:
    # Events beyond the target's cap are skipped by design and listed: the import exits
    # 0, and the documented meaning of 0 has to cover them.
    capped_store(sqlite_url, 2)
    dump = DumpLines(tmp_path / "d.jsonl")
    for i in range(4):
        dump.add("s", f"e{i}", i, i)

    result = run_cli("import", str(dump.write()), "--url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert "(2 older events skipped)" in result.output
    migration = (Path(__file__).resolve().parents[2] / "MIGRATION.md").read_text()
    (zero,) = [line for line in migration.splitlines() if line.startswith("| 0 |")]
    assert "cap" in zero and "every line was imported" not in zero, zero
    help_text = run_cli("import", "--help").output
    assert re.search(
        r"^\s+0\s+done, nothing rejected \(older events over the target's cap", help_text, re.M
    ), help_text


def _fill(url: str, session_id: str, stream_id: str, event_ids: list[str]) -> None:
    async def fill() -> None:
        async with open_store(url) as store:
            for event_id in event_ids:
                await store.store_event(session_id, stream_id, event_id, event_id)

    asyncio.run(fill())


def test_events_the_target_held_that_the_cap_trims_are_reported(
    tmp_path: Path, sql_url: str
) -> None:
    capped_store(sql_url, 3)
    _fill(sql_url, "q", "s", ["old1", "old2"])
    _fill(sql_url, "q", "other", ["keep1"])
    dump = tmp_path / "d.jsonl"
    records = [
        {"session_id": "q", "stream_id": "s", "seq": i, "id": f"n{i}", "data": i, "timestamp": i}
        for i in range(1, 6)
    ]
    records.append(
        {"session_id": "q", "stream_id": "other", "seq": 1, "id": "o1", "data": 0, "timestamp": 1}
    )
    lines = [json.dumps(record) for record in records]
    dump.write_text("".join(line + "\n" for line in lines))

    dry = run_cli("import", str(dump), "--url", sql_url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "cap: would trim 2 events the target held already (the oldest of 1 stream(s))" in dry.output
    )
    assert [row[3] for row in stored(sql_url)] == ["keep1", "old1", "old2"]

    result = run_cli("import", str(dump), "--url", sql_url)

    assert result.exit_code == 0, result.output
    assert "cap: trimmed 2 events the target held already (the oldest of 1 stream(s))" in (
        result.output
    )
    assert "keeps the newest 3" in result.output
    assert [(row[1], row[3]) for row in stored(sql_url)] == [
        ("other", "keep1"),
        ("other", "o1"),
        ("s", "n3"),
        ("s", "n4"),
        ("s", "n5"),
    ]
    again = run_cli("import", str(dump), "--url", sql_url)
    assert again.exit_code == 0, again.output
    assert "trim" not in again.output


def test_a_streams_own_cap_counts_for_what_it_trims(tmp_path: Path, sqlite_url: str) -> None:
    _fill(sqlite_url, "q", "_default", ["old1", "old2", "old3"])

    async def own_cap() -> None:
        async with open_store(sqlite_url) as store:
            await store.set_max_events_per_stream(4, session_id="q", stream_id="_default")

    asyncio.run(own_cap())
    dump = DumpLines(tmp_path / "d.jsonl")
    for i in range(2):
        dump.add("q", f"n{i}", i, 100 + i)

    result = run_cli("import", str(dump.write()), "--url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert "cap: trimmed 1 events the target held already" in result.output
    assert [row[3] for row in stored(sqlite_url)] == ["old2", "old3", "n0", "n1"]
