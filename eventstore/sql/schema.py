"""The SQL tables, as SQLAlchemy Core metadata shared by both dialects.

The legacy columns of ``events`` (``id, session_id, event_id, data, timestamp``) keep their
names, so upgrading a pre-stream database only adds. Triggers live in the dialect modules
(:mod:`eventstore.sql.postgresql`, :mod:`eventstore.sql.sqlite`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    or_,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from eventstore.events import DEFAULT_STREAM_ID

metadata = MetaData()

# SQLite only makes an INTEGER PRIMARY KEY the rowid alias that autoincrements.
_surrogate_key = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("id", _surrogate_key, primary_key=True, autoincrement=True),
    Column("session_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    # JSON text, not jsonb: jsonb rejects "\u0000" and reorders keys, and replay must
    # give back exactly what was stored.
    Column("data", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column(
        "stream_id",
        Text,
        nullable=False,
        server_default=text(f"'{DEFAULT_STREAM_ID}'"),
    ),
    Column("seq", BigInteger, nullable=False),
    # The replay index: a cursor's seq, then a range seek to the following events.
    Index("uq_events_stream_seq", "session_id", "stream_id", "seq", unique=True),
    # Resolves a cursor and makes event ids unique within their session.
    Index("uq_events_session_event", "session_id", "event_id", unique=True),
)

event_streams = Table(
    "event_streams",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("stream_id", Text, primary_key=True),
    # Allocation happens under this row's lock: writers of one stream serialise here,
    # writers of different streams do not meet.
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("first_seq", BigInteger, nullable=False, server_default=text("1")),
    Column("max_events", Integer, nullable=True),
    Column("last_event_id", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    CheckConstraint("max_events IS NULL OR max_events >= 1", name="ck_event_streams_max_events"),
    Index("ix_event_streams_updated_at", "updated_at"),
)

settings = Table(
    "eventstore_settings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("max_events_per_stream", Integer, nullable=True),
    CheckConstraint("id = 1", name="ck_eventstore_settings_single_row"),
    CheckConstraint(
        "max_events_per_stream IS NULL OR max_events_per_stream >= 1",
        name="ck_eventstore_settings_max_events",
    ),
)


def event_ids_in_sessions(by_session: Mapping[str, Collection[str]]) -> ColumnElement[bool]:
    """Events whose ``(session_id, event_id)`` is among ``by_session``'s, session by session.

    An OR of ``session_id = ? AND event_id IN (...)``: index seeks on both dialects, where
    SQLite scans the whole table for a row-value ``IN`` list.
    """
    return or_(
        *(
            and_(events.c.session_id == session_id, events.c.event_id.in_(event_ids))
            for session_id, event_ids in by_session.items()
        )
    )
