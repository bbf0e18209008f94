"""The in-memory store: against fastmcp's in-memory event store, and flat under a cap.

* **Against fastmcp** (PyPI ``fastmcp``): both behind the MCP SDK's ``EventStore``
  interface -- ours through :class:`eventstore.mcp.SessionEventStore` -- storing ~200-byte
  JSON-RPC notifications in streams capped at 100 events (fastmcp's default cap; its
  default one-hour TTL is kept). Throughput in alternating turns; bytes per event from
  tracemalloc while each store is filled with the scale's ``memory_events``.
* **Flat under a cap**: the store itself with a per-stream cap and ``capped_streams``
  live streams, warmed up to the cap, then rounds that append to every stream and
  replace a tenth of the sessions (cleared, new ones created). Traced memory after each
  round must stay flat: no leak of trimmed events, empty streams or sessions.
"""

from __future__ import annotations

import gc
import itertools
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastmcp.server.event_store import EventStore as FastMcpEventStore
from mcp.types import JSONRPCNotification

from benchmarks import report, workload
from benchmarks.context import Bench
from benchmarks.measure import Rates, rates_in_turns
from eventstore import InMemoryEventStore
from eventstore.mcp import SessionEventStore

STREAM_CAP = 100
#: Issue 7: at least fastmcp's throughput, at most half its bytes per event.
THROUGHPUT_TARGET = 1.0
BYTES_TARGET = 0.5
#: Memory under a cap: the last round may exceed the first by at most this fraction.
FLAT_TOLERANCE = 0.02
CAPPED_ROUNDS = 3
CAPPED_CAP = 2
_MESSAGES = [
    JSONRPCNotification(
        jsonrpc="2.0",
        method=workload.notification(n)["method"],
        params=workload.notification(n)["params"],
    )
    for n in range(1000)
]
_CONTENDERS: dict[str, Callable[[], Any]] = {
    "ours (SessionEventStore on InMemoryEventStore)": lambda: SessionEventStore(
        InMemoryEventStore(max_events_per_stream=STREAM_CAP), "bench-session"
    ),
    "fastmcp EventStore (in-memory)": lambda: FastMcpEventStore(),
}


def _writer(store: Any, streams: int) -> Callable[[], Awaitable[int]]:
    """Work: 100 notifications, round-robin over ``streams`` streams."""
    counter = itertools.count()

    async def write() -> int:
        for n in itertools.islice(counter, 100):
            await store.store_event(str(n % streams), _MESSAGES[n % 1000])
        return 100

    return write


async def _bytes_per_event(make: Callable[[], Any], events: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = make()
        write = _writer(store, events // STREAM_CAP)
        for _ in range(events // 100):
            await write()
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del store
    return used / events


@dataclass(frozen=True)
class PeerResult:
    rates: dict[str, Rates]
    bytes_per_event: dict[str, float]
    events: int


async def measure_peer(bench: Bench) -> PeerResult:
    stores = {name: make() for name, make in _CONTENDERS.items()}
    rates = await rates_in_turns(
        {name: _writer(store, 1000) for name, store in stores.items()},
        rounds=bench.rounds,
        seconds=bench.seconds,
    )
    del stores
    events = bench.scale.memory_events
    footprint = {name: await _bytes_per_event(make, events) for name, make in _CONTENDERS.items()}
    return PeerResult(rates, footprint, events)


async def measure_capped(bench: Bench) -> list[tuple[str, float]]:
    """Traced MB after warm-up and after each round of appends and session churn."""
    streams = bench.scale.capped_streams
    sessions = streams // len(workload.STREAM_IDS)
    live = list(range(sessions))
    next_session = itertools.count(sessions)
    ids = itertools.count()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        store = InMemoryEventStore(max_events_per_stream=CAPPED_CAP)

        async def fill(session_no: int, events: int) -> None:
            for stream_id in workload.STREAM_IDS:
                for _ in range(events):
                    n = next(ids)
                    await store.store_event(
                        f"s{session_no}", stream_id, f"e{n}", workload.notification(n)
                    )

        samples = []
        for session_no in live:
            await fill(session_no, CAPPED_CAP)
        gc.collect()
        samples.append(("after warm-up", (tracemalloc.get_traced_memory()[0] - base) / 1e6))
        for round_no in range(1, CAPPED_ROUNDS + 1):
            for index, session_no in enumerate(live):
                if index % 10 == round_no % 10:
                    await store.clear_session(f"s{session_no}")
                    live[index] = next(next_session)
                    await fill(live[index], CAPPED_CAP)
                else:
                    await fill(session_no, 1)
            gc.collect()
            samples.append(
                (f"after round {round_no}", (tracemalloc.get_traced_memory()[0] - base) / 1e6)
            )
        assert await store.stream_count(f"s{live[0]}") == len(workload.STREAM_IDS)
    finally:
        tracemalloc.stop()
    return samples


def summarise(bench: Bench, peer: PeerResult | None, capped: list[tuple[str, float]]) -> None:
    if peer is not None:
        ours, theirs = list(_CONTENDERS)
        report.heading("In-memory store against fastmcp's (SDK EventStore interface)")
        report.table(
            ["store", "events/s", f"bytes per event ({peer.events:,} events, tracemalloc)"],
            [
                (name, report.rate(peer.rates[name].median), f"{peer.bytes_per_event[name]:,.0f}")
                for name in _CONTENDERS
            ],
        )
        speed = peer.rates[ours].median / peer.rates[theirs].median
        size = peer.bytes_per_event[ours] / peer.bytes_per_event[theirs]
        bench.target(
            f"in-memory throughput >= {THROUGHPUT_TARGET}x fastmcp",
            report.ratio(speed),
            speed >= THROUGHPUT_TARGET,
        )
        bench.target(
            f"in-memory bytes per event <= {BYTES_TARGET}x fastmcp",
            report.ratio(size),
            size <= BYTES_TARGET,
        )
    if capped:
        streams = bench.scale.capped_streams
        report.heading(
            f"In-memory store, cap {CAPPED_CAP}, {streams:,} live streams: traced memory (MB)"
        )
        report.table(["moment", "MB"], [(moment, f"{mb:,.1f}") for moment, mb in capped])
        growth = capped[-1][1] / capped[1][1] - 1
        bench.target(
            f"in-memory store flat under a cap ({streams:,} streams, session churn)",
            f"{growth:+.1%} from round 1 to round {CAPPED_ROUNDS}",
            growth <= FLAT_TOLERANCE,
        )
