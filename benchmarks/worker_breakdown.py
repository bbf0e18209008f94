"""Where a worker batch's time goes: the steps of a commit cycle, timed in a real run.

``python benchmarks/worker_breakdown.py`` runs the pipelined load of
``benchmarks/worker_throughput.py`` (64 producers, 200 streams, cap 32, ``--in-flight``
events each not yet durable) through a :class:`~eventstore.PersistenceWorker` on a
SQLite file and on a throwaway PostgreSQL, with the store's steps wrapped in timers, and
prints microseconds per event:

* **wall**: the whole run; **cpu**: the process's CPU time (both threads on SQLite);
* **commit**: the worker's ``_commit`` of its batches, of which **apply** is
  ``SqlEventStore.apply``, of which **validate** checks and encodes the requests and
  **append transaction** is the driver's transaction (statements, round trips and the
  event loop's delay in coming back to it);
* the rest of **wall** is the worker waiting for the next batch while producers run.

``cpu`` well under ``wall`` means the process waits on the database; the timers add a
little of their own.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report
from benchmarks.pgserver import postgres_server
from benchmarks.worker_throughput import Workload, _through_worker
from eventstore.sql import postgresql, sqlite
from eventstore.sql.store import SqlEventStore
from eventstore.worker.persistence import PersistenceWorker

#: (owner, attribute, column): what is timed.
_STEPS: list[tuple[Any, str, str]] = [
    (PersistenceWorker, "_commit", "commit"),
    (SqlEventStore, "apply", "apply"),
    (SqlEventStore, "_validate", "validate"),
    (postgresql, "append_in_transaction", "append transaction"),
    (sqlite, "append_in_transaction", "append transaction"),
]
_COLUMNS = ["commit", "apply", "validate", "append transaction"]


def _timed(function: Any, column: str, totals: dict[str, float]) -> Any:
    if asyncio.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                totals[column] += time.perf_counter() - started

        return timed_async

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[column] += time.perf_counter() - started

    return timed


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(url: str, load: Workload, totals: dict[str, float]) -> list[object]:
    for column in _COLUMNS:
        totals[column] = 0.0
    cpu, started = _cpu_seconds(), time.perf_counter()
    run = asyncio.run(_through_worker(url, load, load.in_flight))
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    per_event = 1e6 / load.total
    return [
        report.rate(run.rate),
        f"{run.mean_batch:.0f}",
        f"{wall * per_event:.1f}",
        f"{cpu * per_event:.1f}",
        *(f"{totals[column] * per_event:.1f}" for column in _COLUMNS),
    ]


@click.command()
@click.option("--in-flight", type=click.IntRange(2), default=16, show_default=True)
@click.option("--events-each", type=click.IntRange(1), default=400, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True)
def main(in_flight: int, events_each: int, rounds: int) -> None:
    """Time a pipelined worker run's steps and print a Markdown table."""
    load = Workload(64, events_each, 200, 32, in_flight)
    totals: dict[str, float] = {}
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in _STEPS]
    for (owner, name, function), (_, _, column) in zip(originals, _STEPS, strict=True):
        setattr(owner, name, _timed(function, column, totals))
    rows: list[list[object]] = []
    try:
        with postgres_server() as postgres, tempfile.TemporaryDirectory() as workdir:
            for round_number in range(rounds):
                sqlite_url = f"sqlite+aiosqlite:///{workdir}/round{round_number}.sqlite3"
                rows.append(["SQLite", *_measure(sqlite_url, load, totals)])
                rows.append(
                    ["PostgreSQL", *_measure(postgres.new_database("breakdown"), load, totals)]
                )
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)
    report.note(f"`python benchmarks/worker_breakdown.py --in-flight {in_flight}`")
    report.heading(
        f"Worker commit cycle, 64 producers x {events_each} events, {in_flight} in flight "
        "each (µs per event)"
    )
    report.table(
        ["store", "events/s", "mean batch", "wall", "cpu", *_COLUMNS],
        sorted(rows, key=lambda row: str(row[0]), reverse=True),
    )


if __name__ == "__main__":
    main()
