"""Where an import reads from: dump files and SQL ``events`` tables.

* :class:`DumpFile`: JSON lines, one event a line, plain or gzip-compressed (recognised by
  its magic bytes, whatever the name), or ``-`` for standard input. Legacy lines and the
  lines ``eventstore export`` writes are both accepted.
* :class:`EventsTable`: the ``events`` table of an SQLite or PostgreSQL database, the
  pre-stream legacy one (``id, session_id, event_id, data, timestamp``) or the current one
  (which adds ``stream_id`` and ``seq``). It is opened read-only and only ever SELECTed.

Both yield validated :class:`~eventstore.transfer.records.SourceEvent` objects and
:class:`~eventstore.transfer.records.Reject` objects in source order, in chunks, reading
and parsing off the event loop. :meth:`Source.originals` gives the input at chosen
positions back exactly as it was (for reject reports).
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import stat
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, cast

from sqlalchemy import LargeBinary, Text, column, func, inspect, select, table
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement, TableClause

from eventstore.errors import InvalidInputError, StoreUnavailableError
from eventstore.sql.engine import async_engine, display_url, normalize_url
from eventstore.transfer.records import (
    Reject,
    SourceEvent,
    dumps_line,
    parse_line,
    parse_row,
    readable,
)
from eventstore.transfer.streaming import read_errors, what_failed
from eventstore.transfer.threads import in_thread

#: Source events handed on at a time.
CHUNK = 5000

_GZIP_MAGIC = b"\x1f\x8b"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_COLUMNS = ("id", "session_id", "event_id", "data", "timestamp")
_STREAM_COLUMNS = ("stream_id", "seq")
#: Columns read as bytes from SQLite (see :func:`_selected`).
_TEXT_COLUMNS = ("session_id", "event_id", "data", "stream_id")

Chunk = list[SourceEvent | Reject]
#: ``(position, the input there as it was)`` pairs.
Originals = list[tuple[int, str]]


class Source(ABC):
    """Something an import reads events from."""

    #: Shown in progress output and reports.
    description: str

    @abstractmethod
    def read(self, max_event_bytes: int) -> AsyncIterator[Chunk]:
        """Every event and reject of the source in source order, in chunks.

        ``max_event_bytes`` is the target store's payload limit: larger events are
        rejected here rather than failing later. Raises
        :class:`~eventstore.errors.InvalidInputError` when the source cannot be read at
        all (missing file, corrupt gzip stream, no ``events`` table).
        """

    async def originals(self, positions: Iterator[int]) -> AsyncIterator[Originals]:
        """The input at ``positions`` (ascending) as it was read, in chunks.

        Positions the source cannot give back again (standard input, which is read only
        once) are left out.
        """
        for _ in ():
            yield []


class DumpFile(Source):
    """A JSON-lines dump: a path (plain or gzip) or ``-`` for standard input."""

    def __init__(self, path: str) -> None:
        if path != "-":
            _check_dump_path(path)
        self.path = path
        self.description = "standard input" if path == "-" else path

    async def read(self, max_event_bytes: int) -> AsyncIterator[Chunk]:
        chunks = self._chunks(max_event_bytes)
        try:
            while (chunk := await in_thread(next, chunks, None)) is not None:
                yield chunk
        finally:
            chunks.close()

    def _chunks(self, max_event_bytes: int) -> Generator[Chunk, None, None]:
        position = 0
        try:
            with self._open() as lines:
                chunk: Chunk = []
                for position, raw in enumerate(lines, start=1):
                    if position == 1:
                        self._check_text(raw)
                        # Some Windows editors and tools start UTF-8 text with a BOM.
                        raw = raw.removeprefix(codecs.BOM_UTF8)
                    if not raw.endswith(b"\n") and raw.strip():
                        raise InvalidInputError(self._cut_short(position))
                    item = parse_line(position, raw, max_event_bytes)
                    if item is not None:
                        chunk.append(item)
                    if len(chunk) >= CHUNK:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk
        except (OSError, EOFError) as exc:
            raise InvalidInputError(
                f"cannot read {self.description} after line {position}: {exc}; nothing was imported"
            ) from exc

    def _check_text(self, first_line: bytes) -> None:
        """Refuse, by its first line, a file that is not UTF-8 JSON lines at all.

        Split on the byte ``\\n``, such a file would be a reject a line and the last one
        reported as cut short, which says nothing of what is wrong: a SQLite database
        given as a path instead of a URL, a dump compressed twice, or text in UTF-16 or
        UTF-32 (PowerShell's ``>`` writes UTF-16). JSON text never holds a raw NUL byte
        (it escapes control characters), so one in the first line means a wide encoding
        even without a byte order mark.
        """
        if first_line.startswith(_SQLITE_MAGIC):
            why = (
                "is a SQLite database, not a dump: to import from its events table, give "
                f"it as a URL (sqlite:///{'PATH' if self.path == '-' else self.path})"
            )
        elif first_line.startswith(_GZIP_MAGIC):
            why = "holds gzip data inside gzip: it was compressed twice; decompress it once"
        elif first_line.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            b"\x00" in first_line
        ):
            why = (
                "is not UTF-8 text: it looks like UTF-16 or UTF-32 (NUL bytes or a UTF-16 "
                "byte order mark in its first line); convert it first, e.g. "
                "iconv -f UTF-16 -t UTF-8"
            )
        else:
            return
        raise InvalidInputError(f"{self.description} {why}; nothing was imported")

    def _cut_short(self, position: int) -> str:
        """Why a dump whose last line has no newline is refused.

        ``eventstore export`` ends every line with one, and a line iterator only hands out
        a line without it at the very end of the input: the dump stopped mid-line (a copy
        cut off, a full disk, a writer killed). What is left of that line may even parse
        (``"timestamp": 17`` of ``1700000000000``), so it is not merely rejected: the
        whole import is refused before anything is written.
        """
        return (
            f"{self.description} is cut short: its last line (line {position}) does not end "
            "with a newline, so it may be incomplete; nothing was imported (if the dump is "
            "whole, add the missing newline and run again)"
        )

    async def originals(self, positions: Iterator[int]) -> AsyncIterator[Originals]:
        if self.path == "-":
            return
        chunks = self._original_lines(positions)
        try:
            while (chunk := await in_thread(next, chunks, None)) is not None:
                yield chunk
        finally:
            chunks.close()

    def _original_lines(self, positions: Iterator[int]) -> Generator[Originals, None, None]:
        wanted = next(positions, None)
        chunk: Originals = []
        with self._open() as lines:
            for position, raw in enumerate(lines, start=1):
                if wanted is None:
                    break
                if position == wanted:
                    text = raw.decode("utf-8", "replace").rstrip("\r\n")
                    chunk.append((position, text))
                    if len(chunk) >= CHUNK:
                        yield chunk
                        chunk = []
                    wanted = next(positions, None)
        if chunk:
            yield chunk

    @contextmanager
    def _open(self) -> Iterator[Iterable[bytes]]:
        if self.path == "-":
            # The gzip check peeks without consuming (a pipe cannot seek back).
            stream = sys.stdin.buffer
            if not isinstance(stream, io.BufferedReader):
                stream = io.BufferedReader(cast(io.RawIOBase, stream))
            if stream.peek(2)[:2] == _GZIP_MAGIC:
                with gzip.open(stream, "rb") as unzipped:
                    yield unzipped
            else:
                yield stream
            return
        with open(self.path, "rb") as raw:
            if raw.read(2) == _GZIP_MAGIC:
                raw.seek(0)
                with gzip.open(raw, "rb") as unzipped:
                    yield unzipped
            else:
                raw.seek(0)
                yield raw


def _check_dump_path(path: str) -> None:
    """Refuse a path that is not a regular file, saying what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidInputError(f"no such dump file: {path}") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission
        raise InvalidInputError(f"cannot read dump file {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{path} is a directory, not a dump file")
    if not stat.S_ISREG(mode):
        # The file is opened again to copy rejected lines into the report, and its
        # first bytes are read twice (the gzip check): a pipe or device gives them once.
        kind = _SPECIAL_FILES.get(stat.S_IFMT(mode), "special file")
        raise InvalidInputError(
            f"{path} is a {kind}, not a regular file; to import from it, give - and "
            "redirect it to standard input"
        )


_SPECIAL_FILES = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "named pipe (FIFO)",
    stat.S_IFSOCK: "socket",
}


