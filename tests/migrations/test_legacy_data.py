"""Legacy rows through the upgrade: every row kept, numbered, readable by the store."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy.exc import IntegrityError

from eventstore import DEFAULT_STREAM_ID, migrate, open_store
from tests.migrations.helpers import (
    LegacyRow,
    alembic,
    assert_numbered_in_order,
    events_rows,
    execute,
    insert_legacy,
    query,
)

NUL_TEXT = json.dumps("a\u0000b")  # JSON text with the escape, as the legacy store wrote it

ROWS: list[LegacyRow] = [
    # alpha: one event id twice with equal timestamps (the lower row id keeps it)
    ("alpha", "e1", '{"n":1}', 100),
    ("alpha", "dup", '"first"', 200),
    ("alpha", "dup", '"second"', 200),
    ("alpha", "nul", NUL_TEXT, 300),
    # beta: "e1" again, in another session (no duplicate); equal timestamps
    ("beta", "e1", "1", 500),
    ("beta", "b2", "2", 500),
    ("beta", "b3", "3", 500),
    # gamma: written out of timestamp order; seq follows the timestamps
    ("gamma", "late", '"late"', 900),
    ("gamma", "early", '"early"', 100),
    ("gamma", "mid", '"mid"', 500),
    # delta: a duplicate whose later copy is the older one (it keeps the id)
    ("delta", "x", '"newer"', 900),
    ("delta", "x", '"older"', 100),
    # capped: more events than the cap set after the upgrade
    *[("capped", f"c{i}", str(i), 1000 + i) for i in range(10)],
]


async def _legacy_database(url: str) -> dict[tuple[str, str, str], int]:
    """The baseline with ROWS; returns each row's surrogate id by (session, event, data)."""
    await alembic(url, "upgrade", "0001")
    await insert_legacy(url, ROWS)
    rows = await query(url, "SELECT id, session_id, event_id, data FROM events")
    return {(s, e, d): row_id for row_id, s, e, d in rows}


async def _stream(url: str, session_id: str, stream_id: str = DEFAULT_STREAM_ID) -> list[object]:
    async with open_store(url) as store:
        return [(e.id, e.seq, e.data) for e in await store.get_stream_events(session_id, stream_id)]


async def test_every_legacy_row_is_numbered_and_kept(sql_url: str) -> None:
    ids = await _legacy_database(sql_url)
    before = time.time_ns() // 10**6
    report = await migrate.upgrade(sql_url)
    after = time.time_ns() // 10**6
    assert [a.revision.id for a in report.applied] == ["0002", "0003", "0004", "0005"]

    rows = await events_rows(sql_url)
    assert len(rows) == len(ROWS)
    assert {row[2] for row in rows} == {DEFAULT_STREAM_ID}
    await assert_numbered_in_order(sql_url)

    second_dup = ids[("alpha", "dup", '"second"')]
    assert await _stream(sql_url, "alpha") == [
        ("e1", 1, {"n": 1}),
        ("dup", 2, "first"),
        (f"dup#dup-{second_dup}", 3, "second"),
        ("nul", 4, "a\u0000b"),
    ]
    assert await _stream(sql_url, "beta") == [("e1", 1, 1), ("b2", 2, 2), ("b3", 3, 3)]
    assert await _stream(sql_url, "gamma") == [
        ("early", 1, "early"),
        ("mid", 2, "mid"),
        ("late", 3, "late"),
    ]
    newer = ids[("delta", "x", '"newer"')]
    assert await _stream(sql_url, "delta") == [("x", 1, "older"), (f"x#dup-{newer}", 2, "newer")]

    heads = await query(
        sql_url,
        "SELECT session_id, last_seq, first_seq, created_at, updated_at FROM event_streams "
        "ORDER BY session_id",
    )
    # created_at: the stream's oldest event; updated_at: the upgrade (so idle pruning
    # counts from there, not from the old events).
    assert [head[:4] for head in heads] == [
        ("alpha", 4, 1, 100),
        ("beta", 3, 1, 500),
        ("capped", 10, 1, 1000),
        ("delta", 2, 1, 100),
        ("gamma", 3, 1, 100),
    ]
    assert all(before - 5 <= head[4] <= after + 5 for head in heads), heads
    async with open_store(sql_url) as store:
        after = await store.get_events_after("alpha", DEFAULT_STREAM_ID, "dup")
        assert [e.id for e in after] == [f"dup#dup-{second_dup}", "nul"]


