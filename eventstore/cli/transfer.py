"""``eventstore import`` and ``eventstore export``: moving events between stores and dumps.

Exit codes of ``eventstore import``: 0 it finished and rejected nothing (or, with
``--dry-run``, would); what it skipped by design -- identical duplicates, events the target
holds already, the older events of a stream over the target's cap -- is listed in its
summary, not an error; 3 (:data:`EXIT_REJECTED`) it finished but rejected lines (see the
reject file); 1 it failed (unreadable or truncated source, unreachable target, unwritable
reject file); 2 bad usage; 130 interrupted by Ctrl-C, 143 by SIGTERM (run the same command
again to resume).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, cast

import click
from sqlalchemy.engine import URL

from eventstore.cli.options import (
    EXIT_INTERRUPTED,
    Interrupted,
    an_id,
    fail,
    interrupted,
    is_memory,
    not_empty,
    parse_url,
    run,
    safe_url,
    sigterm_raises,
    sqlite_path,
    url_option,
)
from eventstore.config import default_url
from eventstore.errors import EventStoreError, SchemaError, StoreUnavailableError
from eventstore.events import DEFAULT_STREAM_ID
from eventstore.memory import InMemoryEventStore
from eventstore.migrate import SchemaState
from eventstore.migrate import status as schema_status
from eventstore.open import open_store
from eventstore.store import EventStore
from eventstore.transfer import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    DumpFile,
    EventsTable,
    ImportReport,
    LogProgress,
    ProgressSink,
    Reject,
    RejectFile,
    RichProgress,
    Source,
    export_events,
    import_events,
    open_source,
)

#: Exit code of an import that finished but rejected at least one line.
EXIT_REJECTED = 3
#: Rejects a dry run shows (it writes no reject file).
SHOWN_REJECTS = 10

__all__ = ["EXIT_INTERRUPTED", "EXIT_REJECTED", "export_command", "import_command"]


def _progress(log_every: float) -> ProgressSink:
    if sys.stderr.isatty():
        return RichProgress(sys.stderr)
    return LogProgress(lambda line: click.echo(line, err=True), interval=log_every)


def _check_writable(path: Path, what: str) -> None:
    """Fail (one ``Error:`` line) unless a file could be written at ``path``."""
    if path.is_dir():
        fail(f"cannot write the {what} {path}: it is a directory")
    parent = path.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        fail(f"cannot write the {what} {path}: the directory {parent} {why}")
    if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
        fail(f"cannot write the {what} {path}: the directory {parent} is not writable")


def _with_sidecars(database: Path) -> list[Path]:
    """A SQLite file and the files SQLite keeps next to it (WAL, shared memory, journal)."""
    return [database, *(database.with_name(database.name + end) for end in _SIDECARS)]


_SIDECARS = ("-wal", "-shm", "-journal")
#: How every reject file written by an import starts (``RejectFile``'s records).
_REJECT_RECORD_START = b'{"line":'


def _is_reject_file(path: Path) -> bool:
    """Whether ``path`` is missing, empty, or holds an import's rejects (safe to replace)."""
    try:
        with open(path, "rb") as existing:
            start = existing.read(len(_REJECT_RECORD_START))
    except FileNotFoundError:
        return True
    except OSError:
        return True  # not readable: writing it fails with its own clear error
    return start in (b"", _REJECT_RECORD_START)


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return a.samefile(b)
    return a.expanduser().resolve() == b.expanduser().resolve()


