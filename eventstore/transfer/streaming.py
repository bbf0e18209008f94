"""The failures of a long streamed read (a server-side cursor), in one form."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from eventstore.sql import postgresql, sqlite


def read_errors(dialect_name: str) -> tuple[type[Exception], ...]:
    """What a streamed read on a ``dialect_name`` connection can fail with.

    SQLAlchemy wraps most driver errors in :class:`DBAPIError`, but not those of a
    server-side cursor's later fetches: a server going away mid-export raised asyncpg's
    own ``InterfaceError``.
    """
    driver = postgresql if dialect_name == "postgresql" else sqlite
    return (DBAPIError, *driver.driver_errors())


def what_failed(error: BaseException, errors: tuple[type[Exception], ...]) -> str:
    """The message of the first of ``errors`` that led to ``error``.

    A server that went away also fails the rollback on the way out ("the underlying
    connection is closed"), and that error would hide what happened.
    """
    first = error
    while isinstance(first.__context__, errors):
        first = first.__context__
    return str(first.orig) if isinstance(first, DBAPIError) else str(first)
