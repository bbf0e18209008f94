"""The demo run: two real SDK clients, colliding request ids, a cut connection, a resume.

A real MCP server (the SDK's own, made resumable with :func:`eventstore.mcp.resumable_app`)
runs under uvicorn on 127.0.0.1. Clients A and B connect at the same time, each through
its own :class:`~eventstore.mcp.demo.proxy.CuttableProxy`, and call the same tool, so
both calls carry the same JSON-RPC request id: the same SDK stream id in two sessions.
After ``pause_after`` progress notifications each client's TCP connections are cut; the
tool finishes while the client is away; the SDK client reconnects on its own with
``Last-Event-ID`` and must get exactly what it missed. :func:`run_demo` returns what
happened and the checks that prove it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from mcp.client.session import ClientSession
from sqlalchemy.engine import make_url

from eventstore.events import StoredEvent
from eventstore.mcp.app import resumable_app
from eventstore.mcp.binding import SessionBinding
from eventstore.mcp.demo.app import Conductor, build_server
from eventstore.mcp.demo.gate import ResumeGate
from eventstore.mcp.demo.loopback import serve_on_loopback
from eventstore.mcp.demo.proxy import CuttableProxy
from eventstore.mcp.demo.sdk import client_session, sdk_version
from eventstore.mcp.ids import stream_key
from eventstore.open import open_store
from eventstore.sql.engine import display_url
from eventstore.store import EventStore

LABELS = ("A", "B")
_CALL_TIMEOUT_SECONDS = 60.0
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Progress:
    """One progress notification as the client received it."""

    step: int
    total: int
    message: str
    replayed: bool


@dataclass
class ClientRun:
    """What one client saw, and what the server recorded about it."""

    label: str
    session_id: str = ""
    request_id: str = ""
    progress: list[Progress] = field(default_factory=list)
    connections_cut: int = 0
    #: Id of the last event the client had received when its connection was cut.
    last_event_before_cut: str = ""
    #: ``Last-Event-ID`` values the client sent to resume.
    resumed_with: list[str] = field(default_factory=list)
    result: str | None = None
    error: str | None = None

    def steps(self, *, replayed: bool) -> list[int]:
        """Steps received live (``replayed=False``) or after the resume."""
        return [p.step for p in self.progress if p.replayed is replayed]


@dataclass(frozen=True)
class Check:
    """One claim the demo verifies."""

    passed: bool
    text: str


@dataclass
class DemoReport:
    """Everything :func:`run_demo` observed."""

    store_url: str
    server_url: str
    sdk_version: str
    steps: int
    pause_after: int
    runs: dict[str, ClientRun]
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks)


async def run_demo(url: str, *, steps: int = 6, pause_after: int = 3) -> DemoReport:
    """Run the scenario against the store at ``url``; never raises for a failed check.

    Store errors (database unreachable) propagate as
    :class:`~eventstore.errors.EventStoreError`.
    """
    if not 1 <= pause_after < steps:
        raise ValueError(f"need 1 <= pause_after < steps, not {pause_after} and {steps}")
    conductor = Conductor()
    server, http_options = build_server(conductor)
    async with _store_at(url) as store:
        app = resumable_app(server, store, idle_ttl_seconds=None, **http_options)
        binding: SessionBinding = app.state.eventstore_binding
        gate = ResumeGate(app)
        async with serve_on_loopback(gate) as base, AsyncExitStack() as proxies:
            port = int(base.rsplit(":", 1)[1])
            report = DemoReport(
                store_url=display_url(make_url(url)),
                server_url=f"{base}/mcp",
                sdk_version=sdk_version(),
                steps=steps,
                pause_after=pause_after,
                runs={label: ClientRun(label) for label in LABELS},
            )
            paths = {}
            for label in LABELS:
                proxy = await proxies.enter_async_context(CuttableProxy("127.0.0.1", port))
                paths[label] = proxy
            driver = _Driver(store, binding, gate, conductor, report)
            async with AsyncExitStack() as sessions:
                opened = {
                    label: await sessions.enter_async_context(
                        client_session(f"{paths[label].url}/mcp")
                    )
                    for label in LABELS
                }
                await asyncio.gather(
                    *(driver.drive(opened[label], paths[label], label) for label in LABELS)
                )
                for label in LABELS:
                    driver.check_run(report.runs[label])
                await driver.check_isolation(base)
                await driver.count_before_end()
            await driver.check_cleared()
    return report


class _Driver:
    def __init__(
        self,
        store: EventStore,
        binding: SessionBinding,
        gate: ResumeGate,
        conductor: Conductor,
        report: DemoReport,
    ) -> None:
        self.store = store
        self.binding = binding
        self.gate = gate
        self.conductor = conductor
        self.report = report
        #: Streams each session had in the store right before the clients ended them.
        self.streams_before_end: dict[str, int] = {}

    def check(self, passed: bool, text: str) -> None:
        self.report.checks.append(Check(passed, text))

    async def drive(self, session: ClientSession, proxy: CuttableProxy, label: str) -> None:
        run = self.report.runs[label]
        try:
            await asyncio.wait_for(self._call(session, proxy, run), _CALL_TIMEOUT_SECONDS)
        except Exception as exc:
            run.error = f"{type(exc).__name__}: {exc}"

    async def _call(self, session: ClientSession, proxy: CuttableProxy, run: ClientRun) -> None:
        steps, pause_after = self.report.steps, self.report.pause_after
        call = self.conductor.call(run.label)
        cut = False
        reached = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            run.progress.append(Progress(int(progress), int(total or 0), message or "", cut))
            if len(run.progress) == pause_after:
                reached.set()

        tool = asyncio.ensure_future(
            session.call_tool(
                "count",
                arguments={"label": run.label, "steps": steps, "pause_after": pause_after},
                progress_callback=on_progress,
            )
        )
        try:
            await _first(reached.wait(), tool)
            await call.paused.wait()
            assert call.session_id is not None and call.request_id is not None
            run.session_id, run.request_id = call.session_id, call.request_id
            stream = stream_key(run.request_id)
            stored = await self._stored(run.session_id, stream)
            if not stored:
                raise RuntimeError("the store holds no event of this call: writes are failing")
            run.last_event_before_cut = stored[-1].id
            # From here until the server has stored the result, a resume waits at the
            # gate: the client is away while the tool finishes.
            self.gate.hold(run.session_id)
            cut = True
            run.connections_cut = proxy.cut()
            call.resume.set()
            await _poll(lambda: self._finished(run.session_id, stream))
            self.gate.release(run.session_id)
            result = await tool
        finally:
            if not tool.done():
                tool.cancel()
            await asyncio.gather(tool, return_exceptions=True)
        run.result = " ".join(getattr(block, "text", "") for block in result.content)
        run.resumed_with = self.gate.resumes_of(run.session_id)

    async def _stored(self, session_id: str, stream: str) -> list[StoredEvent]:
        """The stream as the session's adapter stores it, every queued write committed."""
        if self.binding.worker is not None:
            await self.binding.worker.flush()
        adapter = self.binding.adapter(session_id)
        storage_session = adapter.session_id if adapter is not None else session_id
        return await self.store.get_stream_events(storage_session, stream)

    async def _finished(self, session_id: str, stream: str) -> bool:
        events = await self._stored(session_id, stream)
        return bool(events) and _is_response(events[-1])

    def check_run(self, run: ClientRun) -> None:
        steps, pause_after = self.report.steps, self.report.pause_after
        name = run.label
        if run.error is not None:
            self.check(False, f"{name}: the tool call failed: {run.error}")
        received = [p.step for p in run.progress]
        self.check(
            received == list(range(1, steps + 1)),
            f"{name}: progress 1..{steps} arrived exactly once each, in order (got {received})",
        )
        live, replayed = run.steps(replayed=False), run.steps(replayed=True)
        self.check(
            live == list(range(1, pause_after + 1))
            and replayed == list(range(pause_after + 1, steps + 1)),
            f"{name}: steps 1..{pause_after} live, then {pause_after + 1}..{steps} replayed "
            f"after the drop (live {live}, replayed {replayed})",
        )
        self.check(
            run.resumed_with[:1] == [run.last_event_before_cut] and run.connections_cut > 0,
            f"{name}: the SDK client resumed with Last-Event-ID = the last event it received "
            "before the drop",
        )
        expected = f"{name} counted to {steps}"
        self.check(run.result == expected, f"{name}: the tool result arrived: {run.result!r}")

    async def check_isolation(self, base_url: str) -> None:
        a, b = (self.report.runs[label] for label in LABELS)
        self.check(
            bool(a.request_id) and a.request_id == b.request_id,
            f"both tool calls had JSON-RPC request id {a.request_id!r}: the same SDK stream id "
            "in two sessions",
        )
        foreign = [
            (run.label, p.message)
            for run in (a, b)
            for p in run.progress
            if not p.message.startswith(f"{run.label}:")
        ]
        self.check(
            not foreign,
            "A received none of B's events, B none of A's"
            + (f" (foreign: {foreign})" if foreign else ""),
        )
        mixed: list[str] = []
        for run in (a, b):
            if not run.session_id:
                mixed.append(f"{run.label}: no session")
                continue
            stored = await self._stored(run.session_id, stream_key(run.request_id))
            if not any(_label_of(event) == run.label for event in stored):
                mixed.append(f"{run.label}: none of its own events stored")
            mixed += [
                _label_of(event) or "?"
                for event in stored
                if event.data is not None and _label_of(event) not in (run.label, None)
            ]
        self.check(
            not mixed,
            "the store keeps each session's stream apart (no mixed events)"
            + (f" ({', '.join(mixed)})" if mixed else ""),
        )
        if a.last_event_before_cut and b.session_id:
            events = await _raw_resume(base_url, b.session_id, a.last_event_before_cut)
            outcome = "no answer in time" if events is None else f"{events} events"
            self.check(
                events == 0,
                f"A's Last-Event-ID sent on B's session replays nothing ({outcome})",
            )

    async def count_before_end(self) -> None:
        for run in self.report.runs.values():
            if run.session_id:
                self.streams_before_end[run.session_id] = await self.store.stream_count(
                    run.session_id
                )

    async def check_cleared(self) -> None:
        before = self.streams_before_end

        async def counts() -> dict[str, int]:
            return {session: await self.store.stream_count(session) for session in before}

        async def cleared() -> bool:
            return not any((await counts()).values())

        try:
            await _poll(cleared, timeout=10.0)
        except TimeoutError:
            pass
        after = await counts()
        # Only a store that held the sessions' events and then no longer does proves it.
        done = len(before) == len(LABELS) and all(before.values()) and not any(after.values())
        detail = ", ".join(f"{before[s]} -> {after[s]}" for s in before) or "no sessions"
        self.check(
            done,
            f"ending the sessions (DELETE) dropped their events from the store "
            f"(streams per session: {detail})",
        )


