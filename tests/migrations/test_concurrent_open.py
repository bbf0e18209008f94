"""Replicas starting together on one empty PostgreSQL database all open it.

One creates the schema; the others used to see it half built (``SchemaError: the
database is at revision 0002``) or deadlock with it: a process waiting for the migration
lock inside a transaction blocks the run's ``CREATE INDEX CONCURRENTLY``, which waits for
every transaction in progress.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PostgresServer

_REPLICA = """
import asyncio, sys
from eventstore import open_store

async def main() -> None:
    async with open_store(sys.argv[1]) as store:
        await store.store_event("s", "a", "e" + sys.argv[2], 1)

asyncio.run(main())
"""


def test_replicas_opening_an_empty_database_together_all_succeed(
    postgres_server: PostgresServer,
) -> None:
    for _ in range(4):
        url = postgres_server.new_database()
        replicas = [
            subprocess.Popen(
                [sys.executable, "-c", _REPLICA, url, str(n)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(3)
        ]
        outcomes = [(p.wait(timeout=120), p.communicate()[1][-400:]) for p in replicas]
        assert all(code == 0 for code, _ in outcomes), outcomes
