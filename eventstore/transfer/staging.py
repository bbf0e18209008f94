"""The import's external sort: a private, temporary SQLite database on disk.

A dump may be larger than memory and its events out of order, duplicated, or more than a
capped stream keeps. Staging puts every valid event into a temporary SQLite database
(SQLite's own "empty filename" database: on disk, unlinked as soon as it is created, so
even a killed import leaves no file behind), then lets SQLite's indexes do the
sorting, duplicate detection and capping with a bounded page cache. Memory stays flat
whatever the dump's size; the temporary file needs roughly the dump's size on the disk
SQLite uses for temporary files (``$SQLITE_TMPDIR``, else ``/var/tmp`` or ``/tmp``).

Not thread-safe: one caller at a time, which may be any thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from eventstore.codec import same_content
from eventstore.transfer.records import Reject, SourceEvent

_SCHEMA = """
CREATE TABLE staged (
    position  INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    seq       INTEGER,
    timestamp INTEGER NOT NULL,
    event_id  TEXT NOT NULL,
    data      TEXT NOT NULL
);
-- rows of staged that are not imported: duplicates, conflicts, beyond the cap
CREATE TABLE dropped (row_id INTEGER PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE over_cap (session_id TEXT, stream_id TEXT, total INTEGER);
-- rejects reported once the whole input is settled, with the input as it was
CREATE TABLE late_rejects (position INTEGER NOT NULL, reason TEXT NOT NULL, fallback TEXT NOT NULL);
"""

# Built after loading: one sort per index instead of a b-tree insert per row.
_INDEXES = """
CREATE INDEX staged_by_event ON staged (session_id, event_id, position);
CREATE INDEX staged_in_order ON staged (session_id, stream_id, seq, timestamp, position);
"""

# Statements are spelled out in full (no string building): every value is a bound
# parameter. Rows of ``dropped`` are excluded everywhere, and the import order within a
# stream is a new-format dump's seq, else (legacy) the timestamp, then source order.
_INSERT = (
    "INSERT INTO staged (position, session_id, stream_id, seq, timestamp, event_id, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DUPLICATED_IDS = (
    "SELECT session_id, event_id FROM staged GROUP BY session_id, event_id HAVING count(*) > 1"
)
_COPIES = (
    "SELECT rowid, position, session_id, stream_id, seq, timestamp, event_id, data"
    " FROM staged WHERE session_id = ? AND event_id = ? ORDER BY position"
)
_FIND_OVER_CAP = (
    "INSERT INTO over_cap SELECT session_id, stream_id, count(*) FROM staged"
    " WHERE NOT EXISTS (SELECT 1 FROM dropped WHERE dropped.row_id = staged.rowid)"
    " GROUP BY session_id, stream_id HAVING count(*) > ?"
)
_DROP_OLDEST = (
    "INSERT INTO dropped SELECT rowid, 'cap' FROM staged"
    " WHERE session_id = ? AND stream_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM dropped WHERE dropped.row_id = staged.rowid)"
    " ORDER BY session_id, stream_id, seq, timestamp, position LIMIT ?"
)
_COUNTS = (
    "SELECT count(*), count(DISTINCT session_id),"
    " count(DISTINCT session_id || char(0) || stream_id) FROM staged"
    " WHERE NOT EXISTS (SELECT 1 FROM dropped WHERE dropped.row_id = staged.rowid)"
)
_ORDERED = (
    "SELECT position, session_id, stream_id, seq, timestamp, event_id, data FROM staged"
    " WHERE NOT EXISTS (SELECT 1 FROM dropped WHERE dropped.row_id = staged.rowid)"
    " ORDER BY session_id, stream_id, seq, timestamp, position"
)
#: Capped streams a report lists by name; the rest are only counted.
EXAMPLES = 10


@dataclass(frozen=True, slots=True)
class StagedEvent:
    """An event ready to store, with the source position it came from."""

    position: int
    session_id: str
    stream_id: str
    seq: int | None
    timestamp: int
    event_id: str
    text: str

    def source_event(self) -> SourceEvent:
        """The event as it was read (for reject reports)."""
        return SourceEvent(
            self.position,
            self.session_id,
            self.stream_id,
            self.seq,
            self.event_id,
            self.timestamp,
            self.text,
        )


@dataclass(frozen=True, slots=True)
class CappedStream:
    """A stream with more events than the target's cap: its oldest ``dropped`` are skipped."""

    session_id: str
    stream_id: str
    total: int
    kept: int

    @property
    def dropped(self) -> int:
        """How many of the stream's events the cap leaves out."""
        return self.total - self.kept


@dataclass(frozen=True, slots=True)
class CapSummary:
    """What the cap cut: how many streams and events, and the first few streams by name."""

    cap: int
    streams: int
    dropped: int
    examples: list[CappedStream]


class Staging:
    """Collects an import's events, then hands them back de-duplicated, capped, in order.

    Call :meth:`add` for every chunk of the source, then :meth:`seal` once, optionally
    :meth:`apply_cap`, then :meth:`ordered`. ``default_stream_id`` is the stream of
    events that come without one (legacy input).

    :param cache_mib: SQLite page cache (and so sorter memory) in MiB.
    """

    def __init__(self, default_stream_id: str, *, cache_mib: int = 32) -> None:
        self.default_stream_id = default_stream_id
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        # Nothing here needs to survive a crash: the source is the durable copy.
        for pragma in (
            "PRAGMA journal_mode=OFF",
            "PRAGMA synchronous=OFF",
            "PRAGMA temp_store=FILE",
            f"PRAGMA cache_size={-1024 * int(cache_mib)}",
        ):
            self._db.execute(pragma)
        self._db.executescript(_SCHEMA)
        self.duplicates = 0

    def add(self, events: list[SourceEvent]) -> None:
        """Stage a chunk of events, in source order."""
        self._db.execute("BEGIN")
        self._db.executemany(
            _INSERT,
            [
                (
                    e.position,
                    e.session_id,
                    e.stream_id if e.stream_id is not None else self.default_stream_id,
                    e.seq,
                    e.timestamp,
                    e.event_id,
                    e.text,
                )
                for e in events
            ],
        )
        self._db.execute("COMMIT")

    def seal(self) -> None:
        """Index what was staged and settle duplicate event ids within a session.

        The first occurrence in source order wins. A later copy with the same stream and
        equal data is skipped (counted in :attr:`duplicates`); one with other data or
        another stream becomes a late reject (:meth:`late_rejects`).
        """
        self._db.executescript(_INDEXES)
        groups = self._db.execute(_DUPLICATED_IDS)
        self._db.execute("BEGIN")
        for session_id, event_id in groups:
            rows = self._db.execute(_COPIES, (session_id, event_id)).fetchall()
            first = StagedEvent(*rows[0][1:])
            for row in rows[1:]:
                copy = StagedEvent(*row[1:])
                if copy.stream_id == first.stream_id and same_content(copy.text, first.text):
                    self.duplicates += 1
                    reason = "duplicate"
                else:
                    what = "stream" if copy.stream_id != first.stream_id else "data"
                    reason = "conflict"
                    self._late(
                        copy.position,
                        f"duplicate event id {event_id!r} in session {session_id!r} "
                        f"with different {what} (first at line {first.position})",
                        copy.source_event().to_line(),
                    )
                self._db.execute("INSERT INTO dropped VALUES (?, ?)", (row[0], reason))
        self._db.execute("COMMIT")

    def _late(self, position: int, reason: str, fallback: str) -> None:
        self._db.execute("INSERT INTO late_rejects VALUES (?, ?, ?)", (position, reason, fallback))

    def add_late_reject(self, event: StagedEvent, reason: str) -> None:
        """Reject ``event`` once the import is over (with its input as it was)."""
        self._late(event.position, reason, event.source_event().to_line())

    def late_rejects(self, chunk: int = 5000) -> Iterator[list[Reject]]:
        """The late rejects by position, ``chunk`` at a time; ``source`` is the event as
        it was parsed, for the caller to replace with the input as it was."""
        cursor = self._db.execute(
            "SELECT position, reason, fallback FROM late_rejects ORDER BY position"
        )
        while rows := cursor.fetchmany(chunk):
            yield [Reject(*row) for row in rows]

    def apply_cap(self, cap: int) -> CapSummary:
        """Skip all but the newest ``cap`` events of every stream; say what was cut."""
        self._db.execute("BEGIN")
        self._db.execute(_FIND_OVER_CAP, (cap,))
        streams = dropped = 0
        examples: list[CappedStream] = []
        for session_id, stream_id, total in self._db.execute("SELECT * FROM over_cap"):
            self._db.execute(_DROP_OLDEST, (session_id, stream_id, total - cap))
            streams += 1
            dropped += total - cap
            if len(examples) < EXAMPLES:
                examples.append(CappedStream(session_id, stream_id, total, cap))
        self._db.execute("COMMIT")
        return CapSummary(cap, streams, dropped, examples)

    def counts(self) -> tuple[int, int, int]:
        """``(events, sessions, streams)`` still to import."""
        events, sessions, streams = self._db.execute(_COUNTS).fetchone()
        return int(events), int(sessions), int(streams)

    def ordered(self, batch_size: int) -> Iterator[list[StagedEvent]]:
        """The events to import, stream by stream in import order, ``batch_size`` at a time."""
        cursor = self._db.execute(_ORDERED)
        while rows := cursor.fetchmany(batch_size):
            yield [StagedEvent(*row) for row in rows]

    def close(self) -> None:
        """Drop the temporary database."""
        self._db.close()
