"""Shared fixtures: PostgreSQL (a throwaway cluster, or $EVENTSTORE_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.pgcluster import PostgresCluster, create_database


@dataclass
class PostgresServer:
    """Where test databases are created; ``cluster`` is None for an external server."""

    url: str
    cluster: PostgresCluster | None

    def new_database(self) -> str:
        import uuid

        return create_database(self.url, f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    external = os.environ.get("EVENTSTORE_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(external, None)
        return
    try:
        cluster = PostgresCluster()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield PostgresServer(cluster.url(), cluster)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def own_postgres_cluster() -> Iterator[PostgresCluster]:
    """A cluster for one test module alone, for tests that stop, kill or restart it:
    doing that to the shared one would fail unrelated tests."""
    try:
        cluster = PostgresCluster()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite+aiosqlite:///{tmp_path}/events.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest) -> str:
    """Each SQL dialect in turn: a fresh SQLite file, then a fresh PostgreSQL database."""
    return str(request.getfixturevalue(f"{request.param}_url"))
