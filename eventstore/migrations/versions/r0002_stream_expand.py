"""Expand: stream_id, a nullable seq, and the stream head table.

Additive only, so a server of the previous version keeps writing while it runs. On
PostgreSQL 11 and later both new columns are catalogue changes (``stream_id`` has a
constant default, ``seq`` none): no table rewrite, only a brief lock, taken first and with
``lock_timeout``. Legacy rows read ``stream_id`` as the default stream id, ``-x
default_stream_id=...`` (default ``_default``); a legacy writer's inserts get it too.

Before anything changes, every legacy row must have a ``session_id``, ``event_id`` and
``timestamp`` (:func:`eventstore.migrations.backfill.check_required`: the upgrade refuses,
naming the rows) and its ``data`` must be JSON
(:func:`eventstore.migrations.backfill.check_data`: the upgrade refuses, naming the rows,
unless ``-x invalid_data=string``). Then, under the exclusive lock, on PostgreSQL a
``json``/``jsonb`` ``data`` column becomes ``text``
(:func:`eventstore.migrations.backfill.fix_data_type`), legacy timestamps become whole
milliseconds in a ``BIGINT`` column (:func:`eventstore.migrations.backfill.fix_timestamps`;
a ``REAL``/``double precision`` column is rewritten) and nullable legacy columns become
``NOT NULL`` (:func:`eventstore.migrations.backfill.require_values`; SQLite: in r0005).

Downgrade folds the streams back into their sessions: both columns and the head table go,
every event row stays (event ids are unique within a session by then, so the session-keyed
store can still tell them apart).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import sqlalchemy as sa
from alembic import op

from eventstore.migrations import backfill, steps

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Online on PostgreSQL outside the transaction: a failed cast there aborts nothing.
    with nullcontext() if steps.is_offline() else steps.autocommit():
        backfill.check_required()
        backfill.check_timestamps()
        backfill.check_data()
    steps.lock_table("events", "ACCESS EXCLUSIVE")
    backfill.fix_data_type()
    backfill.fix_timestamps()
    backfill.require_values()
    op.add_column(
        "events",
        sa.Column(
            "stream_id",
            sa.Text(),
            nullable=False,
            server_default=steps.options().default_stream_id,
        ),
    )
    op.add_column("events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.create_table(
        "event_streams",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column("stream_id", sa.Text(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("first_seq", sa.BigInteger(), nullable=False, server_default=sa.text("1")),
        sa.Column("max_events", sa.Integer(), nullable=True),
        sa.Column("last_event_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "max_events IS NULL OR max_events >= 1", name="ck_event_streams_max_events"
        ),
    )
    op.create_index("ix_event_streams_updated_at", "event_streams", ["updated_at"])


def downgrade() -> None:
    steps.lock_table("events", "ACCESS EXCLUSIVE")
    op.drop_index("ix_event_streams_updated_at", table_name="event_streams")
    op.drop_table("event_streams")
    op.drop_column("events", "seq")
    op.drop_column("events", "stream_id")
