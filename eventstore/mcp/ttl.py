"""TTL cleanup: the SDK never tells a store that a session is over, so idle ones expire."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventstore.errors import EventStoreError, InvalidInputError
from eventstore.store import EventStore

log = logging.getLogger(__name__)


@asynccontextmanager
async def prune_idle_sessions_every(
    store: EventStore, *, idle_seconds: float, interval_seconds: float
) -> AsyncIterator[None]:
    """Run :meth:`~eventstore.EventStore.prune_idle_sessions` in the background.

    Every ``interval_seconds`` (first right away) sessions none of whose streams changed
    in the last ``idle_seconds`` are dropped. Choose ``idle_seconds`` no shorter than the
    session manager's ``session_idle_timeout`` (the SDK's default is 30 minutes), or a
    session the SDK still serves may lose its history. A failed round (database away) is
    logged and retried at the next interval. Leaving the block stops the task.
    """
    if idle_seconds < 0 or interval_seconds <= 0:
        raise InvalidInputError(
            "idle_seconds must be >= 0 and interval_seconds > 0, "
            f"not {idle_seconds!r} and {interval_seconds!r}"
        )
    task = asyncio.create_task(_prune_forever(store, int(idle_seconds * 1000), interval_seconds))
    try:
        yield
    finally:
        task.cancel()
        # gather() returns the task's own CancelledError but still propagates a
        # cancellation of the caller.
        await asyncio.gather(task, return_exceptions=True)


async def _prune_forever(store: EventStore, idle_ms: int, interval_seconds: float) -> None:
    while True:
        try:
            removed = await store.prune_idle_sessions(idle_ms)
        except EventStoreError as exc:
            log.warning("pruning idle sessions failed (retrying in %ss): %s", interval_seconds, exc)
        else:
            if removed:
                log.info("pruned %d idle sessions", removed)
        await asyncio.sleep(interval_seconds)
