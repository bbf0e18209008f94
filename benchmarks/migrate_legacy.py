"""Upgrading a legacy table while a server of the previous version keeps writing.

    python benchmarks/migrate_legacy.py                   # 2M rows, PostgreSQL and SQLite
    python benchmarks/migrate_legacy.py --rows 200000     # a quick look
    python benchmarks/migrate_legacy.py --no-sqlite

For each dialect: a legacy (pre-stream) ``events`` table of ``--rows`` rows in sessions
of 200 events, under no migration history, and a **legacy writer** -- the previous
version's ``INSERT`` (no stream, no seq) through the raw driver, one row every 5 ms, each
its own transaction. In one run:

* **raw driver, no migration**: the writer alone for ``--baseline`` seconds: its latency
  when nothing else happens;
* **ours**: ``eventstore migrate`` in a child process while the writer goes on. Reported:
  wall time, seconds per million rows, each revision's time, the writer's p50/p99/max
  latency, and its failed inserts;
* **naive, one transaction** (PostgreSQL): the same schema change done the obvious way
  with the raw driver -- ``ALTER TABLE``, one ``UPDATE`` numbering every row,
  non-concurrent unique indexes, ``SET NOT NULL`` -- in a single transaction, on a copy of
  the same table, with the writer going on. It shows what the lock-light revisions buy.

The target (issue 3): the writer never stalls more than 1 s on PostgreSQL. SQLite has
one writer at a time and upgrades in one transaction, so there the writer waits for the
whole upgrade; and since SQLite cannot give seq to an INSERT without one, the previous
version's INSERT fails once the upgrade is done (counted as failures). The machine is
shared: read medians and ratios.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report
from benchmarks.measure import percentile
from benchmarks.pgserver import driver_dsn, postgres_server

SESSION_SIZE = 200
INTERVAL_S = 0.005
TARGET_STALL_S = 1.0
_APPLIED = re.compile(r"^(?:applied|stamped) (\d{4}) .* in ([0-9.]+)s$", re.MULTILINE)

_LEGACY_TABLE = (
    "CREATE TABLE events (id {serial} PRIMARY KEY, session_id TEXT NOT NULL, "
    "event_id TEXT NOT NULL, data TEXT NOT NULL, timestamp BIGINT NOT NULL)"
)
_LEGACY_INDEX = "CREATE INDEX ix_events_session_id ON events (session_id)"
_PG_SEED = (
    "INSERT INTO events (session_id, event_id, data, timestamp) "
    "SELECT 's' || (g / $2), 'e' || g, '{\"n\":' || g || '}', 1000000 + g "
    "FROM generate_series(1, $1) AS g"
)
_SQLITE_SEED = (
    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) "
    "INSERT INTO events (session_id, event_id, data, timestamp) "
    "SELECT 's' || (n / ?), 'e' || n, '{\"n\":' || n || '}', 1000000 + n FROM g"
)
_PG_INSERT = "INSERT INTO events (session_id, event_id, data, timestamp) VALUES ($1, $2, $3, $4)"
_SQLITE_INSERT = "INSERT INTO events (session_id, event_id, data, timestamp) VALUES (?, ?, ?, ?)"

# The obvious upgrade, for comparison: correct, but one transaction that holds ACCESS
# EXCLUSIVE on events from its first statement to its last.
_PG_NAIVE = [
    "ALTER TABLE events ADD COLUMN stream_id TEXT NOT NULL DEFAULT '_default', "
    "ADD COLUMN seq BIGINT",
    "UPDATE events AS e SET seq = n.rank FROM (SELECT id, row_number() OVER "
    "(PARTITION BY session_id, stream_id ORDER BY timestamp, id) AS rank FROM events) AS n "
    "WHERE e.id = n.id",
    "CREATE TABLE event_streams (session_id TEXT, stream_id TEXT, last_seq BIGINT NOT NULL, "
    "first_seq BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, "
    "PRIMARY KEY (session_id, stream_id))",
    "INSERT INTO event_streams SELECT session_id, stream_id, max(seq), 1, min(timestamp), "
    "max(timestamp) FROM events GROUP BY session_id, stream_id",
    "CREATE UNIQUE INDEX uq_events_session_event ON events (session_id, event_id)",
    "CREATE UNIQUE INDEX uq_events_stream_seq ON events (session_id, stream_id, seq)",
    "ALTER TABLE events ALTER COLUMN seq SET NOT NULL",
    """CREATE FUNCTION assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO event_streams AS h VALUES (NEW.session_id, NEW.stream_id, 1, 1, 0, 0)
        ON CONFLICT (session_id, stream_id) DO UPDATE SET last_seq = h.last_seq + 1
        RETURNING h.last_seq INTO NEW.seq;
        RETURN NEW;
    END $$""",
    "CREATE TRIGGER assign_seq BEFORE INSERT ON events FOR EACH ROW WHEN (NEW.seq IS NULL) "
    "EXECUTE FUNCTION assign_seq()",
]


@dataclass
class Writer:
    """The previous version's writer: latencies (s) and failures, by phase."""

    phase: str = "baseline"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    stopped: bool = False

    def record(self, seconds: float, failed: bool) -> None:
        self.latencies.setdefault(self.phase, []).append(seconds)
        if failed:
            self.failures[self.phase] = self.failures.get(self.phase, 0) + 1


