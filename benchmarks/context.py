"""What every measurement gets: the scale, a scratch directory, PostgreSQL, and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import report
from benchmarks.pgserver import PostgresServer


@dataclass(frozen=True)
class Scale:
    """How big a run is."""

    name: str
    #: Table sizes (events) at which replay and appends are measured.
    table_sizes: tuple[int, ...]
    #: Events stored in each in-memory store for the footprint comparison.
    memory_events: int
    #: Live streams in the capped in-memory store.
    capped_streams: int


# fastmcp's store takes about 3 ms per event under tracemalloc on this machine (an hour
# for 1M events), so the footprint is measured on 20k events (200 streams at the cap of
# 100): per-event bytes of capped streams do not depend on how many streams there are.
SCALES = {
    "100k": Scale("100k", (100_000,), 10_000, 10_000),
    "1m": Scale("1m", (100_000, 1_000_000), 20_000, 100_000),
    "10m": Scale("10m", (100_000, 1_000_000, 10_000_000), 20_000, 100_000),
}


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool


@dataclass
class Bench:
    scale: Scale
    workdir: Path
    postgres: PostgresServer
    #: Alternating turns per contender; every figure is a median over them.
    rounds: int
    #: Seconds per turn of a throughput measurement.
    seconds: float
    verdicts: list[Verdict] = field(default_factory=list)

    def target(self, target: str, measured: str, met: bool) -> None:
        """Record a target of the issues and whether this run met it."""
        self.verdicts.append(Verdict(target, measured, met))

    def print_verdicts(self) -> None:
        report.heading("Targets")
        report.table(
            ["target", "measured", "verdict"],
            [(v.target, v.measured, report.verdict(v.met)) for v in self.verdicts],
        )
