"""``eventstore info``: where the store is and what it holds."""

from __future__ import annotations

import asyncio

import click
from sqlalchemy.engine import make_url

from eventstore.cli.options import url_option
from eventstore.config import default_url
from eventstore.errors import EventStoreError
from eventstore.open import open_store


@click.command()
@url_option
def info(url: str | None) -> None:
    """Show the store's URL, its per-stream cap and a session count."""
    target = url or default_url()

    async def run() -> None:
        async with open_store(target) as store:
            cap = await store.get_max_events_per_stream()
            click.echo(f"url: {make_url(target).render_as_string(hide_password=True)}")
            click.echo(f"store: {store!r}")
            click.echo(f"max_events_per_stream: {cap if cap is not None else 'unlimited'}")

    try:
        asyncio.run(run())
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc
