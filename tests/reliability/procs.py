"""Entry points of the child processes the concurrency and fault tests start.

Each runs in a fresh interpreter (``spawn``), opens its own store on the shared database
and returns plain picklable values: what it was acknowledged, or what it observed.
"""

from __future__ import annotations

import asyncio
import random
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from eventstore import EventStore, EventStoreError, StoreUnavailableError, open_store
from eventstore.errors import UnknownCursorError


@dataclass(frozen=True)
class Ack:
    """One acknowledged append: the store answered with this seq."""

    stream_id: str
    event_id: str
    seq: int
    data: list[int]


@dataclass
class WriterReport:
    acks: list[Ack] = field(default_factory=list)
    retries: int = 0


@dataclass
class StreamLayout:
    """The streams of the concurrency test and the cap each must obey exactly."""

    session_id: str
    caps: dict[str, int]

    @property
    def streams(self) -> list[str]:
        return sorted(self.caps)


def event_id_for(process: int, task: int, index: int) -> str:
    return f"p{process}-t{task}-{index}"


def data_for(event_id: str) -> list[int]:
    """The data every writer stores under ``event_id``: a reader can check the pairing."""
    process, task, index = event_id.split("-")
    return [int(process[1:]), int(task[1:]), int(index)]


def stream_for(layout: StreamLayout, task: int, index: int) -> str:
    """Tasks hop across all streams, so every stream has writers from every process."""
    streams = layout.streams
    return streams[(task + index) % len(streams)]


async def _write_all(
    url: str, layout: StreamLayout, process: int, tasks: int, per_task: int
) -> WriterReport:
    report = WriterReport()
    async with open_store(url) as store:

        async def task(number: int) -> None:
            for index in range(per_task):
                stream = stream_for(layout, number, index)
                event_id = event_id_for(process, number, index)
                data = data_for(event_id)
                while True:
                    try:
                        stored = await store.store_event(layout.session_id, stream, event_id, data)
                        break
                    except StoreUnavailableError:
                        # Idempotent on the event id: retrying cannot duplicate.
                        report.retries += 1
                        await asyncio.sleep(random.uniform(0.001, 0.02))
                report.acks.append(Ack(stream, event_id, stored.seq, data))

        await asyncio.gather(*(task(number) for number in range(tasks)))
    return report


def write_events(
    url: str, layout: StreamLayout, process: int, tasks: int, per_task: int
) -> WriterReport:
    """``tasks`` concurrent tasks, each appending ``per_task`` events across the streams."""
    return asyncio.run(_write_all(url, layout, process, tasks, per_task))


@dataclass
class ReaderReport:
    replays: int = 0
    resumes: int = 0
    lost_cursors: int = 0
    # Replays taken while the stream was still growing: proof the reader raced writers.
    partial_views: int = 0
    violations: list[str] = field(default_factory=list)


def _check_replay(
    layout: StreamLayout, stream: str, seqs: list[int], ids: list[str], report: ReaderReport
) -> None:
    if not seqs:
        return
    cap = layout.caps[stream]
    expected = list(range(max(1, seqs[-1] - cap + 1), seqs[-1] + 1))
    if seqs != expected:
        report.violations.append(
            f"{stream}: a complete replay held seqs {seqs[0]}..{seqs[-1]} "
            f"({len(seqs)} events), expected {expected[0]}..{expected[-1]} under cap {cap}"
        )
    if len(set(ids)) != len(ids):
        report.violations.append(f"{stream}: a replay repeated an event id")


async def _read_until(url: str, layout: StreamLayout, stop: Path) -> ReaderReport:
    report = ReaderReport()
    cursors: dict[str, tuple[str, int]] = {}
    async with open_store(url) as store:
        while not await asyncio.to_thread(stop.exists):
            for stream in layout.streams:
                await _replay_once(store, layout, stream, cursors, report)
    return report


async def _replay_once(
    store: EventStore,
    layout: StreamLayout,
    stream: str,
    cursors: dict[str, tuple[str, int]],
    report: ReaderReport,
) -> None:
    events = await store.get_stream_events(layout.session_id, stream)
    report.replays += 1
    seqs = [e.seq for e in events]
    _check_replay(layout, stream, seqs, [e.id for e in events], report)
    for event in events:
        if event.id.startswith("p") and event.data != data_for(event.id):
            report.violations.append(f"{stream}: event {event.id} carries {event.data}")
    previous = cursors.get(stream)
    if previous is not None:
        if seqs and seqs[-1] < previous[1]:
            report.violations.append(f"{stream}: went back from seq {previous[1]} to {seqs[-1]}")
        try:
            resumed = await store.get_events_after(layout.session_id, stream, previous[0])
            report.resumes += 1
            got = [e.seq for e in resumed]
            if got != list(range(previous[1] + 1, previous[1] + 1 + len(got))):
                report.violations.append(
                    f"{stream}: resuming after seq {previous[1]} gave a gap: {got[:5]}..."
                )
        except UnknownCursorError:
            # Only a trim may take a cursor away: the stream must now start past it.
            report.lost_cursors += 1
            now = await store.get_stream_events(layout.session_id, stream, limit=1)
            if now and now[0].seq <= previous[1]:
                report.violations.append(
                    f"{stream}: cursor seq {previous[1]} unknown though seq {now[0].seq} "
                    "and later are retained"
                )
    if events:
        cursors[stream] = (events[-1].id, events[-1].seq)
        if 1 < seqs[-1]:
            report.partial_views += 1


def replay_continuously(url: str, layout: StreamLayout, stop: str) -> ReaderReport:
    """Replay and resume every stream, checking each view, until ``stop`` exists."""
    return asyncio.run(_read_until(url, layout, Path(stop)))


# -- a nearly full disk ---------------------------------------------------------------------


@dataclass
class DiskFullReport:
    acked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "Type: message" of every failure
    acked_after_space_freed: list[str] = field(default_factory=list)


async def _fill_then_free(url: str, limit_bytes: int, payload_bytes: int) -> DiskFullReport:
    report = DiskFullReport()
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    async with open_store(url) as store:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
        index = 0
        # Keep writing well past the first refusal: every later write must fail cleanly
        # too, and none may damage what was acknowledged.
        while len(report.refused) < 20:
            event_id = f"e{index}"
            index += 1
            try:
                await store.store_event("s", "a", event_id, "x" * payload_bytes)
                report.acked.append(event_id)
            except EventStoreError as exc:
                report.refused.append(event_id)
                report.errors.append(f"{type(exc).__name__}: {exc}")
            if index > 10_000:
                raise AssertionError("the file size limit never took effect")
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        for event_id in report.refused:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await store.store_event("s", "a", event_id, "x" * payload_bytes)
                    break
                except StoreUnavailableError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            report.acked_after_space_freed.append(event_id)
    return report


def fill_disk_then_free(url: str, limit_bytes: int, payload_bytes: int) -> DiskFullReport:
    """Append until files may not grow past ``limit_bytes`` (``ulimit -f``), then lift it.

    SIGXFSZ is ignored, so a write past the limit fails with EFBIG, as on a full disk,
    instead of killing the process.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return asyncio.run(_fill_then_free(url, limit_bytes, payload_bytes))
