"""``eventstore import`` and ``eventstore export``: moving events between stores and dumps.

Exit codes of ``eventstore import``: 0 everything was imported (or, with ``--dry-run``,
would be); 3 (:data:`EXIT_REJECTED`) it finished but rejected lines (see the reject file);
1 it failed (unreadable source, unreachable target); 2 bad usage; 130 interrupted (run
the same command again to resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, cast

import click
from sqlalchemy.engine import URL, make_url

from eventstore.cli.options import url_option
from eventstore.config import default_url
from eventstore.errors import EventStoreError, SchemaError
from eventstore.events import DEFAULT_STREAM_ID
from eventstore.memory import InMemoryEventStore
from eventstore.open import open_store
from eventstore.sql.engine import normalize_url
from eventstore.store import EventStore
from eventstore.transfer import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    EventsTable,
    ImportReport,
    LogProgress,
    ProgressSink,
    RejectFile,
    RichProgress,
    Source,
    export_events,
    import_events,
    open_source,
)

#: Exit code of an import that finished but rejected at least one line.
EXIT_REJECTED = 3
#: Exit code of an interrupted import (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _progress(log_every: float) -> ProgressSink:
    if sys.stderr.isatty():
        return RichProgress(sys.stderr)
    return LogProgress(lambda line: click.echo(line, err=True), interval=log_every)


def _is_memory(url: str) -> bool:
    return url.strip().lower().startswith("memory:")


def _safe(url: str | URL) -> str:
    if isinstance(url, str) and _is_memory(url):
        return url
    return make_url(url).render_as_string(hide_password=True)


@click.command("import")
@click.argument("source")
@url_option
@click.option(
    "--stream-id",
    default=DEFAULT_STREAM_ID,
    show_default=True,
    help="Stream for events that have none (legacy dumps and tables). "
    "Events exported with a stream keep theirs.",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="JSON-lines file for rejected lines (line, reason, source). Default: "
    "SOURCE.rejects.jsonl, or eventstore-import.rejects.jsonl for a database or stdin.",
)
@click.option("--dry-run", is_flag=True, help="Read, check and report; write nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Most events per transaction.",
)
@click.option(
    "--log-every",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal.",
)
def import_command(
    source: str,
    url: str | None,
    stream_id: str,
    rejects_path: Path | None,
    dry_run: bool,
    batch_size: int,
    log_every: float,
) -> None:
    """Import SOURCE into the store at --url.

    SOURCE is a JSON-lines dump (one event a line: session_id, id, data, timestamp, and
    stream_id and seq if written by `eventstore export`), plain or gzip-compressed, `-`
    for standard input, or a database URL whose `events` table (legacy or current) is
    read without being modified.

    Order within each session is kept (seq, else timestamp, then source order) and events
    keep their timestamps. Re-running the same import stores nothing twice: that is how
    an interrupted import resumes. Exit codes: 0 done, 3 done but lines were rejected,
    1 failed, 130 interrupted.
    """
    target = url or default_url()
    if _is_memory(target):
        raise click.UsageError(
            "an in-memory store lives only inside this process: import into a database URL"
        )
    try:
        origin = open_source(source)
        if isinstance(origin, EventsTable) and _same_database(origin.url, target):
            raise click.UsageError("SOURCE and --url are the same database")
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if rejects_path is None:
        rejects_path = Path(
            "eventstore-import.rejects.jsonl"
            if isinstance(origin, EventsTable) or source == "-"
            else f"{source}.rejects.jsonl"
        )
    rejects = RejectFile(rejects_path)
    progress = _progress(log_every)
    click.echo(f"source: {origin.description}")
    click.echo(f"target: {_safe(target)}{' (dry run: nothing is written)' if dry_run else ''}")
    try:
        try:
            report = asyncio.run(
                _import(origin, target, stream_id, batch_size, dry_run, rejects, progress)
            )
        finally:
            progress.finish()
            rejects.close()
    except KeyboardInterrupt:
        click.echo(
            "interrupted: every batch committed so far is kept; run the same command again "
            "to import the rest (nothing is stored twice)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    _summarise(report, rejects)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


async def _import(
    origin: Source,
    target: str,
    stream_id: str,
    batch_size: int,
    dry_run: bool,
    rejects: RejectFile,
    progress: ProgressSink,
) -> ImportReport:
    async with _target(target, dry_run) as store:
        return await import_events(
            origin,
            store,
            stream_id=stream_id,
            batch_size=batch_size,
            dry_run=dry_run,
            on_reject=rejects,
            progress=progress,
        )


@contextlib.asynccontextmanager
async def _target(target: str, dry_run: bool) -> AsyncIterator[EventStore]:
    """The target store; for a dry run, opened without creating anything."""
    if not dry_run:
        async with open_store(target) as store:
            yield store
        return
    if _missing_sqlite_file(target):
        click.echo("target: the SQLite file does not exist yet (the import creates it)")
        yield InMemoryEventStore()
        return
    try:
        store = await open_store(target, create_schema=False)
    except SchemaError:
        click.echo("target: no event store tables yet (the import creates them)")
        yield InMemoryEventStore()
        return
    try:
        yield store
    finally:
        await store.close()


def _missing_sqlite_file(target: str) -> bool:
    if _is_memory(target):
        return False
    parsed = normalize_url(target)
    return parsed.get_backend_name() == "sqlite" and not (
        Path(parsed.database or "").expanduser().is_file()
    )


def _same_database(source: URL, target: str) -> bool:
    other = normalize_url(target)
    if source.get_backend_name() == "sqlite" and other.get_backend_name() == "sqlite":
        return Path(source.database or "").resolve() == Path(other.database or "").resolve()
    return source.render_as_string(hide_password=False) == other.render_as_string(
        hide_password=False
    )


def _summarise(report: ImportReport, rejects: RejectFile) -> None:
    click.echo(
        f"read: {report.read:,} events (events without a stream go to stream {report.stream_id!r})"
    )
    if report.duplicates:
        click.echo(f"skipped: {report.duplicates:,} identical duplicate lines")
    if report.rejected:
        click.echo(f"rejected: {report.rejected:,} lines, listed in {rejects.path}")
    cap = report.cap
    if cap is not None and cap.streams:
        click.echo(
            f"cap: the target keeps at most {cap.cap:,} events per stream; {cap.streams:,} "
            f"stream(s) had more, so only their newest {cap.cap:,} are imported "
            f"({cap.dropped:,} older events skipped):"
        )
        for stream in cap.examples:
            click.echo(
                f"  session {stream.session_id!r} stream {stream.stream_id!r}: "
                f"{stream.total:,} events, keeps the newest {stream.kept:,}"
            )
        if cap.streams > len(cap.examples):
            click.echo(f"  ... and {cap.streams - len(cap.examples):,} more stream(s)")
    verb = "would import" if report.dry_run else "imported"
    count = report.events if report.dry_run else report.stored
    click.echo(
        f"{verb}: {count:,} events in {report.sessions:,} sessions ({report.streams:,} streams)"
    )


@click.command("export")
@url_option
@click.option(
    "--session",
    "session_ids",
    multiple=True,
    help="Export only this session (repeatable). Default: every session.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of standard output; a name ending in .gz is gzip-compressed.",
)
def export_command(url: str | None, session_ids: tuple[str, ...], output: Path | None) -> None:
    """Write the store at --url as JSON lines (with stream_id and seq).

    One event a line, session by session, stream by stream, in seq order, streamed from
    one consistent snapshot in constant memory. `eventstore import` reads it back.
    """
    target = url or default_url()
    if _missing_sqlite_file(target):
        raise click.ClickException(f"no SQLite database at {_safe(target)}")

    async def run(out: IO[bytes]) -> int:
        progress = _progress(10.0)
        try:
            async with open_store(target, create_schema=False) as store:
                return await export_events(store, out, session_ids=session_ids, progress=progress)
        finally:
            progress.finish()

    try:
        with _output(output) as out:
            count = asyncio.run(run(out))
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error worth a traceback.
        sys.stdout = open(os.devnull, "w")
        sys.exit(1)
    click.echo(f"exported {count:,} events", err=True)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes]]:
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wb") as compressed:
            yield cast(IO[bytes], compressed)
    else:
        with open(path, "wb") as plain:
            yield plain