async def test_downgrade_and_upgrade_again_give_the_same_rows(sql_url: str) -> None:
    await _legacy_database(sql_url)
    await migrate.upgrade(sql_url)
    upgraded = await events_rows(sql_url)
    heads = await query(sql_url, "SELECT * FROM event_streams ORDER BY session_id")

    await alembic(sql_url, "downgrade", "0001")
    legacy = await query(
        sql_url, "SELECT id, session_id, event_id, data, timestamp FROM events ORDER BY id"
    )
    assert legacy == [(r[0], r[1], r[4], r[5], r[6]) for r in upgraded]

    await migrate.upgrade(sql_url)
    assert await events_rows(sql_url) == upgraded
    heads_again = await query(sql_url, "SELECT * FROM event_streams ORDER BY session_id")
    # The same heads, but for updated_at: the time of the second upgrade.
    assert [h[:-1] for h in heads_again] == [h[:-1] for h in heads]
    assert all(h[-1] >= old[-1] for h, old in zip(heads_again, heads, strict=True))


async def test_the_cap_applies_on_the_next_insert(sql_url: str) -> None:
    await _legacy_database(sql_url)
    await migrate.upgrade(sql_url)
    await execute(sql_url, "UPDATE eventstore_settings SET max_events_per_stream = 3")
    assert len(await _stream(sql_url, "capped")) == 10

    async with open_store(sql_url) as store:
        stored = await store.store_event("capped", DEFAULT_STREAM_ID, "c10", 10)
        assert stored.seq == 11
        info = await store.get_stream_info("capped", DEFAULT_STREAM_ID)
        assert info is not None and (info.first_seq, info.last_seq) == (9, 11)
    assert await _stream(sql_url, "capped") == [("c8", 9, 8), ("c9", 10, 9), ("c10", 11, 10)]


async def test_a_legacy_writer_keeps_working_after_the_upgrade_on_postgres(
    postgres_url: str,
) -> None:
    await _legacy_database(postgres_url)
    await migrate.upgrade(postgres_url)
    await execute(
        postgres_url, "UPDATE event_streams SET max_events = 3 WHERE session_id = 'capped'"
    )
    await insert_legacy(
        postgres_url,
        [("alpha", "after", '"after"', 400), ("capped", "c10", "10", 2000), ("new", "n1", "1", 5)],
    )
    alpha = await _stream(postgres_url, "alpha")
    assert [(event_id, seq) for event_id, seq, _ in alpha][-2:] == [("nul", 4), ("after", 5)]
    assert await _stream(postgres_url, "capped") == [("c8", 9, 8), ("c9", 10, 9), ("c10", 11, 10)]
    assert await _stream(postgres_url, "new") == [("n1", 1, 1)]


async def test_sqlite_refuses_a_legacy_insert_after_the_upgrade(sqlite_url: str) -> None:
    # Documented: SQLite triggers cannot fill in seq, so the old INSERT fails loudly
    # (nothing half-written) once seq is NOT NULL.
    await _legacy_database(sqlite_url)
    await migrate.upgrade(sqlite_url)
    with pytest.raises(IntegrityError, match="seq"):
        await insert_legacy(sqlite_url, [("alpha", "after", '"after"', 400)])


async def test_legacy_rows_go_to_the_stream_named_at_upgrade(sql_url: str) -> None:
    await _legacy_database(sql_url)
    await migrate.upgrade(sql_url, default_stream_id="legacy")
    assert {row[2] for row in await events_rows(sql_url)} == {"legacy"}
    assert [e[0] for e in await _stream(sql_url, "gamma", "legacy")] == ["early", "mid", "late"]
    assert await _stream(sql_url, "gamma") == []


async def test_a_derived_id_never_takes_an_id_another_row_had(sql_url: str) -> None:
    await alembic(sql_url, "upgrade", "0001")
    await insert_legacy(sql_url, [("eps", "e1", str(ts), ts) for ts in (123, 200, 300)])
    third = max(row_id for (row_id,) in await query(sql_url, "SELECT id FROM events"))
    # A row that has, all along, the very id the third "e1" is renamed to.
    await insert_legacy(sql_url, [("eps", f"e1#dup-{third}", '"own"', 400)])

    await migrate.upgrade(sql_url)

    stream = await _stream(sql_url, "eps")
    assert [data for _, _, data in stream] == [123, 200, 300, "own"]
    assert stream[3][0] == f"e1#dup-{third}", "the row that had the id lost it"
    assert stream[2][0] == f"e1#dup-{third}#dup-{third}"
    assert len({event_id for event_id, _, _ in stream}) == 4
