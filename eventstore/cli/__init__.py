"""The ``eventstore`` command line. Each subcommand lives in its own module."""

from __future__ import annotations

import logging

import click

from eventstore.cli import demo, info, migrate, prune, transfer


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mcp-eventstore", prog_name="eventstore")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Resumable event storage for MCP servers: memory, SQLite, PostgreSQL."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(demo.demo)
main.add_command(info.info)
main.add_command(migrate.migrate)
main.add_command(prune.prune)
main.add_command(transfer.import_command)
main.add_command(transfer.export_command)
