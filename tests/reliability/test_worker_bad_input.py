"""The bad-input catalogue through the :class:`~eventstore.worker.PersistenceWorker`.

Every bad request of the catalogue is submitted between two good appends, all without
waiting, so group commit puts good and bad requests in the same batches. Each bad request
must fail alone -- refused by ``submit`` before it is queued, or its own future failing
with the catalogue's error -- while the worker keeps running and every good append
commits, in submission order, with gap-free seqs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eventstore import InvalidInputError, StoredEvent, StoreEvent, open_store
from eventstore.worker import PersistenceWorker
from tests.reliability.catalogue import BATCHABLE, NOT_JSON


async def test_bad_requests_fail_alone_and_the_worker_keeps_going(store_url: str) -> None:
    async with (
        open_store(store_url) as store,
        PersistenceWorker(store, max_batch=64, max_delay=0.005) as worker,
    ):
        good: list[asyncio.Future[StoredEvent]] = []
        bad: list[tuple[str, type[Exception], asyncio.Future[Any] | None]] = []
        for name, case in BATCHABLE.items():
            good.append(await worker.submit(StoreEvent("s", "w", f"{name}/before", name)))
            try:
                bad.append((name, case.error, await worker.submit(case.request)))
            except InvalidInputError:
                bad.append((name, case.error, None))  # refused before it was queued
            good.append(await worker.submit(StoreEvent("s", "w", f"{name}/after", name)))
        await worker.flush()

        failures = []
        for name, error, future in bad:
            if future is None:
                continue
            assert future.done(), name
            exc = future.exception()
            if not isinstance(exc, error):
                failures.append(f"{name}: {exc!r}")
        assert not failures, "\n".join(failures)
        stored = [future.result() for future in good]
        assert [event.seq for event in stored] == list(range(1, len(good) + 1))
        replay = await worker.get_stream_events("s", "w")
        assert [event.id for event in replay] == [event.id for event in stored]
        # Still serving after all of it.
        assert (await worker.store_event("s", "w", "last", 1)).seq == len(good) + 1
        assert worker.stats.failed >= sum(1 for _, _, future in bad if future is not None)


@pytest.mark.parametrize("name", ["list-10k-deep", "int-5000-digits", "nan", "tuple"])
async def test_a_lone_bad_payload_fails_its_future_not_the_worker(
    store_url: str, name: str
) -> None:
    async with (
        open_store(store_url) as store,
        PersistenceWorker(store) as worker,
    ):
        with pytest.raises(InvalidInputError):
            await worker.store_event("s", "a", "bad", NOT_JSON[name])
        assert (await worker.store_event("s", "a", "good", 1)).seq == 1
