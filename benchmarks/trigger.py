"""What the retention trigger costs appends: three databases, measured in turns.

* no trigger: the store's schema with the trigger dropped (what appends cost without it);
* trigger, no cap: the trigger installed, no cap set (it fires and finds nothing to do);
* trigger, trimming: a cap of :data:`CAP`, each stream already at the cap, so every append
  deletes as many old events as it adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import report
from benchmarks.context import Bench
from benchmarks.dataset import DIALECTS, LABELS, new_database, open_sql_store
from benchmarks.measure import Rates, rates_in_turns
from benchmarks.writers import StoreWriter
from eventstore import SqlEventStore
from eventstore.sql import postgresql, sqlite

CAP = 100
BATCH_SIZES = (1, 100)
#: Issue 7: the trigger costs at most this fraction of append throughput.
COST_TARGET = 0.25
_CONFIGS = ("no trigger", "trigger, no cap", f"trigger, trimming to {CAP}")


@dataclass(frozen=True)
class TriggerRow:
    dialect: str
    batch: int
    rates: dict[str, Rates]

    @property
    def cost(self) -> float:
        return 1 - self.rates[_CONFIGS[2]].median / self.rates[_CONFIGS[0]].median


async def _drop_trigger(store: SqlEventStore) -> None:
    module = sqlite if store.engine.dialect.name == "sqlite" else postgresql
    async with store.engine.begin() as conn:
        for statement in module.DROP_TRIGGERS:
            await conn.exec_driver_sql(statement)


async def measure(bench: Bench) -> list[TriggerRow]:
    rows = []
    for dialect in DIALECTS:
        stores = []
        try:
            for index in range(len(_CONFIGS)):
                url = await new_database(bench, dialect, f"trigger{index}")
                cap = CAP if index == 2 else None
                store = await open_sql_store(url, max_events_per_stream=cap)
                stores.append(store)
                if index == 0:
                    await _drop_trigger(store)
            for size in BATCH_SIZES:
                writers = {
                    config: StoreWriter(store, size)
                    for config, store in zip(_CONFIGS, stores, strict=True)
                }
                # Bring the capped stream to its cap, so every measured append trims.
                written = 0
                while written < CAP:
                    written += await writers[_CONFIGS[2]]()
                rates = await rates_in_turns(writers, rounds=bench.rounds, seconds=bench.seconds)
                rows.append(TriggerRow(dialect, size, rates))
                info = await stores[2].get_stream_info(writers[_CONFIGS[2]].session_id, "7")
                assert info is not None and info.last_seq - info.first_seq + 1 == CAP
        finally:
            for store in stores:
                await store.close()
    return rows


def summarise(bench: Bench, rows: list[TriggerRow]) -> None:
    report.heading("Retention trigger: appends/s without it, idle, and trimming every append")
    report.table(
        ["store", "events per call", *_CONFIGS, "cost of trimming"],
        [
            (
                LABELS[r.dialect],
                r.batch,
                *(report.rate(r.rates[c].median) for c in _CONFIGS),
                f"{r.cost:.0%}",
            )
            for r in rows
        ],
    )
    for dialect in LABELS:
        mine = [r for r in rows if r.dialect == dialect]
        if mine:
            worst = max(r.cost for r in mine)
            bench.target(
                f"{LABELS[dialect]} trigger costs <= {COST_TARGET:.0%} of append throughput",
                f"worst {worst:.0%}",
                worst <= COST_TARGET,
            )
