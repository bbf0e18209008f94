"""Backfill: per-stream seq for existing rows, unique event ids, the replay indexes.

Rows are numbered and duplicate event ids resolved as :mod:`eventstore.migrations.backfill`
documents (seq 1..n per stream in ``(timestamp, id)`` order; later copies of an event id
renamed ``<event_id>#dup-<id>``, no row dropped). Then ``UNIQUE (session_id, event_id)``
and ``UNIQUE (session_id, stream_id, seq)``.

On PostgreSQL, with writers of the previous version running:

1. a partial index on the rows still without seq, built ``CONCURRENTLY``;
2. batches of ``batch_size`` rows, each one statement committed on its own, so writers
   never wait for them; a writer's new rows are numbered by later batches;
3. one short transaction under ``SHARE ROW EXCLUSIVE`` (writers pause for it): the last
   rows without seq, and the ``BEFORE INSERT`` trigger that from now on gives every insert
   without seq the next number of its stream's head row -- the previous version keeps
   working during and after the upgrade;
4. the unique indexes, ``CONCURRENTLY``; an index left invalid by an interrupted run is
   dropped and built again. The partial index is dropped.

Killed at any point, a re-run resumes: batches touch only rows without seq and carry
their head rows in the same statement, and every step checks what is already there.
On SQLite the same work runs in the migration's single transaction.

Downgrade drops the trigger and the unique indexes and keeps the numbering and the head
rows (a re-upgrade resumes from them); renamed duplicates keep their derived ids.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from eventstore.migrations import backfill, ddl, steps

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SESSION_EVENT = "uq_events_session_event"
_STREAM_SEQ = "uq_events_stream_seq"


def upgrade() -> None:
    if not steps.is_postgresql():
        backfill.number_all()
        backfill.rename_duplicates()
        op.create_index(_SESSION_EVENT, "events", ["session_id", "event_id"], unique=True)
        op.create_index(_STREAM_SEQ, "events", ["session_id", "stream_id", "seq"], unique=True)
        return
    if steps.is_offline():
        with steps.autocommit():
            backfill.number_all()
    else:
        with steps.autocommit():
            steps.build_index_concurrently(backfill.PENDING_INDEX, backfill.PENDING_INDEX_DDL)
            backfill.number_in_batches(resume=True)
            backfill.number_in_batches(resume=False)
    steps.lock_table("events", "SHARE ROW EXCLUSIVE")
    if steps.is_offline():
        backfill.number_all()
    else:
        backfill.number_in_batches(resume=False)
    # A run killed after this transaction committed left the trigger in place.
    for statement in [*ddl.PG_DROP_ASSIGN_SEQ, *ddl.PG_ASSIGN_SEQ]:
        op.execute(statement)
    with steps.autocommit():
        backfill.rename_duplicates()
        steps.build_index_concurrently(
            _SESSION_EVENT,
            f"CREATE UNIQUE INDEX CONCURRENTLY {_SESSION_EVENT} ON events (session_id, event_id)",
            on_unique_violation=backfill.rename_duplicates,
        )
        steps.build_index_concurrently(
            _STREAM_SEQ,
            f"CREATE UNIQUE INDEX CONCURRENTLY {_STREAM_SEQ} "
            "ON events (session_id, stream_id, seq)",
        )
        steps.drop_index_concurrently(backfill.PENDING_INDEX)


def downgrade() -> None:
    if not steps.is_postgresql():
        op.drop_index(_STREAM_SEQ, table_name="events")
        op.drop_index(_SESSION_EVENT, table_name="events")
        return
    steps.lock_table("events", "ACCESS EXCLUSIVE")
    for statement in ddl.PG_DROP_ASSIGN_SEQ:
        op.execute(statement)
    with steps.autocommit():
        steps.drop_index_concurrently(_STREAM_SEQ)
        steps.drop_index_concurrently(_SESSION_EVENT)
