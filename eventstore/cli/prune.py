"""``eventstore prune``: drop sessions nobody touched for a while (the MCP session TTL)."""

from __future__ import annotations

import asyncio
import re

import click
from sqlalchemy.engine import make_url

from eventstore.cli.options import url_option
from eventstore.config import default_url
from eventstore.errors import EventStoreError
from eventstore.open import open_store

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """``90s``, ``15m``, ``1h``, ``1h30m``, ``2d`` or ``500ms``, in milliseconds."""
    text = value.strip().lower().replace(" ", "")
    parts = _PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 1h, 1h30m or 2d")
    return round(sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts) * 1000)


@click.command()
@url_option
@click.option(
    "--idle",
    "idle_ms",
    required=True,
    callback=parse_duration,
    help="Drop sessions none of whose streams changed for this long (e.g. 1h).",
)
def prune(url: str | None, idle_ms: int) -> None:
    """Drop every session idle for at least --idle, with all its streams and events.

    The MCP SDK never tells the store that a session ended (unless the client sends
    DELETE), so run this periodically, with --idle no shorter than the server's
    session idle timeout (the SDK's default is 30 minutes). A server using
    eventstore.mcp.resumable_app() does the same in the background.
    """
    target = url or default_url()

    async def run() -> int:
        async with open_store(target) as store:
            return await store.prune_idle_sessions(idle_ms)

    try:
        removed = asyncio.run(run())
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    shown = make_url(target).render_as_string(hide_password=True)
    click.echo(f"pruned {removed} idle session(s) from {shown}")
