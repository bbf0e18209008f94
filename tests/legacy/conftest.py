"""Fixtures of the legacy-migration tests: every backend, and legacy sources to read."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: ``memory://``, a fresh SQLite file, a fresh PostgreSQL database."""
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in the test's temp directory: default reject files land there, not in the repo."""
    monkeypatch.chdir(tmp_path)
