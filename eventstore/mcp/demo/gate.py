"""An ASGI middleware that sees (and can hold) every resume request: ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class Resume:
    """One request that carried ``Last-Event-ID``."""

    session_id: str | None
    last_event_id: str


class ResumeGate:
    """Wraps an MCP app; records each ``Last-Event-ID`` request and can hold them back.

    While a session is held (:meth:`hold`), its resume requests wait before reaching
    the app, so a test or the demo decides when a reconnecting client is served (for
    instance only once the server stored everything the client missed), whatever
    connection the client reuses. Every other request passes straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.resumes: list[Resume] = []
        self._held: dict[str, asyncio.Event] = {}

    def hold(self, session_id: str) -> None:
        """Make resume requests of ``session_id`` wait until :meth:`release`."""
        self._held.setdefault(session_id, asyncio.Event())

    def release(self, session_id: str) -> None:
        """Let held and future resume requests of ``session_id`` through."""
        held = self._held.pop(session_id, None)
        if held is not None:
            held.set()

    def resumes_of(self, session_id: str) -> list[str]:
        """The ``Last-Event-ID`` values sent on ``session_id``, in arrival order."""
        return [r.last_event_id for r in self.resumes if r.session_id == session_id]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            last_event_id = headers.get("last-event-id")
            if last_event_id:
                session_id = headers.get("mcp-session-id")
                self.resumes.append(Resume(session_id, last_event_id))
                held = self._held.get(session_id or "")
                if held is not None:
                    await held.wait()
        await self.app(scope, receive, send)
