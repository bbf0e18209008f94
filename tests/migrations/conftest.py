"""Fixtures of the migration tests: pytest-alembic's runner on each dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_alembic.config import Config as RunnerConfig
from pytest_alembic.runner import MigrationContext, runner
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from eventstore.sql.engine import create_engine
from tests.conftest import PostgresServer
from tests.migrations.helpers import alembic_config


def pytest_configure(config: pytest.Config) -> None:
    # pytest-alembic's plugin is disabled (it cannot collect under pytest 9); its test
    # functions, imported explicitly, still carry its marker.
    config.addinivalue_line("markers", "alembic: pytest-alembic's built-in tests")


@pytest.fixture
def alembic_engine(sql_url: str) -> AsyncEngine:
    """What pytest-alembic migrates: an async engine without a pool, on each dialect."""
    return create_engine(sql_url, poolclass=NullPool)


@pytest.fixture
def alembic_runner(alembic_engine: AsyncEngine, sql_url: str) -> Iterator[MigrationContext]:
    config = RunnerConfig.from_raw_config(alembic_config(sql_url))
    with runner(config=config, engine=alembic_engine) as context:
        yield context


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two empty databases of one dialect."""
    if request.param == "sqlite":
        return (
            f"sqlite+aiosqlite:///{tmp_path}/migrated.sqlite3",
            f"sqlite+aiosqlite:///{tmp_path}/reference.sqlite3",
        )
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database(), server.new_database()
