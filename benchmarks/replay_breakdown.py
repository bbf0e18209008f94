"""Where a replay's time goes: each step of ``get_events_after``, timed on its own.

``python benchmarks/replay_breakdown.py`` (``taskset -c 0`` in front pins it to one core, where
the steps add up) stores 200 events in one stream (SQLite file,
then a throwaway PostgreSQL), and times, in alternating rounds of 50 calls (medians of
30 rounds, microseconds per call):

* **raw fetch**: the replay statement on one open driver connection (the baseline of
  ``benchmarks/run.py``);
* **pooled fetch**: the same statement with the pool's checkout and checkin around it,
  as the store runs it;
* **checkout + checkin**: the pool alone;
* **decode**: turning the 101 rows' JSON into values (the 20-digit scan and orjson);
* **build events**: the 100 ``StoredEvent`` objects from already decoded rows;
* **store**: ``get_events_after`` itself, everything included.

The steps are not additive to the last microsecond (the machine is noisy and the calls
interleave with the driver's thread or server), but they show what the store adds to
the raw fetch, and what any change to the replay path has to beat.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.util import greenlet_spawn

from benchmarks import report, workload
from benchmarks.pgserver import driver_dsn, postgres_server
from benchmarks.raw import RawPostgres, RawSqlite
from eventstore import SqlEventStore, StoreEvent, open_store
from eventstore.codec import fast_loads, orjson_exact
from eventstore.events import make_event
from eventstore.sql import postgresql, sqlite

ROUNDS = 30
CALLS = 50
STEPS = ["raw fetch", "pooled fetch", "checkout + checkin", "decode", "build events", "store"]


async def _breakdown(url: str, raw: RawSqlite | RawPostgres, dialect: ModuleType) -> list[str]:
    store = await open_store(url)
    assert isinstance(store, SqlEventStore)
    try:
        await store.apply(
            [StoreEvent("s", "a", f"e{i}", workload.notification(i)) for i in range(200)]
        )
        params = dialect.replay_params("s", "a", "e99")

        async def pooled_fetch() -> list[Any]:
            pooled = await store.engine.raw_connection()
            try:
                rows: list[Any] = await dialect.fetch(pooled, dialect.REPLAY_AFTER, params)
                return rows
            finally:
                await greenlet_spawn(pooled.close)

        rows = (await pooled_fetch())[1:]
        decoded = [fast_loads(row[2]) for row in rows]

        async def raw_fetch() -> None:
            await raw.replay("s", "a", "e99")

        async def pool_only() -> None:
            pooled = await store.engine.raw_connection()
            await greenlet_spawn(pooled.close)

        async def decode() -> None:
            orjson_exact([row[2] for row in rows])
            [fast_loads(row[2]) for row in rows]

        async def build() -> None:
            [
                make_event(row[0], "a", data, row[3], "s", row[1])
                for row, data in zip(rows, decoded, strict=True)
            ]

        async def whole() -> None:
            await store.get_events_after("s", "a", "e99")

        steps: dict[str, Callable[[], Awaitable[Any]]] = dict(
            zip(STEPS, [raw_fetch, pooled_fetch, pool_only, decode, build, whole], strict=True)
        )
        samples: dict[str, list[float]] = {name: [] for name in steps}
        for number in range(ROUNDS):
            names = STEPS[number % len(STEPS) :] + STEPS[: number % len(STEPS)]
            for name in names:
                started = time.perf_counter()
                for _ in range(CALLS):
                    await steps[name]()
                samples[name].append((time.perf_counter() - started) / CALLS * 1e6)
        return [f"{statistics.median(samples[name]):.0f}" for name in STEPS]
    finally:
        await raw.close()
        await store.close()


async def _main() -> None:
    report.note("`python benchmarks/replay_breakdown.py`")
    results = []
    with tempfile.TemporaryDirectory(prefix="es-breakdown-") as tmp:
        path = f"{tmp}/replay.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        await (await open_store(url)).close()
        results.append(["SQLite", *await _breakdown(url, await RawSqlite.open(path), sqlite)])
    with postgres_server() as postgres:
        url = await asyncio.to_thread(postgres.new_database, "breakdown")
        await (await open_store(url)).close()
        raw = await RawPostgres.open(driver_dsn(url))
        results.append(["PostgreSQL", *await _breakdown(url, raw, postgresql)])
    report.heading("Replay of 100 events, step by step (µs per call, medians)")
    report.table(["store", *STEPS], results)


@click.command(help=__doc__.split("\n\n")[0])
def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
