"""``eventstore demo``: a real MCP server and client lose their connection and resume."""

from __future__ import annotations

import asyncio

import click

from eventstore.cli.options import url_option
from eventstore.config import default_url
from eventstore.errors import EventStoreError


@click.command()
@url_option
@click.option(
    "--steps", default=6, show_default=True, help="Progress notifications the tool sends."
)
@click.option(
    "--pause-after",
    default=3,
    show_default=True,
    help="Cut the connection after this many notifications.",
)
def demo(url: str | None, steps: int, pause_after: int) -> None:
    """Show resumability end to end, with the official MCP SDK on both sides.

    Starts an MCP server (uvicorn on 127.0.0.1, a free port) whose tool streams progress
    notifications, connects two SDK clients at once (their tool calls share a request
    id), cuts their connections mid-call, lets the SDK clients resume with
    Last-Event-ID, and prints what each received and a list of checks. Exits with
    status 1 if any check fails. The demo's sessions are removed from the store when
    it ends.
    """
    if not 1 <= pause_after < steps:
        raise click.BadParameter(
            "must be at least 1 and less than --steps", param_hint="--pause-after"
        )
    try:
        from eventstore.mcp.demo.scenario import run_demo
        from eventstore.mcp.demo.transcript import render
    except ImportError as exc:
        raise click.ClickException(
            f"the demo needs the MCP SDK ({exc}); "
            "install it with: pip install 'mcp-eventstore[mcp]'"
        ) from exc
    try:
        report = asyncio.run(run_demo(url or default_url(), steps=steps, pause_after=pause_after))
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc

    def style(text: str, passed: bool | None) -> str:
        if passed is None:
            return text
        return click.style(text, fg="green" if passed else "red")

    for line in render(report, style):
        click.echo(line)
    if not report.passed:
        raise SystemExit(1)
