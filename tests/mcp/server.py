"""The MCP server the end-to-end tests run: tools that stream, pause, poll and broadcast."""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore.mcp.demo.app import Conductor
from eventstore.mcp.demo.sdk import context_type, new_server

RETRY_INTERVAL_MS = 50


def build_test_server(conductor: Conductor, **http_options: Any) -> tuple[Any, dict[str, Any]]:
    """A server with the tools below, and the options for its ``streamable_http_app()``.

    ``http_options`` (``session_idle_timeout=...``) go where the installed SDK takes them.

    * ``count(label, steps, pause_after=0, unencodable=False)`` -- progress
      ``"<label>: step i of n"``; after step ``pause_after`` (if not 0) waits for the
      conductor's ``resume``; ``unencodable`` ends each text with a lone surrogate.
    * ``poll(label, steps, close_after)`` -- like ``count``, pausing after
      ``close_after``; on resume it closes its own SSE stream (SEP-1699 polling,
      ``ctx.close_sse_stream()``) and goes on.
    * ``stream(label, steps, interval_ms)`` -- progress ``"<label>: step i of n"`` every
      ``interval_ms`` milliseconds, never pausing: a resume races the running tool.
    * ``broadcast(label, count)`` -- ``count`` resource-updated notifications for
      ``test://<label>/<i>`` on the session's standalone GET stream, and one progress
      notification per message.
    """
    server, http_options = new_server(
        "eventstore-tests", retry_interval_ms=RETRY_INTERVAL_MS, **http_options
    )
    context = context_type()

    async def count(
        label: str, steps: int, pause_after: int = 0, unencodable: bool = False, ctx: Any = None
    ) -> str:
        call = _record(conductor, label, ctx)
        # A lone surrogate: a message neither the store nor the wire can encode.
        tail = "\ud800" if unencodable else ""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"{label}: step {step} of {steps}{tail}")
            if step == pause_after:
                call.paused.set()
                await call.resume.wait()
        return f"{label} counted to {steps}"

    async def poll(label: str, steps: int, close_after: int, ctx: Any = None) -> str:
        call = _record(conductor, label, ctx)
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"{label}: step {step} of {steps}")
            if step == close_after:
                call.paused.set()
                await call.resume.wait()
                await ctx.close_sse_stream()
        return f"{label} polled to {steps}"

    async def stream(label: str, steps: int, interval_ms: float, ctx: Any = None) -> str:
        _record(conductor, label, ctx)
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"{label}: step {step} of {steps}")
            await asyncio.sleep(interval_ms / 1000)
        return f"{label} streamed {steps}"

    async def broadcast(label: str, count: int, ctx: Any = None) -> str:
        _record(conductor, label, ctx)
        for i in range(1, count + 1):
            await ctx.session.send_resource_updated(f"test://{label}/{i}")
            await ctx.report_progress(i, count, f"{label}: sent {i} of {count}")
        return f"{label} broadcast {count}"

    for tool in (count, poll, stream, broadcast):
        tool.__annotations__["ctx"] = context
        server.tool()(tool)
    return server, http_options


def _record(conductor: Conductor, label: str, ctx: Any) -> Any:
    call = conductor.call(label)
    call.session_id = ctx.request_context.request.headers.get("mcp-session-id")
    call.request_id = str(ctx.request_id)
    return call
