"""The price of resumability on a host server's event path, end to end.

A real MCP SDK server under uvicorn on loopback, and the SDK's client calling a tool that
emits progress notifications: notifications per second reaching the client, with the
SDK running without an event store, and with :func:`eventstore.mcp.resumable_app` on our
SQLite and PostgreSQL stores (every notification stored before it is sent). The three
servers run side by side and are called in alternating turns.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from mcp.client.session import ClientSession

from benchmarks import report
from benchmarks.context import Bench
from benchmarks.dataset import new_database
from benchmarks.measure import Rates
from eventstore import open_store
from eventstore.mcp import resumable_app
from eventstore.mcp.demo.loopback import serve_on_loopback
from eventstore.mcp.demo.sdk import client_session, context_type, new_server

NOTIFICATIONS_PER_CALL = 200
_BASELINE = "SDK without an event store"


def _server() -> tuple[Any, dict[str, Any]]:
    server, http_options = new_server("eventstore-bench", retry_interval_ms=1000)

    async def emit(count: int, ctx: Any = None) -> str:
        for step in range(1, count + 1):
            await ctx.report_progress(step, count, f"step {step} of {count}")
        return f"emitted {count}"

    emit.__annotations__["ctx"] = context_type()
    server.tool()(emit)
    return server, http_options


@asynccontextmanager
async def _session(stack: AsyncExitStack, url: str | None) -> AsyncIterator[ClientSession]:
    server, http_options = _server()
    if url is None:
        app = server.streamable_http_app(**http_options)
    else:
        store = await stack.enter_async_context(open_store(url))
        app = resumable_app(server, store, idle_ttl_seconds=None, **http_options)
    base_url = await stack.enter_async_context(serve_on_loopback(app))
    async with client_session(f"{base_url}/mcp") as session:
        yield session


async def _call(session: ClientSession) -> float:
    """Notifications per second of one tool call."""
    received = 0

    async def progress(_progress: float, _total: float | None, _message: str | None) -> None:
        nonlocal received
        received += 1

    started = time.perf_counter()
    result = await session.call_tool(
        "emit", {"count": NOTIFICATIONS_PER_CALL}, progress_callback=progress
    )
    elapsed = time.perf_counter() - started
    # mcp 2.x spells it is_error, 1.x isError.
    failed = result.is_error if hasattr(result, "is_error") else result.isError
    assert not failed and received == NOTIFICATIONS_PER_CALL, (result, received)
    return received / elapsed


async def measure(bench: Bench) -> dict[str, Rates]:
    configs: dict[str, str | None] = {
        _BASELINE: None,
        "resumable_app on SQLite": await new_database(bench, "sqlite", "mcp"),
        "resumable_app on PostgreSQL": await new_database(bench, "postgresql", "mcp"),
    }
    rates = {name: Rates() for name in configs}
    async with AsyncExitStack() as stack:
        sessions = {
            name: await stack.enter_async_context(_session(stack, url))
            for name, url in configs.items()
        }
        for session in sessions.values():
            await _call(session)  # warm-up
        names = list(sessions)
        for round_no in range(bench.rounds * 2):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                rates[name].rounds.append(await _call(sessions[name]))
    return rates


def summarise(bench: Bench, rates: dict[str, Rates]) -> None:
    report.heading(
        f"End to end: a tool emitting {NOTIFICATIONS_PER_CALL} progress notifications "
        "through a real MCP SDK server and client (notifications/s)"
    )
    base = rates[_BASELINE].median
    report.table(
        ["server", "notifications/s", "vs SDK without a store"],
        [(name, report.rate(r.median), report.ratio(r.median / base)) for name, r in rates.items()],
    )
