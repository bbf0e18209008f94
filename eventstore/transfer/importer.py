"""Importing a source into a store: stage, settle, then write in batches.

The import runs in two passes. The first reads the whole source into
:class:`~eventstore.transfer.staging.Staging` (nothing is written to the target yet, so an
unreadable source costs nothing), settles duplicates and applies the target's cap. The
second feeds the surviving events, stream by stream in order, to a
:class:`~eventstore.worker.PersistenceWorker`, which commits up to ``batch_size`` of
them per transaction, in queue order, and rides out database outages with its retries;
the lookups of what the target already holds ride them out the same way.

Re-running an import is safe and is how an interrupted one resumes: batches commit
atomically and in order, so each stream in the target holds a prefix of what the import
writes, and storing an event that is already there is a no-op. Because the cap is applied
before writing, an import never stores an event the store would trim, so nothing it wrote
can come back as new on a re-run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from eventstore.codec import check_id, decode_data, same_content
from eventstore.errors import (
    DuplicateEventError,
    EventStoreError,
    InvalidInputError,
    StoreClosedError,
    StoreUnavailableError,
)
from eventstore.events import DEFAULT_STREAM_ID, StoredEvent
from eventstore.requests import StoreEvent
from eventstore.store import EventStore
from eventstore.transfer.lookup import Heads, TargetLookup
from eventstore.transfer.progress import NoProgress, ProgressSink
from eventstore.transfer.records import Reject, SourceEvent
from eventstore.transfer.sources import Source
from eventstore.transfer.staging import CapSummary, StagedEvent, Staging
from eventstore.transfer.threads import in_thread
from eventstore.worker import MAX_BATCH_LIMIT, PersistenceWorker
from eventstore.worker.retry import (
    DEFAULT_INITIAL_SECONDS,
    DEFAULT_MAXIMUM_SECONDS,
    OutageRetrier,
)

#: Events per transaction, by default.
DEFAULT_BATCH_SIZE = 1000
#: Largest accepted ``batch_size``: the worker's batch limit.
MAX_BATCH_SIZE = MAX_BATCH_LIMIT
#: How long an import rides out a database outage, in its reads of the target (the cap,
#: the lookups) as in its writes (the worker's ``retry_timeout``), in seconds.
RETRY_SECONDS = 30.0


@dataclass
class ImportReport:
    """What an import read, skipped, rejected and stored.

    ``events`` is what remained to write after duplicates and the cap. Checked against
    the target, each of those is ``new`` (written by this run; for a dry run, would be),
    ``present`` (the target already holds it, identical: written by an earlier run, so
    nothing to do) or a reject (the target holds its id with other data or another
    stream; counted in ``rejected`` and in ``conflicts``). ``sessions`` and ``streams``
    count where the new events go.
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
    new: int = 0
    present: int = 0
    conflicts: int = 0
    #: Events the target held already that its cap trimmed to make room for the new
    #: ones (for a dry run: would trim), and in how many streams.
    trimmed: int = 0
    trimmed_streams: int = 0
    #: Whether each event was checked against the target (False: a store this import
    #: cannot look into before writing; ``new`` then counts every event written).
    checked: bool = True

    @property
    def stored(self) -> int:
        """How many of :attr:`events` the target holds now (0 for a dry run)."""
        return 0 if self.dry_run else self.new + self.present


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
    * Each event is looked up in the target first: one it already holds, identical, is
      counted as present and not written again; one whose id it holds with other data
      or another stream is rejected.
    * Every line that is not imported for a reason other than the two above goes to
      ``on_reject`` with its position and the reason, and the import carries on. Rejects
      for conflicting ids come last, once the whole source is settled, each with its
      input as it was (for standard input, which cannot be read twice: as parsed).
    * ``dry_run``: read, settle, check against the target and report; write nothing.

    Idempotent: re-running the same import stores nothing twice, so it is also how an
    interrupted import resumes. Raises :class:`~eventstore.errors.InvalidInputError` when
    the source cannot be read (before anything is written) and
    :class:`~eventstore.errors.StoreUnavailableError` when the target stays unreachable
    for :data:`RETRY_SECONDS`.
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

    # One outage clock for the reads: a server restarting while the import looks up
    # what the target holds is waited for, as the worker waits for it when writing.
    retrier = OutageRetrier(
        timeout=RETRY_SECONDS, initial=DEFAULT_INITIAL_SECONDS, maximum=DEFAULT_MAXIMUM_SECONDS
    )
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
            await in_thread(staging.add, events)
            report.read += len(events)
            progress.advance(len(chunk))
        progress.start("sorting and de-duplicating", None)
        await in_thread(staging.seal)
        report.duplicates = staging.duplicates
        cap = await retrier.call(store.get_max_events_per_stream)
        if cap is not None:
            report.cap = await in_thread(staging.apply_cap, cap)
        report.events, _, _ = await in_thread(staging.counts)
        progress.start("checking against the target" if dry_run else "importing", report.events)
        await _write(staging, store, batch_size, report, progress, retrier, cap)
        await _late_rejects(staging, source, reject, original=not dry_run)
        return report
    finally:
        staging.close()


