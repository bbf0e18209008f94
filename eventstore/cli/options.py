"""Options shared by several subcommands."""

from __future__ import annotations

import click

from eventstore.config import URL_ENV

url_option = click.option(
    "--url",
    envvar=URL_ENV,
    default=None,
    show_envvar=True,
    help="Database URL (sqlite+aiosqlite:///file, postgresql+asyncpg://...). "
    "Default: the embedded SQLite file.",
)
