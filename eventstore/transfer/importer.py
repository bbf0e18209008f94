"""Importing a source into a store: stage, settle, then write in batches.

The import runs in two passes. The first reads the whole source into
:class:`~eventstore.transfer.staging.Staging` (nothing is written to the target yet, so an
unreadable source costs nothing), settles duplicates and applies the target's cap. The
second writes the surviving events stream by stream, in order, ``batch_size`` per
:meth:`~eventstore.store.EventStore.apply` call, one transaction each.

Re-running an import is safe and is how an interrupted one resumes: batches commit
atomically and in order, so each stream in the target holds a prefix of what the import
writes, and storing an event that is already there is a no-op. Because the cap is applied
before writing, an import never stores an event the store would trim, so nothing it wrote
can come back as new on a re-run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from eventstore.codec import check_id, decode_data
from eventstore.errors import EventStoreError, InvalidInputError, StoreUnavailableError
from eventstore.events import DEFAULT_STREAM_ID
from eventstore.requests import StoreEvent
from eventstore.store import ApplyResult, EventStore
from eventstore.transfer.progress import NoProgress, ProgressSink
from eventstore.transfer.records import Reject, SourceEvent
from eventstore.transfer.sources import Source
from eventstore.transfer.staging import CapSummary, StagedEvent, Staging

log = logging.getLogger(__name__)

#: Events per transaction, by default.
DEFAULT_BATCH_SIZE = 1000
# Waits between attempts when the target is unreachable or busy (seconds).
_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, not {batch_size!r}")
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
        batches = staging.ordered(batch_size)
        while (batch := await asyncio.to_thread(_next_requests, batches)) is not None:
            staged, requests = batch
            results = await _apply(store, requests)
            for event, result in zip(staged, results, strict=True):
                if isinstance(result, EventStoreError):
                    reject(
                        Reject(
                            event.position,
                            f"the target store refused it: {result}",
                            event.source_event().to_line(),
                        )
                    )
                else:
                    report.stored += 1
            progress.advance(len(staged))
        return report
    finally:
        staging.close()


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


async def _apply(store: EventStore, requests: list[StoreEvent]) -> list[ApplyResult]:
    # Retrying a whole batch is safe: events already stored are recognised as no-ops.
    for delay in (*_RETRY_DELAYS, None):
        try:
            return await store.apply(requests)
        except StoreUnavailableError as exc:
            if delay is None:
                raise
            log.warning("target unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
