"""SIGKILL of a process mid-write: every acknowledged event survives it."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from eventstore import open_store
from tests.worker import crash_child

ROOT = Path(__file__).resolve().parents[2]
ACKS_BEFORE_KILL = 1500


async def test_sigkill_loses_no_acknowledged_event(sql_url: str, tmp_path: Path) -> None:
    async with open_store(sql_url):
        pass  # the schema exists before the child races to create it
    ack_file = tmp_path / "acks"
    ack_file.touch()
    errors = tmp_path / "child-stderr"
    with errors.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.worker.crash_child",
            sql_url,
            str(ack_file),
            cwd=ROOT,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 120
        while ack_file.read_bytes().count(b"\n") < ACKS_BEFORE_KILL:
            assert child.returncode is None, errors.read_text()
            assert time.monotonic() < deadline, "the child acknowledged too few events"
            await asyncio.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    # Only whole lines count: the kill may land between two writes, never inside one.
    acked = [line.split() for line in ack_file.read_text().splitlines()]
    assert len(acked) >= ACKS_BEFORE_KILL

    async with open_store(sql_url) as store:
        stored = {
            e.id: e
            for st in range(crash_child.STREAMS)
            for e in await store.get_stream_events("s", f"st{st}")
        }
        missing = [event_id for event_id, _, _ in acked if event_id not in stored]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
        for event_id, stream_id, seq in acked:
            assert (stored[event_id].stream_id, stored[event_id].seq) == (stream_id, int(seq))
        for st in range(crash_child.STREAMS):
            seqs = [e.seq for e in stored.values() if e.stream_id == f"st{st}"]
            assert sorted(seqs) == list(range(1, len(seqs) + 1))
        # The store is usable after the crash.
        assert (await store.store_event("s", "after", "x", 1)).seq == 1
