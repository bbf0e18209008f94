"""Where the store lives when the caller does not say."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

#: Environment variable naming the database URL used when none is given.
URL_ENV = "EVENTSTORE_DATABASE_URL"


def default_sqlite_path() -> Path:
    """The embedded database file: ``events.sqlite3`` in the user's data directory."""
    return platformdirs.user_data_path("mcp-eventstore") / "events.sqlite3"


def default_url() -> str:
    """``$EVENTSTORE_DATABASE_URL`` if set, else the embedded SQLite file."""
    from_env = os.environ.get(URL_ENV, "").strip()
    if from_env:
        return from_env
    return f"sqlite+aiosqlite:///{default_sqlite_path()}"
