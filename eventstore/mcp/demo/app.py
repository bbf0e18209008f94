"""The demo's MCP server: one tool that streams progress and can be paused mid-call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from eventstore.mcp.demo.sdk import context_type, new_server

#: How long a client waits before reconnecting (the SSE ``retry`` of priming events).
RETRY_INTERVAL_MS = 100


@dataclass
class ToolCall:
    """Where one client's ``count`` call stands, as the tool reports it."""

    label: str
    session_id: str | None = None
    request_id: str | None = None
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    resume: asyncio.Event = field(default_factory=asyncio.Event)


class Conductor:
    """Shared by the demo and its server: pauses each client's tool call on cue."""

    def __init__(self) -> None:
        self.calls: dict[str, ToolCall] = {}

    def call(self, label: str) -> ToolCall:
        """The call made with ``label`` (created on first use)."""
        return self.calls.setdefault(label, ToolCall(label))


def build_server(conductor: Conductor) -> tuple[Any, dict[str, Any]]:
    """The demo server and the options for its ``streamable_http_app()``.

    Its tool ``count(label, steps, pause_after)`` reports progress ``1..steps`` with the
    message ``"<label>: step i of n"``, stops after step ``pause_after`` until the
    conductor says ``resume``, and returns ``"<label> counted to <steps>"``.
    """
    server, http_options = new_server("eventstore-demo", retry_interval_ms=RETRY_INTERVAL_MS)

    async def count(label: str, steps: int, pause_after: int, ctx: Any) -> str:
        call = conductor.call(label)
        call.session_id = ctx.request_context.request.headers.get("mcp-session-id")
        call.request_id = str(ctx.request_id)
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"{label}: step {step} of {steps}")
            if step == pause_after:
                call.paused.set()
                await call.resume.wait()
        return f"{label} counted to {steps}"

    # The SDK injects the context by the parameter's annotation, whose class depends on
    # the SDK's major version.
    count.__annotations__["ctx"] = context_type()
    server.tool()(count)
    return server, http_options
