"""``eventstore demo`` itself: it runs, its checks pass, and they can fail."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.types import Receive, Scope, Send

from eventstore import open_store
from eventstore.cli import main
from eventstore.mcp import binding
from eventstore.mcp.adapter import SessionEventStore
from eventstore.mcp.demo import scenario
from eventstore.mcp.demo.loopback import serve_on_loopback
from eventstore.mcp.demo.scenario import run_demo
from eventstore.store import EventStore

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


@pytest.mark.parametrize("steps", ["0", "1", "-1"])
def test_demo_rejects_too_few_steps_by_name(sqlite_url: str, steps: str) -> None:
    result = run_command("demo", "--url", sqlite_url, "--steps", steps)
    assert result.returncode == 2
    assert "Invalid value for --steps: must be at least 2" in result.stderr


@pytest.mark.parametrize("steps", ["1001", "10000", "100000000000000000000"])
def test_demo_rejects_more_steps_than_it_can_run_in_time(sqlite_url: str, steps: str) -> None:
    # 10000 steps used to run into the demo's own time limit and report failed checks
    # as if the store had lost events; 10**20 ended in an OverflowError traceback.
    result = run_command("demo", "--url", sqlite_url, "--steps", steps)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for --steps: must be at most 1000, not {steps} (more would "
        "not finish within the demo's time limits)"
    )
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_demo_runs_the_fewest_steps_it_allows_without_a_pause_option(sqlite_url: str) -> None:
    # The default --pause-after (3) used to refuse --steps 2 and 3.
    result = run_command("demo", "--url", sqlite_url, "--steps", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 13 checks passed" in result.stdout


def test_demo_runs_the_most_steps_it_allows(sqlite_url: str) -> None:
    result = run_command("demo", "--url", sqlite_url, "--steps", "1000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 13 checks passed" in result.stdout


class OneSharedSession(SessionEventStore):
    """What the SDK's example store amounts to: every session in one namespace."""

    def __init__(self, store: EventStore, session_id: str, **options: Any) -> None:
        super().__init__(store, "everyone", **options)


async def test_demo_checks_catch_the_cross_session_replay_bug(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binding, "SessionEventStore", OneSharedSession)
    report = await run_demo(sqlite_url)
    failed = [check.text for check in report.checks if not check.passed]
    assert not report.passed
    assert any("keeps each session's stream apart" in text for text in failed)
    assert any("sent on B's session replays nothing" in text for text in failed)


def test_the_command_exits_1_when_a_check_fails(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binding, "SessionEventStore", OneSharedSession)
    result = CliRunner().invoke(main, ["demo", "--url", sqlite_url])
    assert result.exit_code == 1, result.output
    assert "FAIL  A's Last-Event-ID sent on B's session replays nothing" in result.output
    assert "checks FAILED" in result.output


async def hanging_sse(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every request with an SSE stream that never sends an event."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await asyncio.Event().wait()


async def test_a_server_that_hangs_on_a_foreign_cursor_fails_the_check() -> None:
    async with serve_on_loopback(hanging_sse) as base_url:
        assert await scenario._raw_resume(base_url, "s", "AAAAAAAAAAA.1.1", timeout=0.5) is None


async def test_the_checks_look_at_the_store_a_read_only_one_fails_them(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    async with open_store(f"sqlite+aiosqlite:///{path}"):
        pass
    report = await run_demo(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    assert not report.passed

    def passed(start: str) -> bool:
        (check,) = [check for check in report.checks if check.text.startswith(start)]
        return check.passed

    assert not passed("ending the sessions (DELETE) dropped their events from the store")
    assert not passed("the store keeps each session's stream apart")


INTERRUPTIBLE = """
import asyncio, sys
from eventstore.cli import main
from eventstore.mcp import resumable_app
from eventstore.mcp.demo import scenario
from eventstore.mcp.demo.app import Conductor, build_server
from eventstore.mcp.demo.loopback import serve_on_loopback

async def serve_forever(url, **options):
    server, http_options = build_server(Conductor())
    async with serve_on_loopback(resumable_app(server, url, **http_options)) as base:
        print("serving", base, flush=True)
        await asyncio.Event().wait()

scenario.run_demo = serve_forever
sys.exit(main(["demo", "--url", sys.argv[1]]))
"""


def interrupt(
    args: list[str], *, when: Callable[[subprocess.Popen[str]], None]
) -> tuple[int, str, str]:
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Background jobs of a non-interactive shell inherit SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        when(process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, out, err


def test_ctrl_c_while_the_server_runs_says_interrupted_and_exits_130(sqlite_url: str) -> None:
    def once_serving(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("serving ")

    code, out, err = interrupt([sys.executable, "-c", INTERRUPTIBLE, sqlite_url], when=once_serving)
    assert (code, err) == (130, "interrupted\n"), out + err


STARTED_DEMO = """
import sys
from eventstore.cli import main
from eventstore.mcp.demo import scenario

real_run_demo = scenario.run_demo

async def announced(url, **options):
    print("started", flush=True)
    return await real_run_demo(url, **options)

scenario.run_demo = announced
sys.exit(main(["demo", "--url", sys.argv[1]]))
"""


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3, 0.45, 0.6])
def test_ctrl_c_anywhere_in_the_demo_never_prints_a_traceback(
    sqlite_url: str, delay: float
) -> None:
    def after_delay(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stdout.readline() == "started\n"
        time.sleep(delay)

    code, out, err = interrupt([sys.executable, "-c", STARTED_DEMO, sqlite_url], when=after_delay)
    if code in (0, -signal.SIGINT):
        # This machine was faster than the delay: the demo finished first (and the
        # signal perhaps ended the interpreter's exit, as it ends any process).
        assert "all 13 checks passed" in out and not err, out + err
    else:
        assert (code, err) == (130, "interrupted\n"), out + err
