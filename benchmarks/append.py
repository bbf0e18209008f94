"""Appends from one writer, one transaction per call: the store next to the raw driver.

Measured at each dataset size, so the rows also show whether appends slow down as the
table grows (they should not: every statement is an index seek).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import report, sqlcheck
from benchmarks.context import Bench
from benchmarks.dataset import LABELS, Dataset, open_raw, open_sql_store
from benchmarks.measure import Rates, rates_in_turns
from benchmarks.writers import RawWriter, StoreWriter

BATCH_SIZES = (1, 100)
#: Issue 2: single appends at least this fraction of the raw driver's rate.
SINGLE_TARGET = 0.5


@dataclass(frozen=True)
class AppendRow:
    dialect: str
    events: int
    batch: int
    ours: Rates
    raw: Rates
    same_sql: bool

    @property
    def ratio(self) -> float:
        return self.ours.median / self.raw.median


async def measure(bench: Bench, dataset: Dataset) -> list[AppendRow]:
    store = await open_sql_store(dataset.url)
    raw = await open_raw(dataset.dialect, dataset.url)
    rows = []
    try:
        for size in BATCH_SIZES:
            ours, baseline = StoreWriter(store, size), RawWriter(raw, size)
            with sqlcheck.captured(store) as statements:
                await ours()
            same = sqlcheck.same(f"append of {size}", statements, raw.statements(baseline.batch()))
            rates = await rates_in_turns(
                {"ours": ours, "raw": baseline}, rounds=bench.rounds, seconds=bench.seconds
            )
            rows.append(
                AppendRow(dataset.dialect, dataset.events, size, rates["ours"], rates["raw"], same)
            )
    finally:
        await raw.close()
        await store.close()
    return rows


def summarise(bench: Bench, rows: list[AppendRow]) -> None:
    report.heading("Appends: one writer, one transaction per call (events/s)")
    report.table(
        ["store", "events in table", "events per call", "ours", "raw", "ratio"],
        [
            (
                LABELS[r.dialect],
                f"{r.events:,}",
                r.batch,
                report.rate(r.ours.median),
                report.rate(r.raw.median),
                report.ratio(r.ratio),
            )
            for r in rows
        ],
    )
    for dialect in LABELS:
        singles = [r for r in rows if r.dialect == dialect and r.batch == 1]
        if singles:
            worst = min(r.ratio for r in singles)
            bench.target(
                f"{LABELS[dialect]} single store_event >= {SINGLE_TARGET}x raw",
                f"worst {report.ratio(worst)}"
                + ("" if all(r.same_sql for r in singles) else " (SQL differed!)"),
                worst >= SINGLE_TARGET and all(r.same_sql for r in singles),
            )
