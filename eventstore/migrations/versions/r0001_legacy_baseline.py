"""Legacy baseline: the pre-stream table, events keyed by session only.

This is the table the pre-stream store wrote: no stream, no sequence number, and event ids
not unique within a session. A database that has it without any Alembic history is stamped
with this revision (by ``eventstore migrate``, and by ``env.py`` before ``alembic upgrade``)
and upgraded from here. Legacy tables varied: one without ``ix_events_session_id``, or
with a ``REAL`` timestamp, upgrades as well.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from eventstore.migrations import BRANCH

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = (BRANCH,)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_events_session_id", "events", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_events_session_id", table_name="events")
    op.drop_table("events")
