"""``eventstore info``: where the store is and what it holds. It never writes anything."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from eventstore.cli.options import (
    Interrupted,
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
from eventstore.sql.schema import event_streams, events
from eventstore.sql.store import SqlEventStore


@click.command()
@url_option
def info(url: str | None) -> None:
    """Show the store's URL, schema revision, per-stream cap, and how many sessions,
    streams and events it holds.

    Only reads: a database without an event store (a mistyped SQLite path, a database
    holding only other tables) is reported as an error and left as it is.
    """
    target = url or default_url()
    if is_memory(target):
        click.echo(f"url: {target}")
        click.echo("store: in-memory (it lives inside one process: nothing to show here)")
        return
    require_database(target)
    click.echo(f"url: {safe_url(target)}")

    async def show() -> None:
        found = await require_store(target)
        click.echo(f"schema: revision {found.revision} (up to date)")
        async with open_store(target, create_schema=False) as store:
            cap = await store.get_max_events_per_stream()
            click.echo(f"max_events_per_stream: {cap if cap is not None else 'unlimited'}")
            assert isinstance(store, SqlEventStore)
            async with store.engine.connect() as conn:
                sessions = await conn.scalar(
                    select(func.count(func.distinct(event_streams.c.session_id)))
                )
                streams = await conn.scalar(select(func.count()).select_from(event_streams))
                held = await conn.scalar(select(func.count()).select_from(events))
            click.echo(f"sessions: {sessions or 0:,}")
            click.echo(f"streams: {streams or 0:,}")
            click.echo(f"events: {held or 0:,}")

    try:
        run(show())
    except Interrupted as stop:
        interrupted("nothing was changed", stop)
    except EventStoreError as exc:
        fail(str(exc))
