"""The Alembic history of the SQL schema: ``script_location = eventstore:migrations``.

It ships inside the package, so an installed ``mcp-eventstore`` can be migrated with
``alembic`` (an ``alembic.ini`` naming this script location) or with ``eventstore migrate``
(:mod:`eventstore.migrate`). The history keeps its own version table and a branch label,
so it lives next to a host application's own Alembic history in the same database.
"""

from __future__ import annotations

#: Alembic's ``script_location`` of this history.
SCRIPT_LOCATION = "eventstore:migrations"
#: Where the applied revision is recorded; the host application's ``alembic_version``
#: stays untouched.
VERSION_TABLE = "eventstore_alembic_version"
#: Branch label of the history (``alembic upgrade eventstore@head``).
BRANCH = "eventstore"
#: The pre-stream table, the revision a legacy database is stamped with.
LEGACY_BASELINE = "0001"
