"""Where the store lives when the caller does not say."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from eventstore.errors import InvalidInputError

#: Environment variable naming the database URL used when none is given.
URL_ENV = "EVENTSTORE_DATABASE_URL"


def default_sqlite_path() -> Path:
    """The embedded database file: ``events.sqlite3`` in the user's data directory."""
    return platformdirs.user_data_path("mcp-eventstore") / "events.sqlite3"


def default_url() -> str:
    """``$EVENTSTORE_DATABASE_URL`` if set, else the embedded SQLite file.

    Raises :class:`~eventstore.errors.InvalidInputError` if the variable is set but blank:
    a replica whose configuration lost the URL (``EVENTSTORE_DATABASE_URL=$DB_URL`` with
    ``DB_URL`` unset) must not quietly run on a private SQLite file of its own.
    """
    from_env = os.environ.get(URL_ENV)
    if from_env is None:
        return f"sqlite+aiosqlite:///{default_sqlite_path()}"
    if not from_env.strip():
        raise InvalidInputError(
            f"${URL_ENV} is set but empty; unset it for the embedded default store, "
            "or give it a URL"
        )
    return from_env.strip()
