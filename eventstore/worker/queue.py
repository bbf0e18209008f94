"""The bounded hand-off between many producers and the one committing task."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from eventstore.errors import StoreClosedError

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """A FIFO of at most ``capacity`` items that one consumer empties in batches.

    :meth:`put` waits while the queue is full, so producers can never make it grow past
    ``capacity`` (backpressure, not loss). :meth:`take` hands the consumer up to
    ``max_items`` items at once. After :meth:`close`, :meth:`put` raises
    :class:`~eventstore.errors.StoreClosedError` (also to producers that were still
    waiting for room: their item was never queued), while :meth:`take` keeps handing out
    what is left and returns an empty list once the queue is empty.
    """

    def __init__(self, capacity: int) -> None:
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._closed = False
        lock = asyncio.Lock()
        self._room = asyncio.Condition(lock)
        self._ready = asyncio.Condition(lock)
        #: The most items the queue ever held at once.
        self.high_water = 0
        #: How many items were ever put; an item's number is this count right after it.
        self.enqueued = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def capacity(self) -> int:
        """The most items the queue holds."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def put(self, item: T) -> int:
        """Append ``item``, waiting for room, and return its number (1, 2, 3, ...).

        Raises ``StoreClosedError`` once the queue is closed. Items leave through
        :meth:`take` in number order.
        """
        async with self._room:
            await self._room.wait_for(lambda: self._closed or len(self._items) < self._capacity)
            if self._closed:
                raise StoreClosedError("the persistence worker is closed")
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self.enqueued += 1
            self._ready.notify()
            return self.enqueued

    async def take(self, max_items: int, max_delay: float) -> list[T]:
        """The oldest items, at most ``max_items``; ``[]`` only when closed and empty.

        Waits for a first item, then up to ``max_delay`` seconds for the batch to fill.
        """
        async with self._ready:
            await self._ready.wait_for(lambda: self._closed or bool(self._items))
            if max_delay > 0 and len(self._items) < max_items and not self._closed:
                try:
                    await asyncio.wait_for(
                        self._ready.wait_for(lambda: self._closed or len(self._items) >= max_items),
                        max_delay,
                    )
                except asyncio.TimeoutError:
                    pass
            batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            # notify_all, not notify(n): a producer cancelled right after being woken would
            # swallow its wake-up and leave another producer asleep next to free room.
            self._room.notify_all()
            return batch

    def drain_nowait(self) -> list[T]:
        """Remove and return everything queued, without waiting (for abandoning work)."""
        items = list(self._items)
        self._items.clear()
        return items

    async def close(self) -> None:
        """Refuse further items and wake everyone waiting."""
        async with self._room:
            self._closed = True
            self._room.notify_all()
            self._ready.notify_all()
