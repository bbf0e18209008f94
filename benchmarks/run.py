"""Run the benchmarks and print the README's tables: ``python benchmarks/run.py``.

``--scale 1m`` (the default) measures replay and appends on tables of 100k and 1M events
and finishes in under ten minutes on a 2-core machine; ``--scale 10m`` adds 10M events
(needs about 10 GB of disk and more time); ``--scale 100k`` is a quick look. ``--only``
runs some measurements. PostgreSQL is a throwaway cluster started from the server
binaries on the machine, or the server named by ``$EVENTSTORE_BENCH_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import asyncpg
import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import append, mcp_e2e, memory, peers, replay, report, trigger
from benchmarks.context import SCALES, Bench
from benchmarks.dataset import DIALECTS, Dataset
from benchmarks.pgserver import driver_dsn, postgres_server

MEASUREMENTS = ("replay", "append", "trigger", "peers", "memory", "capped", "mcp")
#: Programs of their own in this directory (other issues' benchmarks), run when named.
PROGRAMS = {
    "worker": "worker_throughput.py",
    "import": "import_dump.py",
    "migrate": "migrate_legacy.py",
}


async def _postgres_version(url: str) -> str:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _header(bench: Bench, command: str) -> None:
    report.note(f"`{command}`")
    report.note(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {await _postgres_version(bench.postgres.url)} "
        f"({bench.postgres.description}); SQLAlchemy {version('sqlalchemy')}, "
        f"aiosqlite {version('aiosqlite')}, asyncpg {version('asyncpg')}. "
        f"Medians of {bench.rounds} alternating rounds per contender."
    )


async def _tables(bench: Bench, only: set[str]) -> None:
    """Replay and appends on growing datasets, one dialect at a time."""
    replay_rows, append_rows = [], []
    for dialect in DIALECTS:
        dataset = await Dataset.create(bench, dialect)
        for size in bench.scale.table_sizes:
            started = time.perf_counter()
            await dataset.grow_to(size)
            report.note(
                f"filled {dialect} to {size:,} events in {time.perf_counter() - started:.0f} s"
            )
            if "replay" in only:
                replay_rows.append(await replay.measure(bench, dataset))
            if "append" in only:
                append_rows += await append.measure(bench, dataset)
        await dataset.drop()
    if replay_rows:
        replay.summarise(bench, replay_rows)
    if append_rows:
        append.summarise(bench, append_rows)


async def _program(program: str) -> None:
    """Run another benchmark program of this directory; its output goes with ours."""
    path = Path(__file__).with_name(program)
    report.heading(f"python benchmarks/{program}")
    if not path.exists():
        report.note(f"{program} is not in this checkout")
        return
    process = await asyncio.create_subprocess_exec(sys.executable, str(path))
    if await process.wait() != 0:
        report.note(f"{program} exited with status {process.returncode}")


@contextmanager
def _timed(what: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    report.note(f"({what}: {time.perf_counter() - started:.0f} s)")


async def _main(bench: Bench, only: set[str], command: str) -> None:
    started = time.perf_counter()
    await _header(bench, command)
    if only & {"replay", "append"}:
        with _timed("replay and appends, including filling the tables"):
            await _tables(bench, only)
    if "trigger" in only:
        with _timed("trigger"):
            trigger.summarise(bench, await trigger.measure(bench))
    if "peers" in only:
        with _timed("eventsourcing"):
            peers.summarise(bench, await peers.measure(bench))
    if only & {"memory", "capped"}:
        with _timed("in-memory store"):
            peer = await memory.measure_peer(bench) if "memory" in only else None
            capped = await memory.measure_capped(bench) if "capped" in only else []
            memory.summarise(bench, peer, capped)
    if "mcp" in only:
        with _timed("MCP end to end"):
            mcp_e2e.summarise(bench, await mcp_e2e.measure(bench))
    for name, program in PROGRAMS.items():
        if name in only:
            await _program(program)
    bench.print_verdicts()
    report.note(f"\nTotal time: {time.perf_counter() - started:.0f} s")


@click.command()
@click.option("--scale", type=click.Choice(list(SCALES)), default="1m", show_default=True)
@click.option(
    "--only",
    type=click.Choice([*MEASUREMENTS, *PROGRAMS]),
    multiple=True,
    help="Run only these (repeatable). Default: all but the separate programs "
    f"({', '.join(PROGRAMS)}), which run only when named.",
)
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True)
@click.option(
    "--seconds",
    type=click.FloatRange(0.05),
    default=1.0,
    show_default=True,
    help="Length of one throughput round.",
)
def main(scale: str, only: tuple[str, ...], rounds: int, seconds: float) -> None:
    """Measure the store next to its baselines and print Markdown tables."""
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    # The MCP SDK, fastmcp and httpx log every request at INFO; the tables are the output.
    logging.disable(logging.INFO)
    with postgres_server() as postgres, tempfile.TemporaryDirectory(prefix="es-bench-") as tmp:
        bench = Bench(SCALES[scale], Path(tmp), postgres, rounds, seconds)
        asyncio.run(_main(bench, set(only or MEASUREMENTS), command.strip()))


if __name__ == "__main__":
    main()
