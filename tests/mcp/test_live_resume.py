"""Resuming while the tool is still sending: nothing held back, nothing lost, nothing twice.

No :class:`~eventstore.mcp.demo.gate.ResumeGate` here: the client comes back at once,
while the tool emits a progress notification every 2 ms, so the server stores new
messages for the stream while the resume is being replayed and the SDK re-attaches the
stream. Every message must arrive exactly once, in order -- on SQLite and PostgreSQL,
with and without group commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from eventstore.mcp.demo.proxy import CuttableProxy
from eventstore.mcp.demo.sdk import client_session
from tests.mcp.conftest import Harness, start_harness
from tests.mcp.raw import READ_TIMEOUT, Event

RAW_TRIALS = 20
SDK_TRIALS = 5
STEPS = 60
INTERVAL_MS = 2


@pytest.fixture(params=[True, False], ids=["group-commit", "direct"])
async def live_harness(request: pytest.FixtureRequest, sql_url: str) -> AsyncIterator[Harness]:
    async for running in start_harness(sql_url, group_commit=request.param):
        yield running


def steps_of(events: list[Event]) -> list[str]:
    return [e.text for e in events if e.message is not None and not e.is_response]


def expected(label: str) -> list[str]:
    return [f"{label}: step {i} of {STEPS}" for i in range(1, STEPS + 1)]


async def test_raw_resume_at_once_while_the_tool_streams(live_harness: Harness) -> None:
    session = await live_harness.raw_session()
    for trial in range(1, RAW_TRIALS + 1):
        label = f"T{trial}"
        events = await session.call_tool_and_drop(
            trial, "stream", 5, label=label, steps=STEPS, interval_ms=INTERVAL_MS
        )
        assert len(events) == 5, events
        # The last id received -- a priming event's too -- is the client's cursor.
        events += await session.follow_to_response(events[-1].id)
        assert steps_of(events) == expected(label), f"trial {trial}"
        assert events[-1].message is not None
        assert events[-1].message["result"]["content"][0]["text"] == f"{label} streamed {STEPS}"
        ids = [e.id for e in events]
        assert len(ids) == len(set(ids)), f"trial {trial}: an event arrived twice"


async def test_sdk_client_reconnects_while_the_tool_streams(live_harness: Harness) -> None:
    port = int(live_harness.base_url.rsplit(":", 1)[1])
    async with CuttableProxy("127.0.0.1", port) as proxy:
        for trial in range(1, SDK_TRIALS + 1):
            label = f"S{trial}"
            received: list[str] = []
            reached = asyncio.Event()

            async def on_progress(
                progress: float,
                total: float | None,
                message: str | None,
                received: list[str] = received,
                reached: asyncio.Event = reached,
            ) -> None:
                received.append(message or "")
                if len(received) == 5:
                    reached.set()

            async with client_session(f"{proxy.url}/mcp") as session:
                tool = asyncio.ensure_future(
                    session.call_tool(
                        "stream",
                        arguments={"label": label, "steps": STEPS, "interval_ms": INTERVAL_MS},
                        progress_callback=on_progress,
                    )
                )
                try:
                    await asyncio.wait_for(reached.wait(), READ_TIMEOUT)
                    assert proxy.cut() >= 1
                    result = await asyncio.wait_for(tool, READ_TIMEOUT)
                finally:
                    tool.cancel()
                    await asyncio.gather(tool, return_exceptions=True)
            assert received == expected(label), f"trial {trial}"
            assert result.content[0].text == f"{label} streamed {STEPS}"  # type: ignore[union-attr]


#: Longest a resumed connection may stay open after the tool finished before it counts
#: as hung (the tool itself takes STEPS * INTERVAL_MS).
HUNG_SECONDS = 8.0


async def test_two_resumes_of_one_stream_at_once(live_harness: Harness) -> None:
    # A proxy retrying a GET, or a client retrying a resume that seems stuck: both
    # connections come with the same Last-Event-ID while the tool streams. Each one must
    # get its events without a hole and then either the response or the end of its
    # stream (so that its client resumes again); none may be left open and silent.
    session = await live_harness.raw_session()
    for trial in range(1, RAW_TRIALS + 1):
        label = f"D{trial}"
        first = await session.call_tool_and_drop(
            trial, "stream", 5, label=label, steps=STEPS, interval_ms=INTERVAL_MS
        )
        cursor = first[-1].id
        resumed = await asyncio.gather(
            *(asyncio.wait_for(session.follow(cursor), HUNG_SECONDS) for _ in range(2)),
            return_exceptions=True,
        )
        for number, outcome in enumerate(resumed, start=1):
            assert not isinstance(outcome, BaseException), (
                f"trial {trial}, connection {number}: {outcome!r} (hung: open, nothing sent)"
            )
            status, events = outcome
            assert status == 200
            events = first + events
            if not events[-1].is_response:
                events += await session.follow_to_response(events[-1].id)
            assert steps_of(events) == expected(label), f"trial {trial}, connection {number}"
            ids = [e.id for e in events]
            assert len(ids) == len(set(ids)), f"trial {trial}: an event arrived twice"