class EventsTable(Source):
    """The ``events`` table of a database URL, read-only.

    The SQLite file is opened with ``mode=ro`` and PostgreSQL reads run in a ``READ
    ONLY`` transaction, so the source is never written, whatever happens. Rows are read
    in ``id`` order (the legacy insertion order), without holding up the servers that
    still write to the source (see :func:`_rows_by_id`).
    """

    def __init__(self, url: str) -> None:
        if url.strip().lower().startswith("memory:"):
            raise InvalidInputError(
                "memory:// has nothing to import from: an in-memory store lives only inside "
                "its own process (export it there, or import a dump)"
            )
        self.url = normalize_url(url)
        self.description = display_url(self.url)
        if self.url.get_backend_name() == "sqlite":
            database = self.url.database or ""
            if not Path(database).is_file():
                raise InvalidInputError(f"no such SQLite database: {database!r}")

    def _read_only_url(self) -> URL:
        if self.url.get_backend_name() != "sqlite":
            return self.url
        # SQLite's URI filename form is the only way to pass mode=ro through the driver.
        path = Path(self.url.database or "").resolve()
        return self.url.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})

    async def read(self, max_event_bytes: int) -> AsyncIterator[Chunk]:
        engine = async_engine(self._read_only_url(), {})
        failures = read_errors(engine.dialect.name)
        try:
            async with engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execution_options(postgresql_readonly=True)
                names = await conn.run_sync(_event_columns)
                if names is None:
                    raise InvalidInputError(f"{self.description} has no 'events' table")
                missing = [name for name in _LEGACY_COLUMNS if name not in names]
                if missing:
                    raise InvalidInputError(
                        f"the events table of {self.description} lacks the columns "
                        f"{', '.join(missing)}; it is not an event store table"
                    )
                wanted = _LEGACY_COLUMNS + tuple(c for c in _STREAM_COLUMNS if c in names)
                events = table("events", *(column(name, names[name]) for name in wanted))
                async for rows in _rows_by_id(conn, events):
                    yield await in_thread(
                        _parse_rows, [row._asdict() for row in rows], max_event_bytes
                    )
        except failures as exc:
            reason = what_failed(exc, failures)
            raise StoreUnavailableError(f"cannot read {self.description}: {reason}") from exc
        except OSError as exc:
            raise StoreUnavailableError(f"cannot read {self.description}: {exc}") from exc
        finally:
            await engine.dispose()

    async def originals(self, positions: Iterator[int]) -> AsyncIterator[Originals]:
        async for chunk in _table_originals(self, positions):
            yield chunk


