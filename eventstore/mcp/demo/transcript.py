"""Turning a :class:`~eventstore.mcp.demo.scenario.DemoReport` into readable lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from eventstore.mcp.demo.scenario import LABELS, ClientRun, DemoReport

#: Colours a line: ``style(text, passed)`` with ``passed`` None for plain lines.
Style = Callable[[str, "bool | None"], str]


def _plain(text: str, passed: bool | None) -> str:
    return text


def render(report: DemoReport, style: Style = _plain) -> Iterator[str]:
    """The transcript: setup, what each client received before and after the drop, checks."""
    yield f"eventstore demo: resumable MCP over Streamable HTTP (mcp {report.sdk_version})"
    yield f"  store   {report.store_url}"
    yield f"  server  {report.server_url}  (uvicorn on loopback, the SDK's own server)"
    yield (
        f"  clients {' and '.join(LABELS)} connect at the same time, each through a proxy, "
        f"and call tool `count` ({report.steps} progress steps);"
    )
    yield f"          their connections are cut after step {report.pause_after}."
    for label in LABELS:
        yield ""
        yield from _client(report.runs[label], report)
    yield ""
    yield "checks"
    for check in report.checks:
        yield style(f"  {'PASS' if check.passed else 'FAIL'}  {check.text}", check.passed)
    yield ""
    failed = sum(1 for check in report.checks if not check.passed)
    if report.passed:
        yield style(
            f"all {len(report.checks)} checks passed: nothing missed, nothing duplicated, "
            "no session saw another's events",
            True,
        )
    else:
        yield style(f"{failed} of {len(report.checks)} checks FAILED", False)


def _client(run: ClientRun, report: DemoReport) -> Iterator[str]:
    session = run.session_id or "(none)"
    yield f"client {run.label}  session {session}  tool call = request id {run.request_id or '?'}"
    cut_shown = False
    for progress in run.progress:
        if progress.replayed and not cut_shown:
            yield from _cut(run)
            cut_shown = True
        phase = "replayed" if progress.replayed else "live    "
        yield (f"  {phase}  progress {progress.step}/{progress.total}  {progress.message!r}")
    if not cut_shown and run.connections_cut:
        yield from _cut(run)
    if run.result is not None:
        yield f"  replayed  result        {run.result!r}"
    if run.error is not None:
        yield f"  error     {run.error}"


def _cut(run: ClientRun) -> Iterator[str]:
    yield (
        f"  -- cut {run.connections_cut} TCP connection(s); the tool finishes while "
        f"{run.label} is away"
    )
    for last_event_id in run.resumed_with:
        yield f"  -- the SDK client reconnects: GET with Last-Event-ID: {last_event_id}"
