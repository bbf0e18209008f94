"""An import killed halfway (SIGKILL) or interrupted (Ctrl-C) resumes without duplicates."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from eventstore.sql.engine import normalize_url
from eventstore.sql.schema import events
from tests.legacy.helpers import DumpLines, Row, cli_command, cli_env, run_process, stored

SESSIONS = 20
PER_SESSION = 300
TOTAL = SESSIONS * PER_SESSION


def make_dump(path: Path) -> tuple[Path, list[Row]]:
    """A shuffled legacy dump and the rows the target must end up with."""
    rng = random.Random(7)
    dump = DumpLines(path)
    expected: list[Row] = []
    order = []
    for s in range(SESSIONS):
        for i in range(PER_SESSION):
            order.append((f"s{s:02d}", f"e{i:04d}", {"s": s, "i": i, "pad": "x" * 50}, 10_000 + i))
            expected.append((f"s{s:02d}", "_default", i + 1, f"e{i:04d}", order[-1][2], 10_000 + i))
    rng.shuffle(order)
    for session_id, event_id, data, timestamp in order:
        dump.add(session_id, event_id, data, timestamp)
    return dump.write(), expected


async def _count(url: str) -> int:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(events)) or 0)
    except Exception:
        return 0  # the schema is not there yet
    finally:
        await engine.dispose()


def interrupt_halfway(dump: Path, url: str, sig: signal.Signals) -> tuple[int, str]:
    """Start the import, send ``sig`` once some events are stored; its exit code, stderr."""
    process = subprocess.Popen(
        [*cli_command(), "import", str(dump), "--url", url, "--batch-size", "50"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if asyncio.run(_count(url)) >= TOTAL // 4:
            process.send_signal(sig)
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_interrupted_import_resumes_with_each_event_once(
    tmp_path: Path, sql_url: str, sig: signal.Signals
) -> None:
    dump, expected = make_dump(tmp_path / "dump.jsonl")

    returncode, stderr = interrupt_halfway(dump, sql_url, sig)

    partial = stored(sql_url)
    assert 0 < len(partial) < TOTAL, "the import was not stopped halfway"
    if sig is signal.SIGKILL:
        assert returncode == -signal.SIGKILL
    else:
        assert returncode == 130
        assert "run the same command again" in stderr
    # What survived is a prefix of each session, in order, numbered from 1.
    assert {json.dumps(row) for row in partial} <= {json.dumps(row) for row in expected}
    for session_id in {row[0] for row in partial}:
        seqs = [row[2] for row in partial if row[0] == session_id]
        assert seqs == list(range(1, len(seqs) + 1))

    resumed = run_process("import", str(dump), "--url", sql_url, "--batch-size", "50")

    assert resumed.returncode == 0, resumed.stderr
    assert stored(sql_url) == expected
    # The re-run tells what the first run stored from what it adds.
    assert f"already present: {len(partial):,} events" in resumed.stdout
    assert f"imported: {TOTAL - len(partial):,} new events in " in resumed.stdout
