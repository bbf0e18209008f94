"""``eventstore demo``: a real MCP server and client lose their connection and resume."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

import click

from eventstore.cli.options import url_option
from eventstore.config import default_url
from eventstore.errors import EventStoreError

#: Most progress steps: about 5 s on a slow 2-core machine, far inside the demo's own
#: time limits (30 s for the tool to finish while the client is away, 60 s a call).
#: Beyond them a run fails its checks as if the store lost events, and every step is
#: printed, so a bigger demo would show nothing more.
MAX_STEPS = 1000


@click.command()
@url_option
@click.option(
    "--steps",
    default=6,
    show_default=True,
    help=f"Progress notifications the tool sends (2 to {MAX_STEPS}).",
)
@click.option(
    "--pause-after",
    type=int,
    default=None,
    help="Cut the connection after this many notifications [default: 3, or --steps - 1 "
    "when that is less].",
)
def demo(url: str | None, steps: int, pause_after: int | None) -> None:
    """Show resumability end to end, with the official MCP SDK on both sides.

    Starts an MCP server (uvicorn on 127.0.0.1, a free port) whose tool streams progress
    notifications, connects two SDK clients at once (their tool calls share a request
    id), cuts their connections mid-call, lets the SDK clients resume with
    Last-Event-ID, and prints what each received and a list of checks. Exits with
    status 1 if any check fails. The demo's sessions are removed from the store when
    it ends.
    """
    if steps < 2:
        # The connection is cut after one notification at the least, and one must follow.
        raise click.BadParameter(f"must be at least 2, not {steps}", param_hint="--steps")
    if steps > MAX_STEPS:
        raise click.BadParameter(
            f"must be at most {MAX_STEPS}, not {steps} (more would not finish within the "
            "demo's time limits)",
            param_hint="--steps",
        )
    if pause_after is None:
        pause_after = min(3, steps - 1)  # --steps 2 or 3 works without a --pause-after
    if not 1 <= pause_after < steps:
        raise click.BadParameter(
            "must be at least 1 and less than --steps", param_hint="--pause-after"
        )
    interrupt = _Interrupt()
    with interrupt:
        try:
            from eventstore.mcp.demo.scenario import run_demo
            from eventstore.mcp.demo.transcript import render
        except ImportError as exc:
            raise click.ClickException(
                f"the demo needs the MCP SDK ({exc}); "
                "install the mcp extra: pip install -e '.[mcp]' in a checkout, or "
                "pip install 'mcp-eventstore[mcp]'"
            ) from exc
        try:
            report = interrupt.run(
                run_demo(url or default_url(), steps=steps, pause_after=pause_after)
            )
        except EventStoreError as exc:
            raise click.ClickException(str(exc)) from exc
        if report is not None:
            for line in render(report, _style):
                click.echo(line)
    if report is None or interrupt.requested:
        click.echo("interrupted", err=True)
        sys.exit(130)
    if not report.passed:
        raise SystemExit(1)


def _style(text: str, passed: bool | None) -> str:
    if passed is None:
        return text
    return click.style(text, fg="green" if passed else "red")


_T = TypeVar("_T")


class _Interrupt:
    """Ctrl-C during the demo: the first one stops it cleanly, a second one at once.

    While the block runs, SIGINT no longer raises ``KeyboardInterrupt`` wherever the
    interpreter happens to be (inside uvicorn, the SDK, a half-built pydantic model);
    it cancels the running demo, whose server then shuts down as usual and removes
    the demo's sessions. :meth:`run` returns ``None`` once interrupted.
    """

    def __init__(self) -> None:
        self.requested = False
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # What the SDK and uvicorn log while their tasks are cancelled is noise now.
        for name in ("mcp", "uvicorn", "httpx"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T | None:
        async def main() -> _T:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            if self.requested:
                raise asyncio.CancelledError
            return await coroutine

        if self.requested:
            coroutine.close()
            return None
        try:
            return asyncio.run(main())
        except (asyncio.CancelledError, KeyboardInterrupt):
            if not self.requested:
                raise
            return None
