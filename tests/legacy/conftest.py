"""Fixtures of the legacy-migration tests: every backend, and legacy sources to read."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: ``memory://``, a fresh SQLite file, a fresh PostgreSQL database."""
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{request.param}_url"))
