"""What one PostgreSQL transaction of N appends costs, next to the raw driver's insert.

``python benchmarks/batch_sizes.py`` times, on a throwaway PostgreSQL (or
``$EVENTSTORE_BENCH_POSTGRES_URL``), retention trigger on with a cap of 32, for batches
of 1 to 1,000 events over 200 streams:

* **store**: ``BEGIN``, the store's append statement, ``COMMIT`` on one asyncpg
  connection -- exactly what :meth:`SqlEventStore.apply` sends for a batch of appends,
  without its Python around it (so this is the database's share of a worker batch);
* **raw**: the same rows, seqs given, as one multi-row ``INSERT`` in a transaction (the
  baseline of ``benchmarks/worker_throughput.py``), which allocates no seqs and keeps
  no head rows.

Each size gets a fresh database; medians of the last three quarters of the batches
(the first ones compile plans). The fixed cost of a transaction is why the worker's
throughput depends on how large its batches get: a closed loop of 64 producers never
lets it batch more than 64.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report
from benchmarks.pgserver import PostgresServer, driver_dsn, postgres_server
from eventstore import open_store
from eventstore.sql import postgresql

SIZES = (1, 16, 64, 256, 1000)
STREAMS = 200
EVENTS = 12_800
_INSERT = "INSERT INTO events (session_id, stream_id, seq, event_id, data, timestamp) VALUES "


def _store_params(batch: int, size: int, seqs: dict[str, int]) -> list[Any]:
    counts: dict[str, int] = {}
    streams = [f"st{(batch * size + i) % STREAMS}" for i in range(size)]
    for stream in streams:
        counts[stream] = counts.get(stream, 0) + 1
    left = dict(counts)
    rows = []
    for i, stream in enumerate(streams):
        left[stream] -= 1
        rows.append(("s", stream, f"e{batch}-{i}", f'{{"i":{i}}}', 1, left[stream]))
        seqs[stream] = seqs.get(stream, 0) + 1
    heads = sorted(counts.items())
    columns = [list(column) for column in zip(*rows, strict=True)]
    return [1, ["s"] * len(heads), [s for s, _ in heads], [n for _, n in heads], *columns]


def _raw_params(batch: int, size: int, seqs: dict[str, int]) -> tuple[str, list[Any]]:
    values, params = [], []
    for i in range(size):
        stream = f"st{(batch * size + i) % STREAMS}"
        seqs[stream] = seqs.get(stream, 0) + 1
        values.append("(" + ", ".join(f"${6 * i + k}" for k in range(1, 7)) + ")")
        params += ["s", stream, seqs[stream], f"e{batch}-{i}", f'{{"i":{i}}}', 1]
    return _INSERT + ", ".join(values), params  # only $n placeholders are spliced in


async def _time(url: str, size: int, raw: bool) -> float:
    async with open_store(url, max_events_per_stream=32):
        pass
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        append = await conn.prepare(postgresql.APPEND)
        seqs: dict[str, int] = {}
        seconds = []
        for batch in range(max(40, EVENTS // size)):
            if raw:
                sql, params = _raw_params(batch, size, seqs)
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute(sql, *params)
            else:
                params = _store_params(batch, size, seqs)
                started = time.perf_counter()
                await conn.execute("BEGIN")
                await append.fetch(*params)
                await conn.execute("COMMIT")
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds[len(seconds) // 4 :])
    finally:
        await conn.close()


async def _main(postgres: PostgresServer) -> None:
    report.note(f"`python benchmarks/batch_sizes.py`; PostgreSQL: {postgres.description}")
    rows = []
    for size in SIZES:
        new = [await asyncio.to_thread(postgres.new_database, "batch") for _ in range(2)]
        store = await _time(new[0], size, raw=False)
        raw = await _time(new[1], size, raw=True)
        rows.append(
            [
                size,
                report.ms(store * 1000),
                report.ms(raw * 1000),
                f"{store / size * 1e6:.1f}",
                f"{raw / size * 1e6:.1f}",
                report.ratio(store / raw),
            ]
        )
    report.heading("One transaction of N appends on PostgreSQL (medians)")
    report.table(["N", "store ms", "raw ms", "store µs/event", "raw µs/event", "store / raw"], rows)


@click.command(help=__doc__.split("\n\n")[0])
def main() -> None:
    with postgres_server() as postgres:
        asyncio.run(_main(postgres))


if __name__ == "__main__":
    main()
