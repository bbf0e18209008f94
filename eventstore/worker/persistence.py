""":class:`PersistenceWorker`: one task that group-commits every write to a store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, overload

from eventstore.codec import check_id, check_seconds
from eventstore.errors import InvalidInputError, StoreClosedError, StoreUnavailableError
from eventstore.events import StoredEvent
from eventstore.requests import (
    ClearSession,
    ClearStream,
    StoreEvent,
    UpdateLastEventId,
    WriteRequest,
)
from eventstore.store import EventStore
from eventstore.worker.queue import BatchQueue
from eventstore.worker.requests import Flush, PersistenceRequest, StreamKey, stream_key
from eventstore.worker.retry import (
    DEFAULT_INITIAL_SECONDS,
    DEFAULT_MAXIMUM_SECONDS,
    OutageRetrier,
)
from eventstore.worker.stats import StatsRecorder, WorkerStats

log = logging.getLogger("eventstore.worker")

#: Largest accepted ``max_batch``. A batch allocates seqs with one multi-row statement of
#: six parameters per stream; 5,000 streams stay below the 32,766 bound parameters that
#: both SQLite and asyncpg accept in one statement.
MAX_BATCH_LIMIT = 5_000

# What a request ended with: its result, or the exception its awaitable raises.
_Outcome = StoredEvent | int | None | BaseException


@dataclass(slots=True)
class _Entry:
    request: PersistenceRequest
    future: asyncio.Future[Any]
    key: StreamKey | None


class PersistenceWorker:
    """Owns the write path to ``store``: a bounded queue and one task that commits it.

    **Submitting.** :meth:`submit` queues a :data:`PersistenceRequest` and returns, once
    it is queued, a future that resolves when that request is committed: to the
    :class:`~eventstore.StoredEvent` for ``StoreEvent``, the number of events removed for
    ``ClearStream``/``ClearSession``, ``None`` for ``UpdateLastEventId`` and
    :class:`Flush` -- or raises that request's own error. :meth:`store_event`,
    :meth:`update_last_event_id`, :meth:`clear_stream`, :meth:`clear_session` and
    :meth:`flush` submit and wait in one call. A request that is not a request or has
    unusable ids raises :class:`~eventstore.errors.InvalidInputError` from
    :meth:`submit` and is never queued; bad ``data`` fails that request's future. The
    request is committed as submitted: do not mutate ``data`` until the future resolves.

    **Group commit.** The task takes everything queued, up to ``max_batch`` requests
    (waiting at most ``max_delay`` seconds for a batch to fill, unless a :meth:`flush`
    or a read through the worker waits on what is queued), and commits it with
    :meth:`EventStore.apply` -- one transaction, multi-row statements. Batches commit one
    after another in queue order, so requests for a stream commit in the order they
    were queued, never reordered around a ``ClearStream``/``ClearSession`` of it.

    **Backpressure.** At most ``max_queue`` requests wait in the queue (plus the batch
    being committed); :meth:`submit` waits for room. Memory stays bounded however fast
    producers are, and nothing is ever dropped: every queued request's future resolves.

    **Failures.** A request that fails on its own (invalid data, an event id taken by
    other content, an ``UpdateLastEventId`` for a missing stream) fails alone; when the
    database rejects a whole batch, the batch is split in halves until the culprit is
    alone, and every other request commits. Transient errors
    (:class:`~eventstore.errors.StoreUnavailableError`: connection lost, server
    restarting, SQLite busy) are retried with jittered exponential backoff
    (``retry_initial`` doubling up to ``retry_max`` seconds) until the database has been
    unreachable for ``retry_timeout`` seconds; only then do the waiting requests fail
    with ``StoreUnavailableError``. Retrying is safe: an event already committed by an
    attempt whose acknowledgement was lost is recognised by its id, never duplicated.

    **Durability and reads.** A resolved future means committed, so any read through
    the store afterwards sees the write. Reads through the worker
    (:meth:`get_events_after`, :meth:`get_stream_events`) also see requests only
    submitted: they first wait until every write queued so far for that stream (or its
    session) is settled -- a flush of that one stream, not of the whole queue.

    **Lifecycle.** ``async with PersistenceWorker(store) as worker:`` starts the task
    and, on exit, drains it. :meth:`close` refuses new requests (they raise
    :class:`~eventstore.errors.StoreClosedError`, as do producers still waiting for
    room: their request was never queued), commits everything queued, then stops. The
    worker starts by itself on first use and never closes ``store``. Cancelling a
    caller, or the future :meth:`submit` returned, only stops the waiting: a queued
    request is never withdrawn, and commits in its turn. If the task itself is cancelled
    (the event loop shutting down), every request not yet committed fails with
    ``StoreClosedError``.

    **Observability.** :attr:`stats` is a :class:`WorkerStats` snapshot; the logger
    ``eventstore.worker`` reports retries (WARNING), requests failed by an outage
    (ERROR) and batches (DEBUG).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        max_queue: int = 10_000,
        max_batch: int = 1_000,
        max_delay: float = 0.0,
        retry_timeout: float = 30.0,
        retry_initial: float = DEFAULT_INITIAL_SECONDS,
        retry_max: float = DEFAULT_MAXIMUM_SECONDS,
    ) -> None:
        if not isinstance(store, EventStore):
            raise InvalidInputError(f"store must be an EventStore, not {type(store).__name__}")
        _check_count("max_queue", max_queue, None)
        _check_count("max_batch", max_batch, MAX_BATCH_LIMIT)
        check_seconds("max_delay", max_delay, allow_zero=True)
        check_seconds("retry_timeout", retry_timeout, allow_zero=True)
        # A zero first wait would double to zero: retries with no pause at all.
        check_seconds("retry_initial", retry_initial, allow_zero=False)
        check_seconds("retry_max", retry_max, allow_zero=True)
        if retry_max < retry_initial:
            raise InvalidInputError(
                f"retry_max ({retry_max}) must be at least retry_initial ({retry_initial})"
            )
        self.store = store
        self.max_batch = max_batch
        self.max_delay = float(max_delay)
        self._queue: BatchQueue[_Entry] = BatchQueue(max_queue)
        self._stats = StatsRecorder()
        self._retrier = OutageRetrier(
            timeout=retry_timeout,
            initial=retry_initial,
            maximum=retry_max,
            on_retry=self._count_retry,
        )
        self._task: asyncio.Task[None] | None = None
        self._reported_closed_store = False
        # Read-your-writes bookkeeping: queue numbers up to _settled are settled, and
        # _last_write holds the number of the newest unsettled write per stream.
        self._settled = 0
        self._last_write: dict[StreamKey, int] = {}
        # Set (and replaced by a fresh one) whenever _settled grows.
        self._progressed = asyncio.Event()

    def __repr__(self) -> str:
        state = "closed" if self._queue.closed else "running" if self._task else "idle"
        return f"PersistenceWorker({self.store!r}, {state}, queued={len(self._queue)})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the committing task (idempotent; :meth:`submit` calls it)."""
        if self._queue.closed:
            raise StoreClosedError("the persistence worker is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="eventstore-persistence-worker"
            )
            self._task.add_done_callback(self._stopped)
            log.debug("persistence worker started on %r", self.store)

    async def close(self) -> None:
        """Refuse new requests, commit everything queued, stop. Idempotent.

        Cancelling a ``close()`` only stops waiting; the drain goes on.
        """
        self._queue.close()
        if self._task is not None:
            if not self._task.done():
                # (A done task may be of a loop that is gone: asyncio.wait would refuse it.)
                await asyncio.wait({self._task})
            if not self._task.cancelled() and (error := self._task.exception()) is not None:
                raise error

    async def __aenter__(self) -> PersistenceWorker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def stats(self) -> WorkerStats:
        """A snapshot of the counters (see :class:`WorkerStats`)."""
        return self._stats.snapshot(len(self._queue), self._queue.high_water, self._queue.capacity)

    # -- submitting -----------------------------------------------------------------------

    @overload
    async def submit(self, request: StoreEvent) -> asyncio.Future[StoredEvent]: ...
    @overload
    async def submit(self, request: ClearStream | ClearSession) -> asyncio.Future[int]: ...
    @overload
    async def submit(self, request: UpdateLastEventId | Flush) -> asyncio.Future[None]: ...

    async def submit(self, request: PersistenceRequest) -> asyncio.Future[Any]:
        """Queue ``request`` (waiting for room) and return the future of its outcome."""
        key = stream_key(request)
        if self._task is None:
            await self.start()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        number = await self._queue.put(_Entry(request, future, key))
        if key is not None:
            self._last_write[key] = number
            self._stats.submitted += 1
        else:
            self._queue.hurry()  # a Flush: its caller waits now, not after max_delay
        return future

    async def store_event(
        self, session_id: str, stream_id: str, event_id: str, data: Any
    ) -> StoredEvent:
        """Append one event and return it once committed (see ``EventStore.store_event``)."""
        future = await self.submit(StoreEvent(session_id, stream_id, event_id, data))
        return await future

    async def update_last_event_id(self, session_id: str, stream_id: str, event_id: str) -> None:
        """Record the client's acknowledged event of a stream, once committed."""
        future = await self.submit(UpdateLastEventId(session_id, stream_id, event_id))
        await future

    async def clear_stream(self, session_id: str, stream_id: str) -> int:
        """Drop one stream once everything queued before is committed; events removed."""
        future = await self.submit(ClearStream(session_id, stream_id))
        return await future

    async def clear_session(self, session_id: str) -> int:
        """Drop every stream of a session, after what was queued before; events removed."""
        future = await self.submit(ClearSession(session_id))
        return await future

    async def flush(self) -> None:
        """Wait until every request queued before this call is settled."""
        future = await self.submit(Flush())
        await future

    # -- reads that see queued writes -----------------------------------------------------

    async def settle_stream(self, session_id: str, stream_id: str) -> None:
        """Wait until every write queued so far for this stream or its session is settled."""
        stream = (check_id("session_id", session_id), check_id("stream_id", stream_id))
        target = max(self._last_write.get(stream, 0), self._last_write.get((stream[0], None), 0))
        if self._settled < target:
            self._queue.hurry()  # a reader waits: no max_delay for a fuller batch
        while self._settled < target:
            await self._progressed.wait()

    async def get_events_after(
        self,
        session_id: str,
        stream_id: str,
        after_event_id: str,
        *,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        """``store.get_events_after`` once this stream's queued writes are settled."""
        await self.settle_stream(session_id, stream_id)
        return await self.store.get_events_after(session_id, stream_id, after_event_id, limit=limit)

    async def get_stream_events(
        self, session_id: str, stream_id: str, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """``store.get_stream_events`` once this stream's queued writes are settled."""
        await self.settle_stream(session_id, stream_id)
        return await self.store.get_stream_events(session_id, stream_id, limit=limit)

    # -- the committing task --------------------------------------------------------------

    async def _run(self) -> None:
        batch: list[_Entry] = []
        try:
            while batch := await self._queue.take(self.max_batch, self.max_delay):
                await self._commit(batch)
                self._mark_settled(batch)
                batch = []
            log.debug("persistence worker drained and stopped")
        except BaseException:
            self._abandon(batch)
            raise

    async def _commit(self, batch: list[_Entry]) -> None:
        writes = [
            (entry.future, entry.request) for entry in batch if not isinstance(entry.request, Flush)
        ]
        if writes:
            self._stats.committing = len(writes)
            try:
                outcomes = await self._apply_isolated([request for _, request in writes])
            finally:
                self._stats.committing = 0
            for (future, _), outcome in zip(writes, outcomes, strict=True):
                self._settle(future, outcome)
        for entry in batch:
            if isinstance(entry.request, Flush) and not entry.future.done():
                entry.future.set_result(None)

    async def _apply_isolated(self, requests: Sequence[WriteRequest]) -> list[_Outcome]:
        """Commit ``requests``; one outcome each. Splits a batch the database rejects."""
        started = time.monotonic()
        try:
            results = await self._retrier.call(self.store.apply, requests)
        except (StoreUnavailableError, StoreClosedError) as exc:
            # Unavailable past the retry deadline, or closed: nothing any request did.
            if isinstance(exc, StoreClosedError):
                # Every later batch fails the same way: one line says it for all.
                if not self._reported_closed_store:
                    log.error("the store is closed; queued requests fail: %s", exc)
                    self._reported_closed_store = True
            else:
                log.error("%d request(s) failed: %s", len(requests), exc)
            return [_copy_error(exc) for _ in requests]
        except Exception as exc:
            return await self._split(requests, exc)
        self._stats.record_commit(len(requests), time.monotonic() - started)
        log.debug("committed %d request(s)", len(requests))
        return list(results)

    async def _split(self, requests: Sequence[WriteRequest], exc: Exception) -> list[_Outcome]:
        if len(requests) == 1:
            log.warning("request %r failed: %s", requests[0], exc)
            return [exc]
        log.warning(
            "a batch of %d requests failed (%s); splitting it to isolate the culprit",
            len(requests),
            exc,
        )
        middle = len(requests) // 2
        first = await self._apply_isolated(requests[:middle])
        return first + await self._apply_isolated(requests[middle:])

    def _count_retry(self) -> None:
        self._stats.retries += 1

    def _settle(self, future: asyncio.Future[Any], outcome: _Outcome) -> None:
        if isinstance(outcome, BaseException):
            self._stats.failed += 1
            if not future.done():
                future.set_exception(outcome)
        else:
            self._stats.committed += 1
            if not future.done():
                future.set_result(outcome)

    def _mark_settled(self, batch: list[_Entry]) -> None:
        first = self._settled + 1
        self._settled += len(batch)
        for number, entry in enumerate(batch, start=first):
            if entry.key is not None and self._last_write.get(entry.key) == number:
                del self._last_write[entry.key]
        progressed, self._progressed = self._progressed, asyncio.Event()
        progressed.set()

    def _stopped(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never ran _run's cleanup: without this,
        # what was queued would wait forever.
        if task.cancelled():
            self._abandon([])

    def _abandon(self, in_flight: list[_Entry]) -> None:
        """The task is going away (cancelled): fail everything it will never commit."""
        self._queue.close()
        left = in_flight + self._queue.drain_nowait()
        error = StoreClosedError(
            "the persistence worker was stopped before this request was confirmed "
            "committed (it may or may not have been)"
        )
        for entry in left:
            if entry.key is not None:
                self._stats.failed += 1
            if not entry.future.done():
                entry.future.set_exception(_copy_error(error))
                # The line below says it for all of them: without this, asyncio prints a
                # "Future exception was never retrieved" traceback for every future that
                # no caller awaits any more (a worker left unclosed at exit: one each).
                entry.future.exception()
        if left:
            log.error(
                "persistence worker stopped with %d request(s) unconfirmed (close() it, or "
                "use it as an async context manager, to commit what is queued)",
                len(left),
            )
        self._mark_settled(left)


def _check_count(name: str, value: object, upper: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive int, not {value!r}")
    if upper is not None and value > upper:
        raise InvalidInputError(f"{name} must be at most {upper}, not {value}")


def _copy_error(exc: StoreUnavailableError | StoreClosedError) -> BaseException:
    """A fresh exception per future: one instance raised by many awaiters would collect
    all their tracebacks."""
    copy = type(exc)(str(exc))
    copy.__cause__ = exc
    return copy
