"""The process the SIGKILL test kills: producers writing through a worker, forever.

Run as ``python -m tests.worker.crash_child URL ACK_FILE``. After each acknowledged
(durable) event it appends ``event_id stream_id seq`` to ACK_FILE with a plain
``write(2)``: once that returns the line is the kernel's, so it survives SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import sys

from eventstore import PersistenceWorker, open_store

PRODUCERS = 16
STREAMS = 8


async def main(url: str, ack_path: str) -> None:
    acks = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    async with open_store(url) as store, PersistenceWorker(store) as worker:

        async def producer(p: int) -> None:
            i = 0
            while True:
                event = await worker.store_event(
                    "s", f"st{p % STREAMS}", f"p{p}-{i}", {"p": p, "i": i}
                )
                os.write(acks, f"{event.id} {event.stream_id} {event.seq}\n".encode())
                i += 1

        await asyncio.gather(*(producer(p) for p in range(PRODUCERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
