"""``eventstore export``: the current format, streamed; ``import`` reads it back identical."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tracemalloc
from pathlib import Path

import pytest

from eventstore import InvalidInputError, SchemaError, StoreEvent, open_store
from eventstore.transfer import export_events
from eventstore.transfer.exporter import CHUNK, FETCH_BYTES, FetchSize
from tests.conftest import PostgresServer
from tests.legacy.helpers import run_cli, run_process, stored

DATA = [
    {"nested": {"list": [1, 2.5, None, True]}, "z": 1, "a": 2},
    "nul \x00 inside",
    "lone surrogate \ud800",
    123456789012345678901234567890,
    "ü ✓ 🚀",
    None,
    [],
]


def fill(url: str) -> None:
    """Several sessions and streams; explicit timestamps so none depends on the clock."""

    async def run() -> None:
        async with open_store(url) as store:
            requests = [
                StoreEvent(f"s{s}", stream, f"{stream}-{i}", DATA[(s + i) % len(DATA)], 1_000 + i)
                for s in range(3)
                for stream in ("_default", "1", "_GET_stream")
                for i in range(s + 2)
            ]
            assert not [r for r in await store.apply(requests) if isinstance(r, Exception)]

    asyncio.run(run())


def test_export_writes_one_current_format_line_per_event(sql_url: str) -> None:
    fill(sql_url)

    result = run_process("export", "--url", sql_url)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [
        (r["session_id"], r["stream_id"], r["seq"], r["id"], r["data"], r["timestamp"])
        for r in lines
    ] == stored(sql_url)
    assert list(lines[0]) == ["session_id", "stream_id", "seq", "id", "data", "timestamp"]
    assert "exported 27 events" in result.stderr


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_export_then_import_into_an_empty_store_is_identical(
    tmp_path: Path, sql_url: str, postgres_server: PostgresServer, compress: bool
) -> None:
    fill(sql_url)
    dump = tmp_path / ("dump.jsonl.gz" if compress else "dump.jsonl")
    assert run_cli("export", "--url", sql_url, "--output", str(dump)).exit_code == 0
    if compress:
        assert gzip.decompress(dump.read_bytes()).count(b"\n") == 27

    for target in (f"sqlite:///{tmp_path}/copy.sqlite3", postgres_server.new_database()):
        result = run_cli("import", str(dump), "--url", target)
        assert result.exit_code == 0, result.output
        assert stored(target) == stored(sql_url)


def test_export_of_chosen_sessions(tmp_path: Path, sqlite_url: str) -> None:
    fill(sqlite_url)
    dump = tmp_path / "two.jsonl"

    result = run_cli(
        "export", "--url", sqlite_url, "--session", "s0", "--session", "s2", "-o", str(dump)
    )

    assert result.exit_code == 0
    sessions = [json.loads(line)["session_id"] for line in dump.read_text().splitlines()]
    assert sessions == ["s0"] * 6 + ["s2"] * 12


def test_export_refuses_what_it_cannot_read(tmp_path: Path, sqlite_url: str) -> None:
    missing = run_cli("export", "--url", sqlite_url)
    assert missing.exit_code == 1
    assert "no SQLite database at" in missing.output
    assert not list(tmp_path.iterdir())  # and none was created

    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    no_schema = run_cli("export", "--url", f"sqlite:///{empty}")
    assert no_schema.exit_code == 1
    assert "eventstore migrate" in no_schema.output  # the SchemaError's advice

    async def library() -> None:
        async with open_store("memory://") as store:
            with pytest.raises(InvalidInputError, match="in-memory"):
                await export_events(store, io.BytesIO())
        with pytest.raises(SchemaError):
            await open_store(f"sqlite:///{empty}", create_schema=False)

    asyncio.run(library())


def test_fetches_are_sized_by_bytes_too() -> None:
    size = FetchSize()
    assert size.rows == 1
    for _ in range(20):  # small rows: it grows, doubling, to CHUNK rows a fetch
        size.update([200] * size.rows)
    assert size.rows == CHUNK
    size.update([200] * 10 + [20 * 2**20])  # a 20 MB row: one row a fetch
    assert size.rows == 1
    size.update([5 * 2**20])
    assert size.rows == 1
    size.update([2**20])
    assert size.rows == 2  # at most doubling back, within FETCH_BYTES
    size.update([2**20] * 2)
    assert size.rows == 4 and size.rows * 2**20 <= FETCH_BYTES


def test_export_memory_is_bounded_by_the_size_of_the_rows(tmp_path: Path, sql_url: str) -> None:
    # 48 rows of 1 MiB. Fetched 5000 rows at a time, all of them were held at once, and
    # as lines, joined and encoded besides: about five times the data. A fetch now holds
    # about FETCH_BYTES; decoding one row's JSON costs a few times that row on top.
    rows, row_bytes = 48, 2**20

    async def fill() -> None:
        async with open_store(sql_url) as store:
            for i in range(rows):
                await store.store_event("s", "1", f"e{i}", f"{i:02d}" + "x" * row_bytes)

    asyncio.run(fill())

    async def export() -> tuple[int, int]:
        async with open_store(sql_url, create_schema=False) as store:
            with (tmp_path / "dump.jsonl").open("wb") as out:
                tracemalloc.start()
                try:
                    count = await export_events(store, out)
                    return count, tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()

    count, peak = asyncio.run(export())

    assert count == rows
    assert peak < FETCH_BYTES + 20 * row_bytes < rows * row_bytes, f"{peak / 2**20:.1f} MiB"
    lines = (tmp_path / "dump.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["data"][:2] for line in lines] == [f"{i:02d}" for i in range(rows)]
