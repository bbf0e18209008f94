"""Against a peer: the ``eventsourcing`` library's SQLite and PostgreSQL recorders.

Same machine, same run, same database server, alternating turns. A stream of ours is an
aggregate there; both write batches of 1 and of 100 events to one stream per
transaction, and replay 100 events after a position. eventsourcing is synchronous and is
called directly (no thread), with its payloads encoded in advance; both recorders it
offers are measured: the aggregate recorder (plain inserts) and the application
recorder (which also numbers every event in one global sequence, as an eventsourcing
application's notification log needs).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from eventsourcing.persistence import AggregateRecorder, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteDatastore,
)
from sqlalchemy.engine import make_url

from benchmarks import report, workload
from benchmarks.context import Bench
from benchmarks.dataset import DIALECTS, LABELS, new_database, open_sql_store
from benchmarks.measure import Latencies, Rates, latencies_in_turns, rates_in_turns
from benchmarks.pgserver import driver_dsn
from benchmarks.writers import StoreWriter
from eventstore import SqlEventStore
from eventstore.codec import encode_data

BATCH_SIZES = (1, 100)
REPLAY_EVENTS = 100
#: Issue 7: at least this times the peer's rate for same-size writes.
RATE_TARGET = 2.0
_STATES = [encode_data(workload.notification(n)).encode() for n in range(1000)]
_TOPIC = "benchmarks.peers:Notified"
_RECORDERS = ("eventsourcing aggregate", "eventsourcing application")


class PeerWriter:
    """Appends ``size`` events per transaction to one aggregate of ``recorder``."""

    def __init__(self, recorder: AggregateRecorder, size: int) -> None:
        self.recorder = recorder
        self.size = size
        self.originator_id = uuid.uuid4()
        self.version = 0
        self._counter = itertools.count()

    async def __call__(self) -> int:
        batch = []
        for n in itertools.islice(self._counter, self.size):
            self.version += 1
            batch.append(StoredEvent(self.originator_id, self.version, _TOPIC, _STATES[n % 1000]))
        self.recorder.insert_events(batch)
        return self.size


@dataclass(frozen=True)
class PeerRows:
    dialect: str
    rates: dict[int, dict[str, Rates]]
    replay: dict[str, Latencies]


def _recorders(dialect: str, url: str, path: str) -> tuple[list[Any], list[AggregateRecorder]]:
    """Both eventsourcing recorders on the database of ``url``, tables created."""
    datastores: list[Any] = []
    recorders: list[AggregateRecorder] = []
    for index, kind in enumerate(("aggregate", "application")):
        table = f"es_{kind}_events"
        if dialect == "sqlite":
            store: Any = SQLiteDatastore(path, originator_id_type="uuid")
            recorder: Any = (SQLiteAggregateRecorder, SQLiteApplicationRecorder)[index](
                store, table
            )
        else:
            parsed = make_url(url)
            store = PostgresDatastore(
                dbname=str(parsed.database),
                host=str(parsed.host),
                port=parsed.port or 5432,
                user=str(parsed.username),
                password=parsed.password or "",
            )
            recorder = (PostgresAggregateRecorder, PostgresApplicationRecorder)[index](
                store, events_table_name=table
            )
        recorder.create_table()
        datastores.append(store)
        recorders.append(recorder)
    return datastores, recorders


async def measure(bench: Bench) -> list[PeerRows]:
    results = []
    for dialect in DIALECTS:
        url = await new_database(bench, dialect, "peers")
        path = str(bench.workdir / "peers-es.sqlite3")
        store: SqlEventStore = await open_sql_store(url)
        datastores, recorders = await asyncio.to_thread(_recorders, dialect, url, path)
        try:
            rates: dict[int, dict[str, Rates]] = {}
            writers: dict[str, Any] = {}
            for size in BATCH_SIZES:
                writers = {"ours": StoreWriter(store, size)}
                for name, recorder in zip(_RECORDERS, recorders, strict=True):
                    writers[name] = PeerWriter(recorder, size)
                rates[size] = await rates_in_turns(
                    writers, rounds=bench.rounds, seconds=bench.seconds
                )
            if dialect == "postgresql":
                # Steady state, as autovacuum would leave it: statistics of the tables
                # the appends just grew from nothing.
                conn = await asyncpg.connect(driver_dsn(url))
                try:
                    await conn.execute("ANALYZE")
                finally:
                    await conn.close()
            results.append(PeerRows(dialect, rates, await _replay(bench, writers)))
        finally:
            await store.close()
            for datastore in datastores:
                datastore.close()
    return results


async def _replay(bench: Bench, writers: dict[str, Any]) -> dict[str, Latencies]:
    """Replay 100 events after a random position of the streams the batch writers wrote."""
    ours: StoreWriter = writers["ours"]
    written = min(w.version for name, w in writers.items() if name != "ours")
    written = min(written, len(await ours.store.get_stream_events(ours.session_id, "7")))
    positions = [1 + (n * 7919) % (written - REPLAY_EVENTS) for n in range(4096)]

    async def replay_ours(i: int) -> None:
        after = positions[i % len(positions)]
        events = await ours.store.get_events_after(
            ours.session_id, "7", f"7:{after - 1}", limit=REPLAY_EVENTS
        )
        assert len(events) == REPLAY_EVENTS

    def replay_peer(writer: PeerWriter) -> Any:
        async def replay(i: int) -> None:
            after = positions[i % len(positions)]
            events = writer.recorder.select_events(
                writer.originator_id, gt=after, limit=REPLAY_EVENTS
            )
            assert len(events) == REPLAY_EVENTS

        return replay

    contenders: dict[str, Any] = {"ours": replay_ours}
    for name in _RECORDERS:
        contenders[name] = replay_peer(writers[name])
    return await latencies_in_turns(contenders, rounds=bench.rounds, calls=200)


def summarise(bench: Bench, rows: list[PeerRows]) -> None:
    report.heading("Against eventsourcing's recorders: appends (events/s) and replay (ms)")
    table = []
    for r in rows:
        for size, rates in r.rates.items():
            best = max(rates[name].median for name in _RECORDERS)
            table.append(
                (
                    LABELS[r.dialect],
                    f"append, {size} per transaction",
                    report.rate(rates["ours"].median),
                    *(report.rate(rates[name].median) for name in _RECORDERS),
                    report.ratio(rates["ours"].median / best),
                )
            )
            bench.target(
                f"{LABELS[r.dialect]} appends of {size} >= {RATE_TARGET}x eventsourcing",
                report.ratio(rates["ours"].median / best),
                rates["ours"].median >= RATE_TARGET * best,
            )
        best_p50 = min(r.replay[name].p50_ms for name in _RECORDERS)
        table.append(
            (
                LABELS[r.dialect],
                f"replay {REPLAY_EVENTS}, p50 ms",
                report.ms(r.replay["ours"].p50_ms),
                *(report.ms(r.replay[name].p50_ms) for name in _RECORDERS),
                report.ratio(best_p50 / r.replay["ours"].p50_ms),
            )
        )
    report.table(["store", "operation", "ours", *_RECORDERS, "ours vs best peer"], table)
    report.note(
        "The last column is a speed ratio (above 1x: ours is faster). eventsourcing's "
        "SQLite recorders keep SQLite's default synchronous=FULL in WAL mode, as ours do."
    )
