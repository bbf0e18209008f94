"""``eventstore import`` of a large legacy dump: rate and peak memory, next to the raw driver.

    python benchmarks/import_dump.py                      # 100k and 1M events, SQLite
    python benchmarks/import_dump.py --postgres           # and PostgreSQL
    python benchmarks/import_dump.py --sizes 100000 --rounds 1

For each size it writes a legacy JSON-lines dump (sessions of 1,000 events each, every
session's lines interleaved with the others' and in reverse timestamp order, so the
import really has to sort), then, in turns, ``--rounds`` times:

* **ours**: the real command, ``eventstore import DUMP --url TARGET``, in a child process
  into an empty store. Reported: end-to-end events/s, the write phase's events/s (from
  the command's own progress line), and the child's peak RSS (``wait4``).
* **raw**: the same events, already sorted and numbered, inserted into an empty store of
  the same schema with the raw driver (aiosqlite / asyncpg) in transactions of the same
  batch size: heads upserted with ``executemany``, events inserted with
  ``executemany``. No parsing, no checks, no sorting: the ceiling for the write phase.

Flat memory shows as the same peak RSS at 100k and at 1M events. Numbers are medians of
the rounds; the machine is shared, so read ratios, not absolute rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import asyncpg
import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report
from benchmarks.pgserver import driver_dsn, postgres_server
from eventstore import open_store

SESSION_EVENTS = 1000
BATCH = 1000
_EVENTSTORE = str(Path(sys.executable).parent / "eventstore")


def _data(session: int, index: int) -> str:
    """A typical MCP progress notification, as JSON text."""
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": f"tok-{session}", "progress": index, "total": 1000},
        },
        separators=(",", ":"),
    )


def _timestamp(index: int) -> int:
    # Later events of a session are written first: the import must reverse each session.
    return 1_700_000_000_000 + (SESSION_EVENTS - index) * 10


def write_dump(path: Path, total: int) -> None:
    """A legacy dump: sessions interleaved line by line, each newest-first."""
    sessions = max(total // SESSION_EVENTS, 1)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(total):
            session, index = i % sessions, i // sessions
            out.write(
                f'{{"session_id":"session-{session:06d}","id":"evt-{index:06d}",'
                f'"data":{_data(session, index)},"timestamp":{_timestamp(index)}}}\n'
            )


def sorted_rows(total: int) -> Iterator[tuple[str, str, int, str, str, int]]:
    """The rows the import ends with, in its write order, generated (not held in memory)."""
    sessions = max(total // SESSION_EVENTS, 1)
    for session in range(sessions):
        indexes = reversed(range(session, total, sessions))
        for seq, i in enumerate(indexes, start=1):
            index = i // sessions
            yield (
                f"session-{session:06d}",
                "_default",
                seq,
                f"evt-{index:06d}",
                _data(session, index),
                _timestamp(index),
            )


@dataclass(frozen=True)
class OursRun:
    seconds: float
    write_rate: float
    peak_rss_mib: float


def run_ours(dump: Path, url: str, total: int) -> OursRun:
    started = time.perf_counter()
    process = subprocess.Popen(
        [_EVENTSTORE, "import", str(dump), "--url", url, "--log-every", "3600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"import failed ({process.returncode}): {stderr}")
    match = re.search(rf"importing: {total:,}/{total:,} events, ([\d,]+) events/s", stderr)
    if match is None:
        raise RuntimeError(f"no final progress line in: {stderr}")
    return OursRun(elapsed, float(match.group(1).replace(",", "")), usage.ru_maxrss / 1024)


def baseline_rss_mib() -> float:
    """Peak RSS of the CLI doing nothing but start: interpreter plus imports."""
    process = subprocess.Popen([_EVENTSTORE, "--help"], stdout=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss / 1024


_HEADS_SQLITE = (
    "INSERT INTO event_streams (session_id, stream_id, last_seq, first_seq, created_at,"
    " updated_at) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (session_id, stream_id) DO UPDATE"
    " SET last_seq = event_streams.last_seq + excluded.last_seq"
)
_EVENTS_SQLITE = (
    "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _batches(total: int) -> Iterator[list[tuple[str, str, int, str, str, int]]]:
    batch: list[tuple[str, str, int, str, str, int]] = []
    for row in sorted_rows(total):
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _heads(batch: list[tuple[str, str, int, str, str, int]]) -> list[tuple[str, str, int]]:
    counts: dict[tuple[str, str], int] = {}
    for session_id, stream_id, *_ in batch:
        counts[(session_id, stream_id)] = counts.get((session_id, stream_id), 0) + 1
    return [(s, st, n) for (s, st), n in sorted(counts.items())]


async def raw_sqlite(path: str, total: int) -> float:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
            await db.execute(f"PRAGMA {pragma}")
        started = time.perf_counter()
        now = int(time.time() * 1000)
        for batch in _batches(total):
            await db.execute("BEGIN IMMEDIATE")
            await db.executemany(
                _HEADS_SQLITE, [(s, st, n, now, now) for s, st, n in _heads(batch)]
            )
            await db.executemany(_EVENTS_SQLITE, batch)
            await db.execute("COMMIT")
        return total / (time.perf_counter() - started)
    finally:
        await db.close()


async def raw_postgres(url: str, total: int) -> float:
    # unnest(): one statement per batch, asyncpg's fastest plain INSERT of many rows.
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        started = time.perf_counter()
        now = int(time.time() * 1000)
        for batch in _batches(total):
            heads = _heads(batch)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO event_streams (session_id, stream_id, last_seq, first_seq,"
                    " created_at, updated_at)"
                    " SELECT s, st, n, 1, $4, $4 FROM unnest($1::text[], $2::text[], $3::bigint[])"
                    " AS h(s, st, n)"
                    " ON CONFLICT (session_id, stream_id) DO UPDATE"
                    " SET last_seq = event_streams.last_seq + excluded.last_seq",
                    [h[0] for h in heads],
                    [h[1] for h in heads],
                    [h[2] for h in heads],
                    now,
                )
                await conn.execute(
                    "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp)"
                    " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],"
                    " $5::text[], $6::bigint[])",
                    *(list(column) for column in zip(*batch, strict=True)),
                )
        return total / (time.perf_counter() - started)
    finally:
        await conn.close()


async def create_store(url: str) -> None:
    async with open_store(url):
        pass


@dataclass(frozen=True)
class Row:
    backend: str
    events: int
    end_to_end: float
    write: float
    raw: float
    rss: float


def measure(
    backend: str,
    total: int,
    rounds: int,
    dump: Path,
    workdir: Path,
    new_pg: Callable[[], str] | None,
) -> Row:
    ours: list[OursRun] = []
    raw: list[float] = []
    for turn in range(rounds):
        for who in ("ours", "raw"):
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{workdir}/{who}-{total}-{turn}.sqlite3"
            else:
                assert new_pg is not None
                url = new_pg()
            if who == "ours":
                ours.append(run_ours(dump, url, total))
            else:
                asyncio.run(create_store(url))
                if backend == "sqlite":
                    raw.append(asyncio.run(raw_sqlite(url.split("///", 1)[1], total)))
                else:
                    raw.append(asyncio.run(raw_postgres(url, total)))
            if backend == "sqlite":
                for leftover in workdir.glob(f"{who}-{total}-{turn}.sqlite3*"):
                    leftover.unlink()
    return Row(
        backend,
        total,
        statistics.median(total / run.seconds for run in ours),
        statistics.median(run.write_rate for run in ours),
        statistics.median(raw),
        max(run.peak_rss_mib for run in ours),
    )


@click.command()
@click.option("--sizes", default="100000,1000000", show_default=True, help="Dump sizes.")
@click.option("--rounds", default=3, show_default=True, help="Turns per measurement.")
@click.option("--postgres", is_flag=True, help="Also import into PostgreSQL.")
def main(sizes: str, rounds: int, postgres: bool) -> None:
    """Measure `eventstore import` against raw batched inserts."""
    totals = [int(size) for size in sizes.split(",")]
    rows: list[Row] = []
    server = postgres_server() if postgres else contextlib.nullcontext(None)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp, server as pg:
        workdir = Path(tmp)
        for total in totals:
            dump = workdir / f"dump-{total}.jsonl"
            write_dump(dump, total)
            size_mib = dump.stat().st_size / 2**20
            report.note(f"dump of {total:,} events: {size_mib:,.0f} MiB")
            for backend in ("sqlite", "postgres") if postgres else ("sqlite",):
                new_pg = pg.new_database if pg is not None else None
                rows.append(measure(backend, total, rounds, dump, workdir, new_pg))
            dump.unlink()
        if pg is not None:
            report.note(f"PostgreSQL: {pg.description}")
    report.heading(
        f"eventstore import of a legacy dump (medians of {rounds} rounds, batch {BATCH})"
    )
    report.table(
        [
            "store",
            "events",
            "ours end-to-end (ev/s)",
            "ours write phase (ev/s)",
            "raw batched insert (ev/s)",
            "write phase / raw",
            "peak RSS (MiB)",
        ],
        [
            (
                r.backend,
                f"{r.events:,}",
                report.rate(r.end_to_end),
                report.rate(r.write),
                report.rate(r.raw),
                report.ratio(r.write / r.raw),
                f"{r.rss:,.0f}",
            )
            for r in rows
        ],
    )
    report.note(
        f"peak RSS of `eventstore --help` (interpreter and imports): {baseline_rss_mib():,.0f} MiB"
    )


if __name__ == "__main__":
    main()
