"""SQL backend (SQLite and PostgreSQL) on SQLAlchemy 2 async."""

#: Each stream an append touches, ``(session_id, stream_id)``, with its number of new
#: events; sorted, the order head rows are locked in.
StreamCounts = list[tuple[tuple[str, str], int]]
#: The events of an append: ``(session_id, stream_id, event_id, data, timestamp, later)``,
#: where ``later`` counts the rows of the same stream after this one (a row's seq is the
#: stream's ``last_seq`` after the append minus ``later``). A ``timestamp`` of ``None``
#: means "now": the stream's ``updated_at`` as the append leaves it.
AppendRows = list[tuple[str, str, str, str, int | None, int]]
#: What an append leaves in each stream's head row: ``(session_id, stream_id)`` to
#: ``(last_seq, updated_at)``; ``updated_at`` is the timestamp of the rows stored "now".
AppendHeads = dict[tuple[str, str], tuple[int, int]]
