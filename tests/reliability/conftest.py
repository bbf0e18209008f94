"""Fixtures of the reliability suite."""

from __future__ import annotations

import pytest

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: ``memory://``, a fresh SQLite file, a fresh PostgreSQL database."""
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{request.param}_url"))
