"""``eventstore migrate``: create or upgrade a database's schema, or take it back."""

from __future__ import annotations

import logging
import time

import click

from eventstore import migrate as migrations
from eventstore.cli.options import (
    Interrupted,
    an_id,
    duration,
    fail,
    interrupted,
    is_memory,
    parse_url,
    run,
    safe_url,
    url_option,
)
from eventstore.config import default_url
from eventstore.errors import EventStoreError, InvalidInputError
from eventstore.migrations.steps import INVALID_DATA_MODES, Options


def _lock_timeout(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> int | None:
    milliseconds = duration(ctx, param, value)
    if milliseconds is not None:
        try:
            Options.parse({"lock_timeout": milliseconds})
        except InvalidInputError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return milliseconds


@click.command()
@url_option
@click.option(
    "--sql",
    is_flag=True,
    help="Print the SQL script instead of running it (reads the database, writes nothing).",
)
@click.option(
    "--default-stream-id",
    default=None,
    callback=an_id,
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
    callback=_lock_timeout,
    help="Longest wait for a lock that blocks writers, per attempt (500ms, 2s, 1m). "
    "Default: 500ms.",
)
@click.option(
    "--invalid-data",
    type=click.Choice(INVALID_DATA_MODES),
    default=None,
    help="Legacy rows whose data is not JSON: refuse the upgrade, naming them (default), or "
    "keep each such data as a JSON string of its text (and NULL data as JSON null).",
)
@click.option(
    "--downgrade",
    "downgrade_to",
    metavar="REVISION",
    default=None,
    help="Take the schema back to REVISION instead (0001: the legacy table, every row kept).",
)
def migrate(
    url: str | None,
    sql: bool,
    default_stream_id: str | None,
    batch_size: int | None,
    lock_timeout: int | None,
    invalid_data: str | None,
    downgrade_to: str | None,
) -> None:
    """Create the schema of an empty database, or upgrade an older one to this version.

    A legacy (pre-stream) events table without migration history is recognised, stamped
    with the baseline revision and upgraded; an up-to-date database is left alone. Safe
    to re-run after an interruption: it resumes. On PostgreSQL, servers of the previous
    version may keep writing throughout.

    Exit codes: 0 done, 1 failed (the message names the revision), 2 bad usage, 130
    interrupted (run it again to finish).
    """
    target = url or default_url()
    if is_memory(target):
        raise click.UsageError(
            "memory:// is an in-process store without a schema: there is nothing to migrate"
        )
    parse_url(target)
    if downgrade_to is not None and (sql or default_stream_id or batch_size or invalid_data):
        raise click.UsageError(
            "--downgrade takes only --url and --lock-timeout (it cannot print a script)"
        )
    action = "downgrade" if downgrade_to is not None else "upgrade"
    try:
        if sql:
            script = migrations.upgrade_script(
                target,
                default_stream_id=default_stream_id,
                batch_size=batch_size,
                lock_timeout=lock_timeout,
                invalid_data=invalid_data,
            )
            click.echo(run(script), nl=False)
            return
        # Backfill progress is logged at INFO; show it without the rest of -v's detail.
        logging.getLogger("eventstore.migrations").setLevel(logging.INFO)
        click.echo(f"url: {safe_url(target)}")
        started = time.monotonic()
        if downgrade_to is not None:
            report = run(
                migrations.downgrade(
                    target, downgrade_to, lock_timeout=lock_timeout, progress=click.echo
                )
            )
        else:
            report = run(
                migrations.upgrade(
                    target,
                    default_stream_id=default_stream_id,
                    batch_size=batch_size,
                    lock_timeout=lock_timeout,
                    invalid_data=invalid_data,
                    progress=click.echo,
                )
            )
    except Interrupted as stop:
        if parse_url(target).get_backend_name() == "sqlite":
            said = (
                f"the {action} stopped; SQLite runs it in one transaction, so none of it "
                "was committed. Run the same command again to do it all"
            )
        else:
            said = (
                f"the {action} stopped; what it committed stays. Run the same command "
                "again to finish: it resumes where it stopped"
            )
        interrupted(said, stop)
    except EventStoreError as exc:
        fail(str(exc))
    if report.applied:
        click.echo(f"done in {time.monotonic() - started:.2f}s")
