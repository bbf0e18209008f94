"""Proof that a raw baseline runs the SQL the store runs: capture the store's statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import event

from benchmarks import report
from eventstore import SqlEventStore
from eventstore.sql import sqlite as sqlite_dialect

# The store sends some statements to the driver itself (its hot paths skip SQLAlchemy's
# cursor): those methods are wrapped while capturing, and so are the functions that run
# the SQLite append's statements on aiosqlite's thread (the raw baseline sends the same
# statements one aiosqlite call each). SQLAlchemy's own statements go through cursors,
# not these methods, so nothing is counted twice.
_DRIVER_METHODS = [
    (aiosqlite.Connection, "execute"),
    (aiosqlite.Connection, "execute_fetchall"),
    (aiosqlite.Connection, "executemany"),
    (asyncpg.Connection, "fetch"),
    (sqlite_dialect, "_run"),
    (sqlite_dialect, "_run_many"),
]


@contextmanager
def captured(store: SqlEventStore) -> Iterator[list[str]]:
    """The statement texts the store sends to its driver inside the block."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    def recording(method: Any) -> Any:
        def call(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
            statements.append(sql)
            return method(self, sql, *args, **kwargs)

        return call

    originals = [(cls, name, getattr(cls, name)) for cls, name in _DRIVER_METHODS]
    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    for cls, name, method in originals:
        setattr(cls, name, recording(method))
    try:
        yield statements
    finally:
        for cls, name, method in originals:
            setattr(cls, name, method)
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


def same(what: str, ours: list[str], raw: list[str]) -> bool:
    """Whether the texts match; says what differs when they do not."""
    if ours == raw:
        return True
    report.note(f"WARNING: {what}: the raw baseline's SQL differs from the store's:")
    for mine, theirs in zip(ours, raw, strict=False):
        if mine != theirs:
            report.note(f"  store: {mine!r}\n  raw:   {theirs!r}")
    if len(ours) != len(raw):
        report.note(f"  store ran {len(ours)} statements, raw {len(raw)}")
    return False
