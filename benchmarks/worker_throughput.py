"""Group commit through the PersistenceWorker, next to the raw driver's batched insert.

``python benchmarks/worker_throughput.py`` prints, for SQLite and PostgreSQL (retention
trigger on, with a cap the streams exceed so it trims):

* **worker**: events/s of 64 concurrent producers, each storing one event at a time
  through one :class:`~eventstore.PersistenceWorker` and waiting until it is durable, and
  the p50/p99 time from the ``store_event`` call to durable;
* **worker, pipelined**: the same producers, each submitting its next single event while
  up to ``--in-flight`` (4) of its earlier ones are not yet durable, as an SSE stream
  does that sends an event at once and learns of its commit later (the MCP adapter's
  queued writes); latency is from the ``submit`` call to durable;
* **raw**: events/s of the same rows (same ids, JSON, seqs) written by the bare driver
  in its best batched form -- aiosqlite ``executemany`` in one ``BEGIN IMMEDIATE``
  transaction per 100 rows on a connection configured as the store's (WAL,
  ``synchronous=FULL``), asyncpg one multi-row ``INSERT`` per 1,000 rows;
* **raw at the producers' batch**: the same, in transactions of as many rows as there
  are producers. Producers that each wait for durability never have more events in
  flight than that, so no group commit can batch more: this is the ceiling for the
  workload, and ``worker / raw@batch`` says how close the worker comes to it.

Every round uses a fresh database for each contender, the two alternate (rotating who
goes first) and the report gives medians: the machine is shared and noisy. PostgreSQL
is a throwaway cluster (``fsync=off``, as in the test suite) or the server named by
``$EVENTSTORE_BENCH_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report
from benchmarks.measure import percentile
from benchmarks.pgserver import PostgresServer, driver_dsn, postgres_server
from eventstore import PersistenceWorker, StoreEvent, open_store
from eventstore.codec import encode_data

TARGET_RATIO = 0.7
TARGET_P99_MS = 50.0
_INSERT = "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp) VALUES "


@dataclass(frozen=True)
class Workload:
    producers: int
    events_each: int
    streams: int
    cap: int
    #: Events a pipelined producer may have submitted and not yet durable.
    in_flight: int

    def event(self, producer: int, i: int) -> tuple[str, str, Any]:
        """Stream, event id and data of a producer's i-th event."""
        return f"st{(producer * 7 + i) % self.streams}", f"p{producer}-{i}", {"p": producer, "i": i}

    def rows(self) -> list[tuple[str, str, int, str, str, int]]:
        """The events as the raw driver inserts them, with the seqs the store would give."""
        seqs: dict[str, int] = {}
        rows = []
        now = time.time_ns() // 1_000_000
        for i in range(self.events_each):
            for producer in range(self.producers):
                stream, event_id, data = self.event(producer, i)
                seqs[stream] = seqs.get(stream, 0) + 1
                rows.append(("s", stream, seqs[stream], event_id, encode_data(data), now))
        return rows

    @property
    def total(self) -> int:
        return self.producers * self.events_each


@dataclass(frozen=True)
class WorkerRun:
    rate: float
    latencies: list[float]
    mean_batch: float
    commit_p50: float


@dataclass
class Round:
    worker: WorkerRun
    pipelined: WorkerRun
    raw_rate: float
    raw_at_batch_rate: float


@dataclass
class Result:
    dialect: str
    rounds: list[Round] = field(default_factory=list)

    def median(self, pick: Callable[[Round], float]) -> float:
        return statistics.median(pick(r) for r in self.rounds)

    def latencies(self, pick: Callable[[Round], WorkerRun]) -> list[float]:
        return [s for r in self.rounds for s in pick(r).latencies]