class _RejectSample:
    """A dry run's rejects: counted, the first few kept to show; nothing is written."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[Reject] = []

    def __call__(self, reject: Reject) -> None:
        self.count += 1
        if len(self.shown) < SHOWN_REJECTS:
            self.shown.append(reject)


@click.command("import")
@click.argument("source", callback=not_empty)
@url_option
@click.option(
    "--stream-id",
    default=DEFAULT_STREAM_ID,
    show_default=True,
    callback=an_id,
    help="Stream for events that have none (legacy dumps and tables). "
    "Events exported with a stream keep theirs.",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(path_type=Path),
    help="JSON-lines file for rejected lines (line, reason, source). Default: "
    "SOURCE.rejects.jsonl, or eventstore-import.rejects.jsonl for a database or stdin.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read, check against the target and report; write nothing (no reject file "
    "either: the first rejects are shown).",
)
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
    keep their timestamps. Every event is checked against the target: one it already
    holds is not written again, so re-running the same import stores nothing twice (that
    is how an interrupted import resumes), and the summary tells new events from those
    already present.

    \b
    Exit codes:
      0    done, nothing rejected (older events over the target's cap are
           skipped, and listed; with --dry-run: would be)
      3    done, but lines were rejected (see the reject file)
      1    failed (unreadable source, unreachable target, unwritable reject file)
      2    bad usage (unknown option, SOURCE and --url the same database, ...)
      130  interrupted: run the same command again to import the rest
      143  terminated (SIGTERM): likewise
    """
    target = url or default_url()
    if is_memory(target):
        raise click.UsageError(
            "an in-memory store lives only inside this process: import into a database URL"
        )
    parse_url(target)
    if is_memory(source):
        raise click.UsageError(
            "memory:// has nothing to import from: an in-memory store lives only inside its "
            "own process (export it there, or import a dump)"
        )
    try:
        origin = open_source(source)
    except EventStoreError as exc:
        fail(str(exc))
    if isinstance(origin, EventsTable) and _same_database(origin.url, target):
        raise click.UsageError("SOURCE and --url are the same database")
    if rejects_path is None:
        rejects_path = Path(
            "eventstore-import.rejects.jsonl"
            if isinstance(origin, EventsTable) or source == "-"
            else f"{source}.rejects.jsonl"
        )
    _check_rejects_path(rejects_path, origin, target, dry_run)
    sample = _RejectSample()
    rejects = RejectFile(rejects_path)
    progress = _progress(log_every)
    click.echo(f"source: {origin.description}")
    click.echo(f"target: {safe_url(target)}{' (dry run: nothing is written)' if dry_run else ''}")
    try:
        try:
            report = run(
                _import(
                    origin,
                    target,
                    stream_id,
                    batch_size,
                    dry_run,
                    sample if dry_run else rejects,
                    progress,
                )
            )
        finally:
            progress.finish()
            if not dry_run:
                rejects.close()
    except Interrupted as stop:
        interrupted(
            "a dry run, so nothing was written"
            if dry_run
            else "every batch committed so far is kept; run the same command again to "
            "import the rest (nothing is stored twice)",
            stop,
        )
    except StoreUnavailableError as exc:
        # Retried for RETRY_SECONDS already; what was committed stays, so say how to go on.
        fail(
            f"{exc}; once the database is back, run the same command again"
            + ("" if dry_run else ": it resumes where it stopped (nothing is stored twice)")
        )
    except EventStoreError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the reject file {rejects_path}: {exc.strerror or exc}")
    _summarise(report, rejects_path, sample)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _check_rejects_path(path: Path, origin: Source, target: str, dry_run: bool) -> None:
    """Refuse a reject file that would overwrite the source or a database, or that cannot
    be written -- before anything is read or created."""
    clobbered: list[tuple[Path, str]] = []
    if isinstance(origin, DumpFile) and origin.path != "-":
        clobbered.append((Path(origin.path), "the source dump"))
    if isinstance(origin, EventsTable):
        source_file = sqlite_path(origin.url)
        if source_file is not None:
            clobbered += [(file, "the source database") for file in _with_sidecars(source_file)]
    target_file = sqlite_path(parse_url(target))
    if target_file is not None:
        clobbered += [(file, "the target database") for file in _with_sidecars(target_file)]
    for other, what in clobbered:
        if _same_file(path, other):
            raise click.UsageError(
                f"--rejects {path} is {what}: the rejects would overwrite it; choose another file"
            )
    if not _is_reject_file(path):
        # A run replaces the reject file, or removes it when nothing is rejected.
        raise click.UsageError(
            f"--rejects {path} exists and is not a reject file: the import would overwrite "
            "or remove it; choose another file (or delete it)"
        )
    if not dry_run:
        _check_writable(path, "reject file")


