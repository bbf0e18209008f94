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
    margin: :func:`~eventstore.mcp.resumable_app` requires twice). A failed round
    (database away) is logged and retried at the next interval. Leaving the block stops
    the task.
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
    while True:
        # Touch first: this round's pruning must never see a session served here as idle
        # (and a round whose heartbeat failed does not prune).
        touched = live_sessions is None or await _touch(
            store, list(live_sessions()), interval_seconds
        )
        if idle_ms is not None and touched:
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


async def _touch(store: EventStore, session_ids: list[str], interval_seconds: float) -> bool:
    try:
        for start in range(0, len(session_ids), _TOUCH_CHUNK):
            await store.touch_sessions(session_ids[start : start + _TOUCH_CHUNK])
    except EventStoreError as exc:
        log.warning(
            "marking %d live sessions active failed (retrying in %ss): %s",
            len(session_ids),
            interval_seconds,
            exc,
        )
        return False
    return True