async def _through_worker(url: str, load: Workload, in_flight: int = 1) -> WorkerRun:
    """Every producer's events through one worker, at most ``in_flight`` undurable each."""
    async with open_store(url, max_events_per_stream=load.cap) as store:
        async with PersistenceWorker(store) as worker:
            latencies: list[float] = []

            async def closed_loop(p: int) -> None:
                for i in range(load.events_each):
                    stream, event_id, data = load.event(p, i)
                    started = time.perf_counter()
                    await worker.store_event("s", stream, event_id, data)
                    latencies.append(time.perf_counter() - started)

            async def pipelined(p: int) -> None:
                pending: deque[asyncio.Future[Any]] = deque()
                for i in range(load.events_each):
                    stream, event_id, data = load.event(p, i)
                    started = time.perf_counter()
                    durable = await worker.submit(StoreEvent("s", stream, event_id, data))
                    durable.add_done_callback(
                        lambda _, t=started: latencies.append(time.perf_counter() - t)
                    )
                    pending.append(durable)
                    if len(pending) == in_flight:
                        await pending.popleft()
                for durable in pending:
                    await durable

            producer = closed_loop if in_flight == 1 else pipelined
            started = time.perf_counter()
            await asyncio.gather(*(producer(p) for p in range(load.producers)))
            elapsed = time.perf_counter() - started
        stats = worker.stats
        return WorkerRun(
            load.total / elapsed, latencies, stats.mean_batch_size, stats.commit_seconds_p50
        )


async def _worker_alone(load: Workload, rounds: int) -> tuple[float, float]:
    """Events/s and CPU microseconds per event of the worker over the in-memory store.

    What the worker itself costs: the store's work here is a few dict operations.
    """
    rates, cpu = [], []
    for _ in range(rounds):
        started = time.process_time()
        run = await _through_worker("memory://", load)
        cpu.append((time.process_time() - started) / load.total * 1e6)
        rates.append(run.rate)
    return statistics.median(rates), statistics.median(cpu)


async def _raw_sqlite(url: str, rows: list[Any], per: int) -> float:
    conn = await aiosqlite.connect(url.split(":///", 1)[1], isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "busy_timeout=10000", "synchronous=FULL"):
            await conn.execute(f"PRAGMA {pragma}")
        sql = _INSERT + "(?, ?, ?, ?, ?, ?)"
        started = time.perf_counter()
        for start in range(0, len(rows), per):
            await conn.execute("BEGIN IMMEDIATE")
            await conn.executemany(sql, rows[start : start + per])
            await conn.execute("COMMIT")
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def _raw_postgres(url: str, rows: list[Any], per: int) -> float:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), per):
            page = rows[start : start + per]
            values = ", ".join(
                "(" + ", ".join(f"${6 * n + k}" for k in range(1, 7)) + ")"
                for n in range(len(page))
            )
            async with conn.transaction():
                await conn.execute(
                    _INSERT + values,  # only $n placeholders are spliced in
                    *(value for row in page for value in row),
                )
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def _fresh_raw_database(url: str, cap: int) -> None:
    """The store's schema and cap, so the raw driver fires the same trigger."""
    async with open_store(url, max_events_per_stream=cap):
        pass


async def _measure(
    dialect: str,
    new_url: Callable[[], Awaitable[str]],
    raw: Callable[[str, list[Any], int], Awaitable[float]],
    raw_per: int,
    load: Workload,
    rounds: int,
) -> Result:
    rows = load.rows()
    result = Result(dialect)
    for number in range(rounds):
        worker_url, pipelined_url, raw_url, raw_at_batch_url = [await new_url() for _ in range(4)]
        await _fresh_raw_database(raw_url, load.cap)
        await _fresh_raw_database(raw_at_batch_url, load.cap)

        turns: dict[str, Callable[[], Awaitable[Any]]] = {
            "worker": partial(_through_worker, worker_url, load),
            "pipelined": partial(_through_worker, pipelined_url, load, load.in_flight),
            "raw": partial(raw, raw_url, rows, raw_per),
            "raw at batch": partial(raw, raw_at_batch_url, rows, load.producers),
        }
        names = list(turns)
        shift = number % len(names)
        outcome = {name: await turns[name]() for name in names[shift:] + names[:shift]}
        result.rounds.append(
            Round(outcome["worker"], outcome["pipelined"], outcome["raw"], outcome["raw at batch"])
        )
        report.note(
            f"{dialect} round {number + 1}: worker {report.rate(outcome['worker'].rate)}/s, "
            f"pipelined {report.rate(outcome['pipelined'].rate)}/s, "
            f"raw {report.rate(outcome['raw'])}/s, "
            f"raw at {load.producers} rows/txn {report.rate(outcome['raw at batch'])}/s"
        )
    return result


