"""Replay: ``get_events_after`` returning 100 events, next to the raw driver's same query.

Each call picks a random stream of the dataset and asks for everything after its
100th-newest event, as a client reconnecting with ``Last-Event-ID`` would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from benchmarks import report, sqlcheck, workload
from benchmarks.context import Bench
from benchmarks.dataset import LABELS, Dataset, open_raw, open_sql_store
from benchmarks.measure import Latencies, latencies_in_turns

REPLAY_EVENTS = 100
CALLS_PER_ROUND = 400
#: Issue 2 and issue 7: replay p50 at most this times the raw driver's.
RATIO_TARGET = 1.5
#: Issue 7: p50 at the largest size at most this times p50 at the smallest.
GROWTH_TARGET = 1.5


@dataclass(frozen=True)
class ReplayRow:
    dialect: str
    events: int
    ours: Latencies
    raw: Latencies
    same_sql: bool
    plan: list[str]

    @property
    def ratio(self) -> float:
        return self.ours.p50_ms / self.raw.p50_ms


async def measure(bench: Bench, dataset: Dataset) -> ReplayRow:
    store = await open_sql_store(dataset.url)
    raw = await open_raw(dataset.dialect, dataset.url)
    rng = random.Random(dataset.events)
    picks = [rng.randrange(dataset.streams) for _ in range(4096)]
    cursor_seq = workload.EVENTS_PER_STREAM - REPLAY_EVENTS

    def target(i: int) -> tuple[str, str, str]:
        stream_no = picks[i % len(picks)]
        return (*workload.stream_key(stream_no), workload.event_id(stream_no, cursor_seq))

    async def ours(i: int) -> None:
        events = await store.get_events_after(*target(i))
        assert len(events) == REPLAY_EVENTS

    async def baseline(i: int) -> None:
        rows = await raw.replay(*target(i))
        assert len(rows) == REPLAY_EVENTS + 1  # the cursor row comes first

    try:
        with sqlcheck.captured(store) as statements:
            await ours(0)
        same = sqlcheck.same("replay", statements, [raw.replay_statement()])
        timings = await latencies_in_turns(
            {"ours": ours, "raw": baseline}, rounds=bench.rounds, calls=CALLS_PER_ROUND
        )
        plan = await dataset.query_plan(raw.replay_statement(), raw.replay_params(*target(0)))
    finally:
        await raw.close()
        await store.close()
    return ReplayRow(dataset.dialect, dataset.events, timings["ours"], timings["raw"], same, plan)


def summarise(bench: Bench, rows: list[ReplayRow]) -> None:
    report.heading(f"Replay: {REPLAY_EVENTS} events after a cursor (ms per call)")
    report.table(
        ["store", "events in table", "ours p50", "raw p50", "p50 ratio", "ours p99", "raw p99"],
        [
            (
                LABELS[r.dialect],
                f"{r.events:,}",
                report.ms(r.ours.p50_ms),
                report.ms(r.raw.p50_ms),
                report.ratio(r.ratio),
                report.ms(r.ours.p99_ms),
                report.ms(r.raw.p99_ms),
            )
            for r in rows
        ],
    )
    for dialect in LABELS:
        mine = [r for r in rows if r.dialect == dialect]
        if not mine:
            continue
        worst = max(r.ratio for r in mine)
        bench.target(
            f"{LABELS[dialect]} replay p50 <= {RATIO_TARGET}x raw at every size",
            f"worst {report.ratio(worst)}"
            + ("" if all(r.same_sql for r in mine) else " (SQL differed!)"),
            worst <= RATIO_TARGET and all(r.same_sql for r in mine),
        )
        if len(mine) > 1:
            growth = mine[-1].ours.p50_ms / mine[0].ours.p50_ms
            raw_growth = mine[-1].raw.p50_ms / mine[0].raw.p50_ms
            bench.target(
                f"{LABELS[dialect]} replay p50 growth {mine[0].events:,} -> "
                f"{mine[-1].events:,} <= {GROWTH_TARGET}x",
                f"{report.ratio(growth)} (raw {report.ratio(raw_growth)})",
                growth <= GROWTH_TARGET,
            )
        report.note(f"\n{LABELS[dialect]} query plan of the replay at {mine[-1].events:,} events:")
        for line in mine[-1].plan:
            report.note(f"    {line}")
