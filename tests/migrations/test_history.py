"""pytest-alembic's built-in tests, on a SQLite file and on PostgreSQL.

A single head; an upgrade from an empty database to the head; the schema the migrations
build equals the SQLAlchemy models (autogenerate finds nothing to do); every revision
upgrades and downgrades on its own.
"""

from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