def _summarise(results: list[Result], load: Workload, alone: tuple[float, float]) -> None:
    report.heading(
        f"PersistenceWorker: {load.producers} producers x {load.events_each} single-event "
        f"writes over {load.streams} streams, retention cap {load.cap}"
    )
    modes: list[tuple[str, Callable[[Round], WorkerRun]]] = [
        ("1 (waits for each)", lambda r: r.worker),
        (f"{load.in_flight} (pipelined)", lambda r: r.pipelined),
    ]
    rows = []
    verdicts = []
    for result in results:
        raw = result.median(lambda r: r.raw_rate)
        at_batch = result.median(lambda r: r.raw_at_batch_rate)
        for mode, pick in modes:
            ratio = statistics.median(pick(r).rate / r.raw_rate for r in result.rounds)
            ratio_at_batch = statistics.median(
                pick(r).rate / r.raw_at_batch_rate for r in result.rounds
            )
            latencies = result.latencies(pick)
            p50 = percentile(latencies, 0.5) * 1000
            p99 = percentile(latencies, 0.99) * 1000
            rows.append(
                [
                    result.dialect,
                    mode,
                    report.rate(result.median(lambda r, pick=pick: pick(r).rate)),
                    report.rate(raw),
                    report.ratio(ratio),
                    report.rate(at_batch),
                    report.ratio(ratio_at_batch),
                    report.ms(p50),
                    report.ms(p99),
                    f"{result.median(lambda r, pick=pick: pick(r).mean_batch):.0f}",
                    report.ms(result.median(lambda r, pick=pick: pick(r).commit_p50) * 1000),
                ]
            )
            verdicts.append(
                f"{result.dialect}, {mode} in flight: >= {TARGET_RATIO}x raw: "
                f"{report.verdict(ratio >= TARGET_RATIO)}; "
                f"p99 <= {TARGET_P99_MS:.0f} ms: {report.verdict(p99 <= TARGET_P99_MS)}"
            )
    report.table(
        [
            "backend",
            "in flight per producer",
            "worker events/s",
            "raw events/s, best batch",
            "worker / raw",
            f"raw events/s, {load.producers} rows/txn",
            "worker / raw@batch",
            "durable p50 ms",
            "durable p99 ms",
            "mean batch",
            "transaction p50 ms",
        ],
        rows,
    )
    report.note(
        f"The worker alone, over InMemoryEventStore: {report.rate(alone[0])} events/s, "
        f"{alone[1]:.0f} us of CPU per event (whole process, store included)."
    )
    report.note(
        "Best batch: SQLite executemany, 100 rows per transaction; PostgreSQL one multi-row "
        "INSERT per 1,000 rows."
    )
    for line in verdicts:
        report.note(line)


async def _main(postgres: PostgresServer, workdir: Path, load: Workload, rounds: int) -> None:
    command = " ".join(["python benchmarks/worker_throughput.py", *sys.argv[1:]])
    report.note(f"`{command}`")
    report.note(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; PostgreSQL: "
        f"{postgres.description}. Medians of {rounds} alternating rounds."
    )
    files = iter(range(1_000_000))

    async def sqlite_file() -> str:
        return f"sqlite+aiosqlite:///{workdir}/db{next(files)}.sqlite3"

    async def postgres_database() -> str:
        # new_database runs its own event loop: keep it off this one.
        return await asyncio.to_thread(postgres.new_database, "worker")

    results = [
        await _measure("SQLite", sqlite_file, _raw_sqlite, 100, load, rounds),
        await _measure("PostgreSQL", postgres_database, _raw_postgres, 1000, load, rounds),
    ]
    _summarise(results, load, await _worker_alone(load, rounds))


@click.command()
@click.option("--producers", type=click.IntRange(1), default=64, show_default=True)
@click.option("--events-each", type=click.IntRange(1), default=200, show_default=True)
@click.option("--streams", type=click.IntRange(1), default=200, show_default=True)
@click.option(
    "--cap",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="max_events_per_stream (the trigger trims once a stream passes it).",
)
@click.option(
    "--in-flight",
    type=click.IntRange(2),
    default=4,
    show_default=True,
    help="Events a pipelined producer submits before waiting for its oldest to be durable.",
)
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True)
def main(
    producers: int, events_each: int, streams: int, cap: int, in_flight: int, rounds: int
) -> None:
    """Measure the worker next to the raw driver and print a Markdown table."""
    load = Workload(producers, events_each, streams, cap, in_flight)
    with postgres_server() as postgres, tempfile.TemporaryDirectory(prefix="es-worker-") as tmp:
        asyncio.run(_main(postgres, Path(tmp), load, rounds))


if __name__ == "__main__":
    main()
