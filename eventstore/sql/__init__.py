"""SQL backend (SQLite and PostgreSQL) on SQLAlchemy 2 async."""

#: Each stream an append touches, ``(session_id, stream_id)``, with its number of new
#: events; sorted, the order head rows are locked in.
StreamCounts = list[tuple[tuple[str, str], int]]
#: The events of an append: ``(session_id, stream_id, event_id, data, timestamp, later)``,
#: where ``later`` counts the rows of the same stream after this one (a row's seq is the
#: stream's ``last_seq`` after the append minus ``later``).
AppendRows = list[tuple[str, str, str, str, int, int]]