async def _table_originals(
    table_source: EventsTable, positions: Iterator[int]
) -> AsyncIterator[Originals]:
    engine = async_engine(table_source._read_only_url(), {})
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(postgresql_readonly=True)
            names = await conn.run_sync(_event_columns) or {}
            wanted = _LEGACY_COLUMNS + tuple(c for c in _STREAM_COLUMNS if c in names)
            events = table("events", *(column(name, names[name]) for name in wanted))
            while ids := list(islice(positions, 1000)):
                query = select(*_selected(conn, events)).where(events.c.id.in_(ids))
                rows = await conn.execute(query)
                found = {int(row.id): dumps_line(readable(row._asdict())) for row in rows}
                yield [(i, found[i]) for i in ids if i in found]
    except DBAPIError as exc:
        raise StoreUnavailableError(f"cannot read {table_source.description}: {exc.orig}") from exc
    finally:
        await engine.dispose()


async def _rows_by_id(conn: AsyncConnection, events: TableClause) -> AsyncIterator[list[Any]]:
    """The table's rows in ``id`` order, :data:`CHUNK` at a time.

    PostgreSQL: one server-side cursor (MVCC: readers block no writer). SQLite: one
    statement per chunk, resuming after the last id. An open SELECT holds SQLite's
    shared lock, and in a legacy file's rollback-journal mode that refuses every
    commit of the servers still writing to it until the read ends (5 s into a large
    import, their busy timeout gave up). Between chunks they get in.
    """
    query = select(*_selected(conn, events)).order_by(events.c.id)
    if conn.dialect.name != "sqlite":
        result = await conn.stream(query.execution_options(yield_per=CHUNK))
        async for rows in result.partitions():
            yield list(rows)
        return
    last: Any = None
    while True:
        page = query.limit(CHUNK) if last is None else query.where(events.c.id > last).limit(CHUNK)
        rows = list((await conn.execute(page)).all())
        await conn.commit()  # nothing to commit: it ends the read, releasing the lock
        if not rows:
            return
        last = rows[-1].id
        yield rows


def _selected(conn: AsyncConnection, events: TableClause) -> list[ColumnElement[Any]]:
    """The columns to read, the text ones as bytes: the driver (or PostgreSQL's
    conversion to the client's UTF-8) would fail the whole read on a value that is not
    UTF-8, while :func:`~eventstore.transfer.records.parse_row` decodes each and rejects
    that row alone.

    SQLite: ``CAST(... AS BLOB)``. PostgreSQL: ``convert_to(CAST(... AS text),
    'SQL_ASCII')``, the stored bytes unconverted (a ``SQL_ASCII`` database holds any;
    ``json``/``jsonb`` go through their text form; ``bytea`` is read as it is).
    """
    return [
        _as_bytes(conn.dialect.name, col) if col.name in _TEXT_COLUMNS else col for col in events.c
    ]


def _as_bytes(dialect: str, col: ColumnElement[Any]) -> ColumnElement[Any]:
    if isinstance(col.type, LargeBinary):  # bytes already (a PostgreSQL bytea)
        return col
    if dialect == "sqlite":
        return sql_cast(col, LargeBinary).label(col.name)
    return func.convert_to(sql_cast(col, Text), "SQL_ASCII", type_=LargeBinary).label(col.name)


def _event_columns(sync_conn: Any) -> dict[str, Any] | None:
    """The ``events`` table's columns and their types; ``None`` without such a table."""
    inspector = inspect(sync_conn)
    if not inspector.has_table("events"):
        return None
    return {col["name"]: col["type"] for col in inspector.get_columns("events")}


def _parse_rows(rows: list[dict[str, Any]], max_event_bytes: int) -> Chunk:
    return [parse_row(int(row["id"]), row, max_event_bytes) for row in rows]


def open_source(spec: str) -> Source:
    """The source ``spec`` names: a database URL (anything with ``://``), else a dump file.

    ``-`` is standard input.
    """
    if "://" in spec or spec.strip().lower().startswith("memory:"):
        return EventsTable(spec)
    return DumpFile(spec)
