"""Contract: seq NOT NULL, and the legacy session index goes.

PostgreSQL never scans the table under an exclusive lock here: a ``CHECK (seq IS NOT
NULL) NOT VALID`` constraint (a brief lock), ``VALIDATE`` (scans, but writers go on),
then ``SET NOT NULL``, which trusts the validated constraint instead of scanning, and the
constraint is dropped again. The session index is covered by ``UNIQUE (session_id,
event_id)`` and is dropped ``CONCURRENTLY``. Each statement commits alone and checks what
an interrupted run left, so a re-run completes.

SQLite cannot change a column's nullability in place: ``batch_alter_table`` recreates the
table (in the migration's transaction), which drops its triggers, so the retention trigger
is created again. Rows a legacy writer added since r0003 are numbered first. A legacy
table may lack the session index (then there is none to drop), declare ``timestamp``
``REAL`` (the rebuild declares it ``BIGINT``; r0002 already truncated the values) or
declare its columns nullable (the rebuild declares them ``NOT NULL``; r0002 refused rows
with NULLs and made NULL data JSON ``null``).

Downgrade makes seq nullable again and rebuilds the session index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

from eventstore.migrations import backfill, ddl, steps

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_events_seq_not_null"
_SESSION_INDEX = "ix_events_session_id"


def upgrade() -> None:
    if not steps.is_postgresql():
        backfill.number_all()
        offline = steps.is_offline()
        # A legacy table may lack the session index, or declare timestamp REAL.
        has_index = offline or _SESSION_INDEX in _sqlite_indexes()
        integer_timestamps = offline or backfill.timestamp_is_integer()
        with _rebuild_events(seq_nullable=True) as batch:
            batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
            # A legacy table may declare them nullable; r0002 refused rows with NULLs.
            for column in ("session_id", "event_id", "data"):
                batch.alter_column(column, existing_type=sa.Text(), nullable=False)
            if integer_timestamps:
                batch.alter_column("timestamp", existing_type=sa.BigInteger(), nullable=False)
            else:
                batch.alter_column("timestamp", type_=sa.BigInteger(), nullable=False)
            if has_index:
                batch.drop_index(_SESSION_INDEX)
        for statement in ddl.SQLITE_TRIM_STREAMS:
            op.execute(statement)
        return
    with steps.autocommit():
        if steps.is_offline():
            # A script re-run after failing further on finds the constraint there.
            steps.run(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {_CHECK}")
        if steps.is_offline() or not _check_exists():
            steps.run(
                f"ALTER TABLE events ADD CONSTRAINT {_CHECK} CHECK (seq IS NOT NULL) NOT VALID"
            )
        steps.run(f"ALTER TABLE events VALIDATE CONSTRAINT {_CHECK}", blocks_writers=False)
        steps.run("ALTER TABLE events ALTER COLUMN seq SET NOT NULL")
        steps.run(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {_CHECK}")
        steps.drop_index_concurrently(_SESSION_INDEX)


def downgrade() -> None:
    if not steps.is_postgresql():
        with _rebuild_events(seq_nullable=False) as batch:
            batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=True)
            batch.create_index(_SESSION_INDEX, ["session_id"])
        for statement in ddl.SQLITE_TRIM_STREAMS:
            op.execute(statement)
        return
    with steps.autocommit():
        steps.run("ALTER TABLE events ALTER COLUMN seq DROP NOT NULL")
        steps.build_index_concurrently(
            _SESSION_INDEX, f"CREATE INDEX CONCURRENTLY {_SESSION_INDEX} ON events (session_id)"
        )


def _sqlite_indexes() -> set[str]:
    return {index["name"] or "" for index in sa.inspect(op.get_bind()).get_indexes("events")}


def _check_exists() -> bool:
    return bool(
        steps.read(
            "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = 'events'::regclass",
            name=_CHECK,
        )
    )


def _rebuild_events(*, seq_nullable: bool) -> AbstractContextManager[BatchOperations]:
    """SQLite: ``batch_alter_table`` that always recreates ``events``.

    Online it reflects the table, keeping the stream default r0002 was given; a ``--sql``
    script cannot reflect and describes the table as r0004 (or r0005) left it.
    """
    if not steps.is_offline():
        return op.batch_alter_table("events", recreate="always")
    return op.batch_alter_table(
        "events", recreate="always", copy_from=_events_table(seq_nullable=seq_nullable)
    )


def _events_table(*, seq_nullable: bool) -> sa.Table:
    table = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column(
            "stream_id",
            sa.Text(),
            nullable=False,
            server_default=steps.options().default_stream_id,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=seq_nullable),
        sa.Index("uq_events_session_event", "session_id", "event_id", unique=True),
        sa.Index("uq_events_stream_seq", "session_id", "stream_id", "seq", unique=True),
    )
    if seq_nullable:
        sa.Index(_SESSION_INDEX, table.c.session_id)
    return table