class _Where:
    """Counts the sessions and streams of new events that come in (session, stream)
    order, and how many events the target held already its cap trims for them.

    ``heads`` holds what each stream held before this import wrote to it (filled in
    before its first new event is written; see :meth:`fetch`); ``cap`` is the store-wide
    cap, which applies to streams without one of their own.
    """

    def __init__(self, report: ImportReport, lookup: TargetLookup, cap: int | None) -> None:
        self.report = report
        self.lookup = lookup
        self.cap = cap
        self.heads: Heads = {}
        self.last: tuple[str, str] | None = None
        self.added = 0
        self._fetched: tuple[str, str] | None = None

    async def fetch(self, new: list[StagedEvent]) -> None:
        """Read the heads of the streams ``new`` starts writing to (in order, so each
        stream's is read once, before anything is written to it)."""
        keys: list[tuple[str, str]] = []
        for event in new:
            key = (event.session_id, event.stream_id)
            if key != self._fetched:
                keys.append(key)
                self._fetched = key
        if keys:
            self.heads.update(await self.lookup.heads(keys))

    def add(self, event: StagedEvent) -> None:
        key = (event.session_id, event.stream_id)
        if key != self.last:
            self.finish()
            if self.last is None or key[0] != self.last[0]:
                self.report.sessions += 1
            self.report.streams += 1
            self.last = key
        self.added += 1

    def finish(self) -> None:
        """Account for the stream new events went to last: what its cap trims."""
        if self.last is None:
            return
        held, own_cap = self.heads.pop(self.last, (0, None))
        limit = own_cap if own_cap is not None else self.cap
        if limit is not None and held:
            trimmed = min(held, max(0, held + self.added - limit))
            if trimmed:
                self.report.trimmed += trimmed
                self.report.trimmed_streams += 1
        self.added = 0


async def _write(
    staging: Staging,
    store: EventStore,
    batch_size: int,
    report: ImportReport,
    progress: ProgressSink,
    retrier: OutageRetrier,
    cap: int | None,
) -> None:
    """Check each staged event against the target (lookups retried through an outage);
    feed the new ones to a worker in order (for a dry run, only count them); account for
    each as it commits."""
    batches = staging.ordered(batch_size)
    pending: deque[tuple[StagedEvent, asyncio.Future[StoredEvent]]] = deque()
    lookup = TargetLookup(store)
    report.checked = lookup.checks
    where = _Where(report, lookup, cap)

    def settle_done() -> None:
        settled = 0
        while pending and pending[0][1].done():
            event, future = pending.popleft()
            _account(event, future, report, staging, where)
            settled += 1
        progress.advance(settled)

    async def fresh(staged: list[StagedEvent]) -> list[StagedEvent]:
        held = await retrier.call(lookup.held, staged)
        new: list[StagedEvent] = []
        for event in staged:
            found = held.get((event.session_id, event.event_id))
            if found is None:
                new.append(event)
            elif found[0] == event.stream_id and same_content(found[1], event.text):
                report.present += 1
            else:
                what = "stream" if found[0] != event.stream_id else "data"
                report.conflicts += 1
                await in_thread(
                    staging.add_late_reject,
                    event,
                    f"event id {event.event_id!r} of session {event.session_id!r} is already "
                    f"in the target with different {what}",
                )
        progress.advance(len(staged) - len(new))
        await retrier.call(where.fetch, new)
        return new

    if report.dry_run:
        while (staged := await in_thread(next, batches, None)) is not None:
            new = await fresh(staged)
            for event in new:
                report.new += 1
                where.add(event)
            progress.advance(len(new))
        where.finish()
        return
    # A queue of two batches keeps the worker busy while the next batch is fetched, and
    # bounds memory: submit() waits for room.
    async with PersistenceWorker(
        store, max_batch=batch_size, max_queue=2 * batch_size, retry_timeout=RETRY_SECONDS
    ) as worker:
        while (staged := await in_thread(next, batches, None)) is not None:
            new = await fresh(staged)
            for event, request in zip(new, _requests(new), strict=True):
                pending.append((event, await worker.submit(request)))
            settle_done()
        await worker.flush()
        settle_done()
    where.finish()


def _account(
    event: StagedEvent,
    future: asyncio.Future[StoredEvent],
    report: ImportReport,
    staging: Staging,
    where: _Where,
) -> None:
    error = future.exception()
    if error is None:
        report.new += 1
        where.add(event)
    elif isinstance(error, (StoreUnavailableError, StoreClosedError)):
        # Not this event's fault: the target is gone; stop (a re-run resumes).
        raise error
    elif isinstance(error, EventStoreError):
        if isinstance(error, DuplicateEventError):
            report.conflicts += 1
        staging.add_late_reject(event, f"the target store refused it: {error}")
    else:
        raise error


async def _late_rejects(
    staging: Staging, source: Source, reject: Callable[[Reject], None], *, original: bool
) -> None:
    """Report the rejects kept for the end, each with its input as it was (``original``;
    else as parsed)."""
    chunks = staging.late_rejects()
    while (chunk := await in_thread(next, chunks, None)) is not None:
        found: dict[int, str] = {}
        if original:
            async for pairs in source.originals(iter([r.position for r in chunk])):
                found.update(pairs)
        for item in chunk:
            text = found.get(item.position)
            reject(item if text is None else Reject(item.position, item.reason, text))


def _requests(staged: list[StagedEvent]) -> list[StoreEvent]:
    return [
        StoreEvent(
            e.session_id, e.stream_id, e.event_id, decode_data(e.text), timestamp=e.timestamp
        )
        for e in staged
    ]
