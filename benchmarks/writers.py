"""Append workloads shared by the append, trigger and peer benchmarks.

A writer appends batches of ``size`` events to one stream of its own session, one batch
per transaction, with fresh event ids; :meth:`StoreWriter.__call__` is a
:data:`benchmarks.measure.Work`.
"""

from __future__ import annotations

import itertools
import uuid

from benchmarks import workload
from benchmarks.raw import Event, RawPostgres, RawSqlite
from eventstore import EventStore, StoreEvent
from eventstore.codec import encode_data

_PAYLOADS = [workload.notification(n) for n in range(1000)]
_TEXTS = [encode_data(p) for p in _PAYLOADS]


def new_session(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


class StoreWriter:
    """Appends through the store: ``store_event`` for one event, ``apply`` for a batch."""

    def __init__(self, store: EventStore, size: int, *, session_id: str | None = None) -> None:
        self.store = store
        self.size = size
        self.session_id = session_id or new_session("ours")
        self.stream_id = "7"
        self._counter = itertools.count()

    def requests(self) -> list[StoreEvent]:
        return [
            StoreEvent(self.session_id, self.stream_id, f"7:{n}", _PAYLOADS[n % 1000])
            for n in itertools.islice(self._counter, self.size)
        ]

    async def __call__(self) -> int:
        if self.size == 1:
            (request,) = self.requests()
            await self.store.store_event(
                request.session_id, request.stream_id, request.event_id, request.data
            )
        else:
            results = await self.store.apply(self.requests())
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                raise failed[0]
        return self.size


class RawWriter:
    """Appends through the raw baseline, with JSON text prepared in advance."""

    def __init__(self, raw: RawSqlite | RawPostgres, size: int) -> None:
        self.raw = raw
        self.size = size
        self.session_id = new_session("raw")
        self._counter = itertools.count()

    def batch(self) -> list[Event]:
        return [
            Event(self.session_id, "7", f"7:{n}", _TEXTS[n % 1000])
            for n in itertools.islice(self._counter, self.size)
        ]

    async def __call__(self) -> int:
        return await self.raw.append(self.batch())
