"""``eventstore prune``: drop sessions nobody touched for a while (the MCP session TTL)."""

from __future__ import annotations

import click

from eventstore.cli.options import (
    Interrupted,
    duration,
    fail,
    interrupted,
    is_memory,
    require_database,
    require_store,
    run,
    safe_url,
    url_option,
)
from eventstore.config import default_url
from eventstore.errors import EventStoreError
from eventstore.open import open_store


def parse_duration(ctx: click.Context | None, param: click.Parameter | None, value: str) -> int:
    """``90s``, ``15m``, ``1h``, ``1h30m``, ``2d`` or ``500ms``, in milliseconds (the one
    duration syntax of the command line: :func:`eventstore.migrate.parse_duration_ms`).

    Zero is refused: every session is idle for at least 0 ms, so ``--idle 0`` would drop
    them all, even one written a moment ago -- never what a TTL means.
    """
    parsed = duration(ctx, param, value)
    assert parsed is not None
    if parsed == 0:
        raise click.BadParameter(
            f"{value!r} must be longer than 0: an idle time of 0 would drop every session, "
            "even those in use (the MCP SDK's session idle timeout is 30m)",
            ctx=ctx,
            param=param,
        )
    return parsed


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
    eventstore.mcp.resumable_app() does the same in the background. It never creates a
    database or a schema: a URL without an event store is an error.
    """
    target = url or default_url()
    if is_memory(target):
        raise click.UsageError(
            "memory:// lives inside one process: there is nothing to prune from outside it"
        )
    require_database(target)

    async def prune_sessions() -> int:
        await require_store(target)
        async with open_store(target, create_schema=False) as store:
            return await store.prune_idle_sessions(idle_ms)

    try:
        removed = run(prune_sessions())
    except Interrupted as stop:
        interrupted("the prune stopped; sessions already dropped stay dropped", stop)
    except EventStoreError as exc:
        fail(str(exc))
    click.echo(f"pruned {removed} idle session(s) from {safe_url(target)}")
