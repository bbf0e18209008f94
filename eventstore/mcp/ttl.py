"""TTL cleanup: sessions left behind by a dead process expire; live ones send a heartbeat."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

from eventstore.errors import EventStoreError, InvalidInputError
from eventstore.store import EventStore

log = logging.getLogger(__name__)

#: Sessions touched per ``touch_sessions`` call (keeps each statement small).
_TOUCH_CHUNK = 500
#: First wait before a failed heartbeat is retried; it doubles up to the interval.
HEARTBEAT_RETRY_SECONDS = 0.5


@asynccontextmanager
async def prune_idle_sessions_every(
    store: EventStore,
    *,
    idle_seconds: float | None,
    interval_seconds: float,
    live_sessions: Callable[[], Collection[str]] | None = None,
) -> AsyncIterator[None]:
    """Keep live sessions fresh and drop idle ones, in the background.

    Every ``interval_seconds`` (first right away), the sessions ``live_sessions()`` names
    -- those this process still serves -- are touched
    (:meth:`~eventstore.EventStore.touch_sessions`: a heartbeat, so that no pruner, this
    one, another replica's or ``eventstore prune``, takes a session for abandoned just
    because it had nothing to send), and then, unless ``idle_seconds`` is ``None``,
    sessions none of whose streams changed in the last ``idle_seconds`` are dropped.
    Any pruner's ``idle_seconds`` must exceed the heartbeat's ``interval_seconds`` (by a
    margin: :func:`~eventstore.mcp.resumable_app` requires twice). A failed heartbeat
    (database away) is logged once and retried after :data:`HEARTBEAT_RETRY_SECONDS`,
    doubling up to the interval, so live sessions are fresh again moments after an
    outage; the round that succeeds after one does not prune, since other replicas'
    heartbeats may not be back yet. A pruner whose idle time is shorter than an outage
    (plus those moments) still sees every live session as idle: idle times should
    exceed the longest outage to ride out. Leaving the block stops the task.
    """
    if idle_seconds is not None and not (math.isfinite(idle_seconds) and idle_seconds >= 0):
        raise InvalidInputError(f"idle_seconds must be None or >= 0, not {idle_seconds!r}")
    if not (math.isfinite(interval_seconds) and interval_seconds > 0):
        raise InvalidInputError(f"interval_seconds must be > 0, not {interval_seconds!r}")
    idle_ms = None if idle_seconds is None else int(idle_seconds * 1000)
    task = asyncio.create_task(_housekeep(store, idle_ms, interval_seconds, live_sessions))
    try:
        yield
    finally:
        task.cancel()
        # gather() returns the task's own CancelledError but still propagates a
        # cancellation of the caller.
        await asyncio.gather(task, return_exceptions=True)


async def _housekeep(
    store: EventStore,
    idle_ms: int | None,
    interval_seconds: float,
    live_sessions: Callable[[], Collection[str]] | None,
) -> None:
    failed = 0  # heartbeats failed in a row (the database is away)
    while True:
        # Touch first: this round's pruning must never see a session served here as idle
        # (and a round whose heartbeat failed does not prune).
        touched = live_sessions is None or await _touch(
            store, list(live_sessions()), first_failure=failed == 0
        )
        if not touched:
            failed += 1
            # Soon after the database is back every live session must be fresh again:
            # an outage longer than a pruner's idle time made them all look idle.
            await asyncio.sleep(min(interval_seconds, HEARTBEAT_RETRY_SECONDS * 2 ** (failed - 1)))
            continue
        if failed:
            log.info("marked the live sessions active again, after %d failed attempt(s)", failed)
            # Other replicas' heartbeats may not have come back yet: pruning now would
            # drop their live sessions. Prune from the next round on.
            failed = 0
        elif idle_ms is not None:
            try:
                removed = await store.prune_idle_sessions(idle_ms)
            except EventStoreError as exc:
                log.warning(
                    "pruning idle sessions failed (retrying in %ss): %s", interval_seconds, exc
                )
            else:
                if removed:
                    log.info("pruned %d idle sessions", removed)
        await asyncio.sleep(interval_seconds)


async def _touch(store: EventStore, session_ids: list[str], *, first_failure: bool) -> bool:
    try:
        for start in range(0, len(session_ids), _TOUCH_CHUNK):
            await store.touch_sessions(session_ids[start : start + _TOUCH_CHUNK])
    except EventStoreError as exc:
        # One warning per outage; the retries, every second or two, at debug level.
        log.log(
            logging.WARNING if first_failure else logging.DEBUG,
            "marking %d live sessions active failed (retrying until it works): %s",
            len(session_ids),
            exc,
        )
        return False
    return True