@asynccontextmanager
async def _store_at(url: str) -> AsyncIterator[EventStore]:
    """``open_store(url)``, but a cancellation (Ctrl-C) lets a half-done opening finish.

    Cut short mid-connect, a database driver may leave its connection thread behind,
    which then fails noisily against the closed event loop.
    """
    opening: asyncio.Future[EventStore] = asyncio.ensure_future(open_store(url))
    try:
        store = await asyncio.shield(opening)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await opening).close()
        raise
    try:
        yield store
    finally:
        await store.close()


def _is_response(event: StoredEvent) -> bool:
    return isinstance(event.data, dict) and ("result" in event.data or "error" in event.data)


def _label_of(event: StoredEvent) -> str | None:
    params = event.data.get("params") if isinstance(event.data, dict) else None
    message = params.get("message") if isinstance(params, dict) else None
    return message.split(":", 1)[0] if isinstance(message, str) else None


async def _raw_resume(
    base_url: str, session_id: str, last_event_id: str, *, timeout: float = 10.0
) -> int | None:
    """GET the endpoint as ``session_id`` resuming from ``last_event_id``; count messages.

    Stops at the end of the stream, or at the priming event the SDK sends once a replay
    is complete and it starts tailing the stream live; ``-1`` for a non-200 answer,
    ``None`` when the server does not get there within ``timeout`` seconds (or the
    connection fails): a server that hangs on a foreign cursor fails the check.
    """
    headers = {
        "accept": "text/event-stream",
        "mcp-session-id": session_id,
        "last-event-id": last_event_id,
    }
    messages = 0

    async def read() -> None:
        nonlocal messages
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("GET", f"{base_url}/mcp", headers=headers) as response,
        ):
            if response.status_code != 200:
                messages = -1
                return
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    if not line[5:].strip():
                        return
                    messages += 1

    try:
        await asyncio.wait_for(read(), timeout)
    except (TimeoutError, httpx.HTTPError):
        return None
    return messages


async def _first(waiting: Awaitable[Any], task: asyncio.Future[Any]) -> None:
    """Wait for ``waiting``; if ``task`` ends first, raise its error."""
    waiter = asyncio.ensure_future(waiting)
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        task.result()
        raise RuntimeError("the tool call ended before reaching the pause")


async def _poll(condition: Callable[[], Awaitable[bool]], *, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(_POLL_SECONDS)
