"""An MCP session spoken by hand over HTTP: exact request ids, exact ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse

PROTOCOL_VERSION = "2025-11-25"
#: Upper bound for any single read in these tests; a hang fails instead of blocking CI.
READ_TIMEOUT = 20.0


@dataclass(frozen=True)
class Event:
    """One SSE event: its id and its JSON-RPC message (``None`` for a priming event)."""

    id: str
    message: dict[str, Any] | None

    @property
    def is_response(self) -> bool:
        return self.message is not None and ("result" in self.message or "error" in self.message)

    @property
    def text(self) -> str:
        """The progress message or resource URI it carries, or ``""``."""
        params = (self.message or {}).get("params") or {}
        return str(params.get("message") or params.get("uri") or "")


def _event(sse: ServerSentEvent) -> Event:
    return Event(sse.id, json.loads(sse.data) if sse.data else None)


class RawSession:
    """One session on ``endpoint``: ``await open()``, then requests and resumes."""

    def __init__(self, client: httpx.AsyncClient, endpoint: str) -> None:
        self.client = client
        self.endpoint = endpoint
        self.session_id = ""

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": PROTOCOL_VERSION,
            **extra,
        }
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    async def open(self) -> None:
        """Initialize (request id 0) and send ``notifications/initialized``."""
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw-test-client", "version": "0"},
        }
        await self.request(0, "initialize", params)
        response = await self.client.post(
            self.endpoint,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=self.headers(**{"content-type": "application/json"}),
        )
        assert response.status_code == 202, response.text

    async def request(
        self,
        request_id: int | str,
        method: str,
        params: dict[str, Any],
        *,
        stop_after: int | None = None,
    ) -> list[Event]:
        """POST one request and read its SSE stream to the response; return every event.

        With ``stop_after``, the connection is closed after that many events instead
        (leaving the block closes the half-read response: httpx drops the connection).
        """
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        events: list[Event] = []
        async with aconnect_sse(
            self.client,
            "POST",
            self.endpoint,
            json=body,
            headers=self.headers(**{"content-type": "application/json"}),
        ) as source:
            source.response.raise_for_status()
            self.session_id = source.response.headers.get("mcp-session-id", self.session_id)
            async for sse in source.aiter_sse():
                events.append(_event(sse))
                if len(events) == stop_after or events[-1].is_response:
                    break
        return events

    async def call_tool(self, request_id: int | str, name: str, **arguments: Any) -> list[Event]:
        """``tools/call`` with progress: every event of its stream, the result last."""
        params = {"name": name, "arguments": arguments, "_meta": {"progressToken": request_id}}
        return await self.request(request_id, "tools/call", params)

    async def call_tool_and_drop(
        self, request_id: int | str, name: str, events: int, **arguments: Any
    ) -> list[Event]:
        """``tools/call`` with progress, closing the connection after ``events`` events."""
        params = {"name": name, "arguments": arguments, "_meta": {"progressToken": request_id}}
        return await self.request(request_id, "tools/call", params, stop_after=events)

    async def follow_to_priming(self, last_event_id: str) -> tuple[int, list[Event]]:
        """GET with ``Last-Event-ID``: the replayed events and the new priming event.

        Unlike :meth:`resume`, keeps the priming event, and stops at nothing else.
        """
        headers: dict[str, Any] = self.headers(accept="text/event-stream")
        headers["last-event-id"] = last_event_id
        events: list[Event] = []
        async with self.client.stream("GET", self.endpoint, headers=headers) as response:
            if response.status_code != 200:
                return response.status_code, events
            async for sse in EventSource(response).aiter_sse():
                events.append(_event(sse))
                if events[-1].message is None:
                    break
        return 200, events

    async def follow_to_response(self, last_event_id: str, *, resumes: int = 20) -> list[Event]:
        """Resume as a client that stays, and again whenever the stream ends without the
        response (each time from the last id received); every event, the response last.
        """
        events: list[Event] = []
        cursor = last_event_id
        for _ in range(resumes):
            status, more = await asyncio.wait_for(self.follow(cursor), READ_TIMEOUT)
            assert status == 200, status
            events += more
            if events and events[-1].is_response:
                return events
            cursor = events[-1].id if events else cursor
        raise AssertionError(f"no response after {resumes} resumes: {events}")

    async def follow(self, last_event_id: str) -> tuple[int, list[Event]]:
        """GET with ``Last-Event-ID`` and read to the end, as a client that stays.

        Returns the status and every event: the replayed ones, the new priming event,
        then live ones, until a response arrived or the server ended the stream.
        """
        headers: dict[str, Any] = self.headers(accept="text/event-stream")
        headers["last-event-id"] = last_event_id
        events: list[Event] = []
        async with self.client.stream("GET", self.endpoint, headers=headers) as response:
            if response.status_code != 200:
                return response.status_code, events
            async for sse in EventSource(response).aiter_sse():
                events.append(_event(sse))
                if events[-1].is_response:
                    break
        return 200, events

    async def resume(self, last_event_id: str | bytes) -> tuple[int, list[Event]]:
        """GET with ``Last-Event-ID``: the status and the replayed events.

        Reads until the stream ends, a response was replayed, or the priming event the
        SDK sends once a replay is complete and it starts tailing the stream live.
        """
        headers: dict[str, Any] = self.headers(accept="text/event-stream")
        headers["last-event-id"] = last_event_id
        events: list[Event] = []
        async with self.client.stream("GET", self.endpoint, headers=headers) as response:
            if response.status_code != 200:
                return response.status_code, events
            async for sse in EventSource(response).aiter_sse():
                event = _event(sse)
                if event.message is None:
                    break
                events.append(event)
                if event.is_response:
                    break
        return 200, events

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[list[Event]]:
        """Hold the standalone GET stream open; the yielded list fills as events arrive.

        Yields once the response headers arrived: the server registers the stream in the
        same scheduling round as it sends them, so anything a later request makes the
        server send reaches it.
        """
        events: list[Event] = []
        connected = asyncio.Event()

        async def read() -> None:
            async with aconnect_sse(
                self.client, "GET", self.endpoint, headers=self.headers(accept="text/event-stream")
            ) as source:
                source.response.raise_for_status()
                connected.set()
                async for sse in source.aiter_sse():
                    events.append(_event(sse))

        task = asyncio.create_task(read())
        try:
            await asyncio.wait_for(connected.wait(), READ_TIMEOUT)
            yield events
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def delete(self) -> int:
        """End the session (``DELETE``); return the HTTP status."""
        response = await self.client.delete(self.endpoint, headers=self.headers())
        return response.status_code
