"""``eventstore demo`` itself: it runs, its checks pass, and they can fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventstore.mcp import binding
from eventstore.mcp.adapter import SessionEventStore
from eventstore.mcp.demo.scenario import run_demo
from eventstore.store import EventStore
from eventstore.worker import PersistenceWorker

EVENTSTORE = Path(sys.executable).with_name("eventstore")


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EVENTSTORE), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_demo_passes_on_sqlite(sqlite_url: str) -> None:
    result = run_command("demo", "--url", sqlite_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 13 checks passed" in result.stdout
    assert "FAIL" not in result.stdout
    assert "replayed  progress 4/6  'A: step 4 of 6'" in result.stdout
    assert "Last-Event-ID: " in result.stdout


def test_demo_passes_on_postgresql(postgres_url: str) -> None:
    result = run_command("demo", "--url", postgres_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 13 checks passed" in result.stdout


def test_demo_rejects_a_pause_outside_the_call(sqlite_url: str) -> None:
    result = run_command("demo", "--url", sqlite_url, "--steps", "3", "--pause-after", "3")
    assert result.returncode == 2
    assert "--pause-after" in result.stderr


class OneSharedSession(SessionEventStore):
    """What the SDK's example store amounts to: every session in one namespace."""

    def __init__(
        self, store: EventStore, session_id: str, *, worker: PersistenceWorker | None = None
    ) -> None:
        super().__init__(store, "everyone", worker=worker)


async def test_demo_checks_catch_the_cross_session_replay_bug(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binding, "SessionEventStore", OneSharedSession)
    report = await run_demo(sqlite_url)
    failed = [check.text for check in report.checks if not check.passed]
    assert not report.passed
    assert any("keeps each session's stream apart" in text for text in failed)
    assert any("sent on B's session replays nothing" in text for text in failed)
