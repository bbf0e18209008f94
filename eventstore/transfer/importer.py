"""Importing a source into a store: stage, settle, then write in batches.

The import runs in two passes. The first reads the whole source into
:class:`~eventstore.transfer.staging.Staging` (nothing is written to the target yet, so an
unreadable source costs nothing), settles duplicates and applies the target's cap. The
second feeds the surviving events, stream by stream in order, to a
:class:`~eventstore.worker.PersistenceWorker`, which commits up to ``batch_size`` of
them per transaction, in queue order, and rides out database outages with its retries.

Re-running an import is safe and is how an interrupted one resumes: batches commit
atomically and in order, so each stream in the target holds a prefix of what the import
writes, and storing an event that is already there is a no-op. Because the cap is applied
before writing, an import never stores an event the store would trim, so nothing it wrote
can come back as new on a re-run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from eventstore.codec import check_id, decode_data
from eventstore.errors import (
    EventStoreError,
    InvalidInputError,
    StoreClosedError,
    StoreUnavailableError,
)
from eventstore.events import DEFAULT_STREAM_ID, StoredEvent
from eventstore.requests import StoreEvent
from eventstore.store import EventStore
from eventstore.transfer.progress import NoProgress, ProgressSink
from eventstore.transfer.records import Reject, SourceEvent
from eventstore.transfer.sources import Source
from eventstore.transfer.staging import CapSummary, StagedEvent, Staging
from eventstore.worker import MAX_BATCH_LIMIT, PersistenceWorker

#: Events per transaction, by default.
DEFAULT_BATCH_SIZE = 1000
#: Largest accepted ``batch_size``: the worker's batch limit.
MAX_BATCH_SIZE = MAX_BATCH_LIMIT


@dataclass
class ImportReport:
    """What an import read, skipped, rejected and stored.

    ``events`` is what remained to write after duplicates and the cap; ``stored`` how
    many of those the target holds now (newly written or already there from an earlier
    run). For a dry run ``stored`` stays 0.
    """

    source: str
    stream_id: str
    dry_run: bool
    read: int = 0
    rejected: int = 0
    duplicates: int = 0
    cap: CapSummary | None = None
    events: int = 0
    sessions: int = 0
    streams: int = 0
    stored: int = 0


async def import_events(
    source: Source,
    store: EventStore,
    *,
    stream_id: str = DEFAULT_STREAM_ID,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    on_reject: Callable[[Reject], None] | None = None,
    progress: ProgressSink | None = None,
) -> ImportReport:
    """Import every event of ``source`` into ``store``; return what happened.

    * Events without a stream (legacy input) go to ``stream_id``; events with one keep it.
    * Order within a stream: a new-format source's ``seq``, else the timestamp, then the
      source order. The store assigns ``seq`` 1, 2, ... in that order; each event keeps
      its timestamp.
    * A session's event id seen twice: the first in source order is imported; an
      identical copy is skipped, one with other data or another stream is rejected.
    * With a cap on the store, each stream imports only its newest ``cap`` events
      (:attr:`ImportReport.cap` says which streams were cut). A per-stream cap smaller
      than the store-wide one, on a stream the target already has, is applied by the
      store as usual.
    * Every line that is not imported for a reason other than the two above goes to
      ``on_reject`` with its position and the reason, and the import carries on.
    * ``dry_run``: read, settle and report, write nothing.

    Idempotent: re-running the same import stores nothing twice, so it is also how an
    interrupted import resumes. Raises :class:`~eventstore.errors.InvalidInputError` when
    the source cannot be read (before anything is written) and
    :class:`~eventstore.errors.StoreUnavailableError` when the target stays unreachable.
    """
    check_id("stream_id", stream_id)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH_SIZE
    ):
        raise InvalidInputError(
            f"batch_size must be an int from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}"
        )
    progress = progress or NoProgress()
    report = ImportReport(source.description, stream_id, dry_run)

    def reject(item: Reject) -> None:
        report.rejected += 1
        if on_reject is not None:
            on_reject(item)

    staging = Staging(stream_id)
    try:
        progress.start(f"reading {source.description}", None, "records")
        async for chunk in source.read(store.max_event_bytes):
            events: list[SourceEvent] = []
            for item in chunk:
                if isinstance(item, Reject):
                    reject(item)
                else:
                    events.append(item)
            await asyncio.to_thread(staging.add, events)
            report.read += len(events)
            progress.advance(len(chunk))
        progress.start("sorting and de-duplicating", None)
        await asyncio.to_thread(staging.seal, reject)
        report.duplicates = staging.duplicates
        cap = await store.get_max_events_per_stream()
        if cap is not None:
            report.cap = await asyncio.to_thread(staging.apply_cap, cap)
        report.events, report.sessions, report.streams = await asyncio.to_thread(staging.counts)
        if dry_run:
            return report
        progress.start("importing", report.events)
        await _write(staging, store, batch_size, report, reject, progress)
        return report
    finally:
        staging.close()


async def _write(
    staging: Staging,
    store: EventStore,
    batch_size: int,
    report: ImportReport,
    reject: Callable[[Reject], None],
    progress: ProgressSink,
) -> None:
    """Feed the staged events to a worker in order; account for each as it commits."""
    batches = staging.ordered(batch_size)
    pending: deque[tuple[StagedEvent, asyncio.Future[StoredEvent]]] = deque()

    def settle_done() -> None:
        settled = 0
        while pending and pending[0][1].done():
            event, future = pending.popleft()
            _account(event, future, report, reject)
            settled += 1
        progress.advance(settled)

    # A queue of two batches keeps the worker busy while the next batch is fetched, and
    # bounds memory: submit() waits for room.
    async with PersistenceWorker(store, max_batch=batch_size, max_queue=2 * batch_size) as worker:
        while (batch := await asyncio.to_thread(_next_requests, batches)) is not None:
            for event, request in zip(*batch, strict=True):
                pending.append((event, await worker.submit(request)))
            settle_done()
        await worker.flush()
        settle_done()


def _account(
    event: StagedEvent,
    future: asyncio.Future[StoredEvent],
    report: ImportReport,
    reject: Callable[[Reject], None],
) -> None:
    error = future.exception()
    if error is None:
        report.stored += 1
    elif isinstance(error, (StoreUnavailableError, StoreClosedError)):
        # Not this event's fault: the target is gone; stop (a re-run resumes).
        raise error
    elif isinstance(error, EventStoreError):
        reject(
            Reject(
                event.position,
                f"the target store refused it: {error}",
                event.source_event().to_line(),
            )
        )
    else:
        raise error


def _next_requests(
    batches: Iterator[list[StagedEvent]],
) -> tuple[list[StagedEvent], list[StoreEvent]] | None:
    staged = next(batches, None)
    if staged is None:
        return None
    return staged, [
        StoreEvent(
            e.session_id, e.stream_id, e.event_id, decode_data(e.text), timestamp=e.timestamp
        )
        for e in staged
    ]
