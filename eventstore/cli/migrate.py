"""``eventstore migrate``: create or upgrade a database's schema."""

from __future__ import annotations

import asyncio
import logging
import time

import click
from sqlalchemy.engine import make_url

from eventstore import migrate as migrations
from eventstore.cli.options import url_option
from eventstore.config import default_url
from eventstore.errors import EventStoreError


@click.command()
@url_option
@click.option("--sql", is_flag=True, help="Print the SQL script instead of running it.")
@click.option(
    "--default-stream-id",
    default=None,
    help="Stream of the rows of a legacy (pre-stream) table. Default: _default.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows numbered per statement by the PostgreSQL backfill. Default: 5000.",
)
@click.option(
    "--lock-timeout",
    default=None,
    help="Longest wait for a lock that blocks writers, per attempt (500ms, 2s). Default: 500ms.",
)
def migrate(
    url: str | None,
    sql: bool,
    default_stream_id: str | None,
    batch_size: int | None,
    lock_timeout: str | None,
) -> None:
    """Create the schema of an empty database, or upgrade an older one to this version.

    A legacy (pre-stream) events table without migration history is recognised, stamped
    with the baseline revision and upgraded; an up-to-date database is left alone. Safe
    to re-run after an interruption: it resumes. On PostgreSQL, servers of the previous
    version may keep writing throughout.
    """
    target = url or default_url()
    try:
        if sql:
            script = migrations.upgrade_script(
                target,
                default_stream_id=default_stream_id,
                batch_size=batch_size,
                lock_timeout=lock_timeout,
            )
            click.echo(asyncio.run(script), nl=False)
            return
        # Backfill progress is logged at INFO; show it without the rest of -v's detail.
        logging.getLogger("eventstore.migrations").setLevel(logging.INFO)
        click.echo(f"url: {make_url(target).render_as_string(hide_password=True)}")
        started = time.monotonic()
        run = migrations.upgrade(
            target,
            default_stream_id=default_stream_id,
            batch_size=batch_size,
            lock_timeout=lock_timeout,
            progress=click.echo,
        )
        report = asyncio.run(run)
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if report.applied:
        click.echo(f"done in {time.monotonic() - started:.2f}s")
