"""An import rides out a PostgreSQL restart while it checks events against the target."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from eventstore import open_store
from eventstore.transfer import DumpFile, NoProgress, import_events
from tests.legacy.helpers import DumpLines, stored
from tests.pgcluster import PostgresCluster


class RestartWhenImporting(NoProgress):
    """Stops the server as the import's write phase begins -- its first step is a lookup
    against the target -- and starts it again 1.5 s later."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster
        self.restart: threading.Timer | None = None

    def start(self, phase: str, total: int | None, unit: str = "events") -> None:
        if phase == "importing" and self.restart is None:
            self.cluster.stop()
            self.restart = threading.Timer(1.5, self.cluster.start)
            self.restart.start()


async def test_lookups_ride_out_a_postgresql_restart(
    tmp_path: Path, own_postgres_cluster: PostgresCluster
) -> None:
    url = await asyncio.to_thread(own_postgres_cluster.create_database)
    dump = DumpLines(tmp_path / "dump.jsonl")
    for i in range(2000):
        dump.add(f"s{i % 4}", f"e{i}", {"i": i}, 1_000 + i)
    progress = RestartWhenImporting(own_postgres_cluster)

    async with open_store(url) as store:
        try:
            report = await import_events(
                DumpFile(str(dump.write())), store, batch_size=500, progress=progress
            )
        finally:
            assert progress.restart is not None, "the import never reached its write phase"
            await asyncio.to_thread(progress.restart.join)

    assert (report.new, report.present, report.rejected) == (2000, 0, 0)
    rows = await asyncio.to_thread(stored, url)
    assert sorted(row[3] for row in rows) == sorted(f"e{i}" for i in range(2000))
