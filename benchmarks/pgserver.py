"""The PostgreSQL server the benchmarks use: a throwaway cluster, or one you name.

``$EVENTSTORE_BENCH_POSTGRES_URL`` (a ``postgresql+asyncpg://`` URL of a user that may
``CREATE DATABASE``) selects an existing server; otherwise the test suite's
:class:`tests.pgcluster.PostgresCluster` starts one from the binaries on this machine and
removes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url

from tests.pgcluster import PostgresCluster, create_database


@dataclass(frozen=True)
class PostgresServer:
    """Where benchmark databases are created."""

    url: str
    #: What the numbers were measured against, for the report.
    description: str

    def new_database(self, prefix: str = "bench") -> str:
        """Create an empty database; return its ``postgresql+asyncpg://`` URL."""
        return create_database(self.url, f"{prefix}_{uuid.uuid4().hex[:12]}")


def driver_dsn(url: str | URL) -> str:
    """The libpq-style DSN of a SQLAlchemy URL, for asyncpg and psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A server for the length of the ``with`` block."""
    external = os.environ.get("EVENTSTORE_BENCH_POSTGRES_URL")
    if external:
        yield PostgresServer(external, "external server ($EVENTSTORE_BENCH_POSTGRES_URL)")
        return
    cluster = PostgresCluster()
    try:
        version = cluster.bindir.parent.name
        yield PostgresServer(
            cluster.url(),
            f"throwaway PostgreSQL {version} cluster on loopback TCP "
            "(fsync=off, as in the test suite)",
        )
    finally:
        cluster.close()
