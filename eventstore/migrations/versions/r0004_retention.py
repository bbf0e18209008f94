"""Retention: the settings row and the trigger that enforces the per-stream cap.

The cap lives in the database -- ``eventstore_settings.max_events_per_stream`` (one row,
NULL for unlimited), overridable per stream by ``event_streams.max_events`` -- and an
``AFTER INSERT`` trigger applies it, so every writer obeys it: this library, a server of
the previous version (whose inserts get their seq from r0003's trigger first), a manual
``INSERT``. PostgreSQL: a statement-level trigger over the transition table; SQLite: a row
trigger whose delete is a range seek on the replay index. The cap starts unlimited, so
nothing is trimmed until one is set, and then on each stream's next insert.

A re-run after a partial one (say, a ``--sql`` script that went on after an error) finds
the settings table, its row or the trigger already there and keeps them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from eventstore.migrations import ddl, steps

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    steps.lock_table("events", "SHARE ROW EXCLUSIVE")
    if steps.is_offline() or not sa.inspect(op.get_bind()).has_table("eventstore_settings"):
        op.create_table(
            "eventstore_settings",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("max_events_per_stream", sa.Integer(), nullable=True),
            sa.CheckConstraint("id = 1", name="ck_eventstore_settings_single_row"),
            sa.CheckConstraint(
                "max_events_per_stream IS NULL OR max_events_per_stream >= 1",
                name="ck_eventstore_settings_max_events",
            ),
        )
    op.execute(
        "INSERT INTO eventstore_settings (id, max_events_per_stream) SELECT 1, NULL "
        "WHERE NOT EXISTS (SELECT 1 FROM eventstore_settings WHERE id = 1)"
    )
    if steps.is_postgresql():
        # The function is CREATE OR REPLACE; the trigger has no such form.
        create = [ddl.PG_DROP_TRIM_STREAMS[0], *ddl.PG_TRIM_STREAMS]
    else:
        create = ddl.SQLITE_TRIM_STREAMS  # CREATE TRIGGER IF NOT EXISTS
    for statement in create:
        op.execute(statement)


def downgrade() -> None:
    steps.lock_table("events", "ACCESS EXCLUSIVE")
    drop = ddl.PG_DROP_TRIM_STREAMS if steps.is_postgresql() else ddl.SQLITE_DROP_TRIM_STREAMS
    for statement in drop:
        op.execute(statement)
    op.drop_table("eventstore_settings")