@dataclass
class Row:
    """One line of the report."""

    store: str
    what: str
    rows: int
    seconds: float | None
    latencies: list[float]
    failures: int
    revisions: str = ""

    def cells(self) -> list[object]:
        per_million = "" if self.seconds is None else f"{self.seconds / self.rows * 1e6:.1f}"
        wall = "" if self.seconds is None else f"{self.seconds:.1f}"
        latency = (
            [
                report.ms(percentile(self.latencies, 0.5) * 1000),
                report.ms(percentile(self.latencies, 0.99) * 1000),
                report.ms(max(self.latencies) * 1000),
            ]
            if self.latencies
            else ["", "", ""]
        )
        return [self.store, self.what, f"{self.rows:,}", wall, per_million, *latency, self.failures]


async def _pg_writer(dsn: str, writer: Writer) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        count = 0
        while not writer.stopped:
            started = time.perf_counter()
            failed = False
            try:
                await conn.execute(
                    _PG_INSERT, f"w{count % 7}", f"w{count}", "{}", time.time_ns() // 10**6
                )
            except asyncpg.PostgresError:
                failed = True
            writer.record(time.perf_counter() - started, failed)
            count += 1
            await asyncio.sleep(INTERVAL_S)
    finally:
        await conn.close()


def _sqlite_writer(path: Path, writer: Writer) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=600)
    try:
        count = 0
        while not writer.stopped:
            started = time.perf_counter()
            failed = False
            try:
                conn.execute(
                    _SQLITE_INSERT, (f"w{count % 7}", f"w{count}", "{}", time.time_ns() // 10**6)
                )
            except sqlite3.Error:
                failed = True
            writer.record(time.perf_counter() - started, failed)
            count += 1
            time.sleep(INTERVAL_S)
    finally:
        conn.close()


async def _migrate(url: str) -> tuple[float, str]:
    """``eventstore migrate`` in a child process: wall time and per-revision times."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from eventstore.cli import main; main()",
        "migrate",
        "--url",
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    seconds = time.perf_counter() - started
    text = output.decode()
    if process.returncode != 0:
        raise SystemExit(f"eventstore migrate failed:\n{text}")
    revisions = ", ".join(f"{rev} {float(s):.1f}s" for rev, s in _APPLIED.findall(text))
    return seconds, revisions


async def _postgres(server_url: str, rows: int, baseline_s: float) -> list[Row]:
    results = []
    for what in ("ours", "naive"):
        url = server_url.rsplit("/", 1)[0] + f"/legacy_{what}"
        admin = await asyncpg.connect(driver_dsn(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "legacy_{what}"')
            await admin.execute(f'CREATE DATABASE "legacy_{what}"')
        finally:
            await admin.close()
        dsn = driver_dsn(url)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(_LEGACY_TABLE.format(serial="BIGSERIAL"))
            await conn.execute(_LEGACY_INDEX)
            await conn.execute(_PG_SEED, rows, SESSION_SIZE)
            await conn.execute("VACUUM ANALYZE events")
        finally:
            await conn.close()
        writer = Writer()
        task = asyncio.create_task(_pg_writer(dsn, writer))
        try:
            await asyncio.sleep(baseline_s)
            writer.phase = what
            started = time.perf_counter()
            if what == "ours":
                seconds, revisions = await _migrate(url)
            else:
                revisions = ""
                naive = await asyncpg.connect(dsn)
                try:
                    async with naive.transaction():
                        for statement in _PG_NAIVE:
                            await naive.execute(statement)
                finally:
                    await naive.close()
                seconds = time.perf_counter() - started
            writer.phase = "after"
            await asyncio.sleep(0.5)
        finally:
            writer.stopped = True
            await task
        await _check_numbered(dsn)
        if what == "ours":
            results.append(
                Row(
                    "PostgreSQL",
                    "raw driver, no migration",
                    rows,
                    None,
                    writer.latencies["baseline"],
                    writer.failures.get("baseline", 0),
                )
            )
            label = "ours (eventstore migrate)"
        else:
            label = "naive: one transaction"
        results.append(
            Row(
                "PostgreSQL",
                label,
                rows,
                seconds,
                writer.latencies[what],
                writer.failures.get(what, 0) + writer.failures.get("after", 0),
                revisions,
            )
        )
    return results


async def _check_numbered(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        missing = await conn.fetchval("SELECT count(*) FROM events WHERE seq IS NULL")
        gaps = await conn.fetchval(
            "SELECT count(*) FROM (SELECT session_id, stream_id, max(seq) - count(*) AS gap "
            "FROM events GROUP BY session_id, stream_id) AS s WHERE gap <> 0"
        )
    finally:
        await conn.close()
    if missing or gaps:
        raise SystemExit(f"upgrade left {missing} rows without seq, {gaps} streams with gaps")


async def _sqlite(directory: Path, rows: int, baseline_s: float) -> list[Row]:
    path = directory / "legacy.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_LEGACY_TABLE.format(serial="INTEGER"))
        conn.execute(_LEGACY_INDEX)
        conn.execute("BEGIN")
        conn.execute(_SQLITE_SEED, (rows, SESSION_SIZE))
        conn.execute("COMMIT")
    writer = Writer()
    thread = threading.Thread(target=_sqlite_writer, args=(path, writer))
    thread.start()
    try:
        await asyncio.sleep(baseline_s)
        writer.phase = "ours"
        seconds, revisions = await _migrate(f"sqlite+aiosqlite:///{path}")
        writer.phase = "after"
        await asyncio.sleep(0.5)
    finally:
        writer.stopped = True
        await asyncio.to_thread(thread.join)
    return [
        Row(
            "SQLite",
            "raw driver, no migration",
            rows,
            None,
            writer.latencies["baseline"],
            writer.failures.get("baseline", 0),
        ),
        Row(
            "SQLite",
            "ours (eventstore migrate)",
            rows,
            seconds,
            writer.latencies["ours"],
            writer.failures.get("ours", 0) + writer.failures.get("after", 0),
            revisions,
        ),
    ]


async def _run(
    rows: int, sqlite_rows: int, baseline_s: float, postgres: bool, use_sqlite: bool
) -> None:
    results: list[Row] = []
    if postgres:
        with postgres_server() as server:
            report.note(f"PostgreSQL: {server.description}")
            results += await _postgres(server.url, rows, baseline_s)
    if use_sqlite:
        with tempfile.TemporaryDirectory(prefix="migrate-legacy-") as directory:
            results += await _sqlite(Path(directory), sqlite_rows, baseline_s)
    report.heading(
        f"Upgrading a legacy table while the previous version writes (a row every "
        f"{INTERVAL_S * 1000:.0f} ms)"
    )
    report.table(
        [
            "store",
            "run",
            "rows",
            "upgrade s",
            "s per 1M rows",
            "writer p50 ms",
            "writer p99 ms",
            "writer max ms",
            "failed inserts",
        ],
        [row.cells() for row in results],
    )
    for row in results:
        if row.revisions:
            report.note(f"{row.store} revisions: {row.revisions}")
    for row in results:
        if row.store == "PostgreSQL" and row.what.startswith("ours"):
            stall = max(row.latencies)
            verdict = "met" if stall <= TARGET_STALL_S and not row.failures else "MISSED"
            report.note(
                f"Target (PostgreSQL writer never stalls more than {TARGET_STALL_S:.0f} s, "
                f"no insert fails): {verdict} (max stall {stall * 1000:.0f} ms, "
                f"{row.failures} failed)"
            )


@click.command()
@click.option(
    "--rows",
    type=click.IntRange(1000),
    default=2_000_000,
    show_default=True,
    help="Rows of the legacy PostgreSQL table.",
)
@click.option("--sqlite-rows", type=click.IntRange(1000), default=2_000_000, show_default=True)
@click.option(
    "--baseline",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds the writer runs alone first.",
)
@click.option("--postgres/--no-postgres", default=True)
@click.option("--sqlite/--no-sqlite", "use_sqlite", default=True)
def main(rows: int, sqlite_rows: int, baseline: float, postgres: bool, use_sqlite: bool) -> None:
    """Upgrade legacy tables while a legacy writer inserts; print the report."""
    asyncio.run(_run(rows, sqlite_rows, baseline, postgres, use_sqlite))


if __name__ == "__main__":
    main()