async def _import(
    origin: Source,
    target: str,
    stream_id: str,
    batch_size: int,
    dry_run: bool,
    on_reject: RejectFile | _RejectSample,
    progress: ProgressSink,
) -> ImportReport:
    async with _target(target, dry_run) as store:
        return await import_events(
            origin,
            store,
            stream_id=stream_id,
            batch_size=batch_size,
            dry_run=dry_run,
            on_reject=on_reject,
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
        if (await schema_status(target)).state is not SchemaState.EMPTY:
            raise  # legacy, behind, ahead, foreign tables: the import refuses them too
        click.echo("target: no event store tables yet (the import creates them)")
        yield InMemoryEventStore()
        return
    try:
        yield store
    finally:
        await store.close()


def _missing_sqlite_file(target: str) -> bool:
    if is_memory(target):
        return False
    path = sqlite_path(parse_url(target))
    return path is not None and not path.is_file()


def _same_database(source: URL, target: str) -> bool:
    other = parse_url(target)
    source_file, target_file = sqlite_path(source), sqlite_path(other)
    if source_file is not None and target_file is not None:
        return _same_file(source_file, target_file)
    return source.render_as_string(hide_password=False) == other.render_as_string(
        hide_password=False
    )


def _summarise(report: ImportReport, rejects: Path, sample: _RejectSample) -> None:
    click.echo(
        f"read: {report.read:,} events (events without a stream go to stream {report.stream_id!r})"
    )
    if report.duplicates:
        click.echo(f"skipped: {report.duplicates:,} identical duplicate lines")
    if report.rejected:
        held = (
            f" ({report.conflicts:,} of them already in the target with other content)"
            if report.conflicts
            else ""
        )
        if report.dry_run:
            click.echo(
                f"would reject: {report.rejected:,} lines{held}; no reject file is written "
                "by a dry run, the first ones:"
            )
            for reject in sample.shown:
                click.echo(f"  line {reject.position}: {reject.reason}")
        else:
            click.echo(f"rejected: {report.rejected:,} lines{held}, listed in {rejects}")
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
    if report.trimmed:
        click.echo(
            f"cap: {'would trim' if report.dry_run else 'trimmed'} {report.trimmed:,} events "
            f"the target held already (the oldest of {report.trimmed_streams:,} stream(s)) "
            "to make room for the new ones"
        )
    if report.present:
        click.echo(
            f"already present: {report.present:,} events (the target holds them, identical; "
            "not written again)"
        )
    verb = "would import" if report.dry_run else "imported"
    click.echo(
        f"{verb}: {_count(report.new, 'new event')} in {_count(report.sessions, 'session')} "
        f"({_count(report.streams, 'stream')})"
    )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


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
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write to this file instead of standard output (- is standard output); a name "
    "ending in .gz is gzip-compressed. The file appears only once the export is complete.",
)
def export_command(url: str | None, session_ids: tuple[str, ...], output: Path | None) -> None:
    """Write the store at --url as JSON lines (with stream_id and seq).

    One event a line, session by session, stream by stream, in seq order, streamed from
    one consistent snapshot in constant memory. `eventstore import` reads it back. With
    --output, the export goes to a temporary file next to it, renamed when complete: an
    interrupted or failed export leaves nothing that looks like a dump.
    """
    target = url or default_url()
    if is_memory(target):
        raise click.UsageError(
            "memory:// has nothing to export: an in-memory store lives only inside its own process"
        )
    if _missing_sqlite_file(target):
        fail(f"no SQLite database at {safe_url(target)}")
    if output == Path("-"):
        output = None
    if output is not None:
        _check_writable(output, "output")
        database = sqlite_path(parse_url(target))
        if database is not None and any(_same_file(output, f) for f in _with_sidecars(database)):
            raise click.UsageError(
                f"--output {output} is the database being exported: the dump would replace "
                "it; choose another file"
            )

    async def export(out: IO[bytes]) -> int:
        progress = _progress(10.0)
        try:
            async with open_store(target, create_schema=False) as store:
                return await export_events(store, out, session_ids=session_ids, progress=progress)
        finally:
            progress.finish()

    shown = "standard output" if output is None else str(output)
    try:
        with sigterm_raises(), _output(output) as out:
            count = run(export(out))
    except Interrupted as stop:
        interrupted(
            "the output is incomplete"
            if output is None
            else f"nothing was written to {output}; run the export again",
            stop,
        )
    except EventStoreError as exc:
        fail(str(exc))
    except BrokenPipeError:
        # The reader stopped early (`| head`): one line, not a traceback.
        sys.stdout = open(os.devnull, "w")
        fail(f"{shown} was closed before the export finished (broken pipe)")
    except OSError as exc:
        fail(f"cannot write {shown}: {exc.strerror or exc}")
    click.echo(f"exported {count:,} events", err=True)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes]]:
    """Where the export goes: standard output, a device or pipe as it is, or a regular
    file written under a temporary name and renamed into place once complete."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        special = not stat.S_ISREG(path.stat().st_mode)
    except OSError:
        special = False  # no such file yet
    if special:
        # /dev/stdout, a FIFO, /dev/null: there is nothing to rename into place.
        with open(path, "wb") as device:
            yield device
        return
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    partial = Path(name)
    try:
        with os.fdopen(handle, "wb") as raw:
            if path.suffix.lower() == ".gz":
                with gzip.GzipFile(filename=str(path), mode="wb", fileobj=raw) as compressed:
                    yield cast(IO[bytes], compressed)
            else:
                yield raw
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(partial, _file_mode(path))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """The mode ``open()`` would have given a new file (or the file's own, if it exists)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
