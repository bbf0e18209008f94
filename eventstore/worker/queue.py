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

    Waiting is on plain futures, as in :class:`asyncio.Queue`: a put into a queue with
    room never yields, and every event of every producer passes through here.
    """

    def __init__(self, capacity: int) -> None:
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._closed = False
        # Producers waiting for room, and the consumer waiting for items (or a full batch).
        self._putters: deque[asyncio.Future[None]] = deque()
        self._taker: asyncio.Future[None] | None = None
        self._wanted = 1
        # Someone waits on what is queued: the next take does not wait for a fuller batch.
        self._hurried = False
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
        while len(self._items) >= self._capacity and not self._closed:
            room = asyncio.get_running_loop().create_future()
            self._putters.append(room)
            try:
                await room
            except BaseException:
                room.cancel()
                if room in self._putters:
                    self._putters.remove(room)
                raise
        if self._closed:
            raise StoreClosedError("the persistence worker is closed")
        items = self._items
        items.append(item)
        if len(items) > self.high_water:
            self.high_water = len(items)
        self.enqueued += 1
        taker = self._taker
        if taker is not None and len(items) >= self._wanted and not taker.done():
            taker.set_result(None)
        return self.enqueued

    async def take(self, max_items: int, max_delay: float) -> list[T]:
        """The oldest items, at most ``max_items``; ``[]`` only when closed and empty.

        Waits for a first item, then up to ``max_delay`` seconds for the batch to fill
        (not at all once :meth:`hurry` was called).
        """
        while not self._items and not self._closed:
            await self._wait_for(1)
        if max_delay > 0 and len(self._items) < max_items and not self._closed:
            try:
                await asyncio.wait_for(self._wait_for(max_items), max_delay)
            except asyncio.TimeoutError:
                pass
        items = self._items
        batch = [items.popleft() for _ in range(min(max_items, len(items)))]
        self._hurried = False
        # Every waiting producer: one cancelled after being woken would otherwise swallow
        # its wake-up and leave another asleep next to free room.
        self._wake_putters()
        return batch

    def hurry(self) -> None:
        """Cut the wait for a fuller batch short: the next take, or the one waiting now,
        hands out what is queued at once (a flush or a read waits on it)."""
        self._hurried = True
        taker = self._taker
        if taker is not None and self._items and not taker.done():
            taker.set_result(None)

    async def _wait_for(self, count: int) -> None:
        """Until ``count`` items are queued (or the queue is closed, or hurried with some)."""
        while len(self._items) < count and not self._closed and not (self._hurried and self._items):
            self._wanted = count
            self._taker = asyncio.get_running_loop().create_future()
            try:
                await self._taker
            finally:
                self._taker = None

    def _wake_putters(self) -> None:
        putters, self._putters = self._putters, deque()
        for room in putters:
            if not room.done():
                room.set_result(None)

    def drain_nowait(self) -> list[T]:
        """Remove and return everything queued, without waiting (for abandoning work)."""
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        """Refuse further items and wake everyone waiting."""
        self._closed = True
        self._wake_putters()
        if self._taker is not None and not self._taker.done():
            self._taker.set_result(None)
