"""``LegacyEventStore``: the old session-only API's behaviour, on every backend."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore import (
    DEFAULT_STREAM_ID,
    DuplicateEventError,
    EventStore,
    InvalidInputError,
    UnknownCursorError,
    open_store,
)
from eventstore import legacy as legacy_module
from eventstore.legacy import LegacyEventStore
from eventstore.transfer import DumpFile, import_events
from tests.legacy.helpers import DumpLines


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def old(store: EventStore) -> LegacyEventStore:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return LegacyEventStore(store)


async def test_events_come_back_in_order_with_their_data(old: LegacyEventStore) -> None:
    for i in range(5):
        returned = await old.store_event("s1", f"e{i}", {"i": i, "text": "ü\x00"})
        assert (returned.id, returned.data, returned.seq) == (
            f"e{i}",
            {"i": i, "text": "ü\x00"},
            i + 1,
        )
    events = await old.get_all_events("s1")
    assert [(e.id, e.data) for e in events] == [
        (f"e{i}", {"i": i, "text": "ü\x00"}) for i in range(5)
    ]
    assert all(e.timestamp > 1_600_000_000_000 for e in events)


async def test_get_events_after_returns_the_rest(old: LegacyEventStore) -> None:
    for i in range(4):
        await old.store_event("s1", f"e{i}", i)
    assert [e.id for e in await old.get_events_after("s1", "e1")] == ["e2", "e3"]
    assert await old.get_events_after("s1", "e3") == []


async def test_sessions_are_isolated(old: LegacyEventStore) -> None:
    await old.store_event("s1", "shared-id", "one")
    await old.store_event("s2", "shared-id", "two")
    await old.store_event("s2", "later", "three")
    assert [e.data for e in await old.get_all_events("s1")] == ["one"]
    assert [e.data for e in await old.get_events_after("s2", "shared-id")] == ["three"]
    with pytest.raises(UnknownCursorError):
        await old.get_events_after("s1", "later")  # s2's event


async def test_an_unknown_cursor_is_an_error_not_an_answer(old: LegacyEventStore) -> None:
    await old.store_event("s1", "e0", 0)
    with pytest.raises(UnknownCursorError):
        await old.get_events_after("s1", "never-stored")
    with pytest.raises(UnknownCursorError):
        await old.get_events_after("nobody", "e0")
    assert await old.get_all_events("nobody") == []


async def test_retries_are_no_ops_and_reused_ids_are_errors(old: LegacyEventStore) -> None:
    first = await old.store_event("s1", "e0", {"a": 1})
    assert await old.store_event("s1", "e0", {"a": 1}) == first
    with pytest.raises(DuplicateEventError):
        await old.store_event("s1", "e0", {"a": 2})
    assert [e.data for e in await old.get_all_events("s1")] == [{"a": 1}]


async def test_bad_input_is_rejected_before_writing(old: LegacyEventStore) -> None:
    for session_id, event_id, data in (("", "e", 1), ("s", "", 1), ("s", "e", {1, 2})):
        with pytest.raises(InvalidInputError):
            await old.store_event(session_id, event_id, data)
    assert await old.get_all_events("s") == []


async def test_clear_session_drops_only_that_session(old: LegacyEventStore) -> None:
    for i in range(3):
        await old.store_event("s1", f"a{i}", i)
    await old.store_event("s2", "b0", 0)
    assert await old.clear_session("s1") == 3
    assert await old.get_all_events("s1") == []
    assert [e.id for e in await old.get_all_events("s2")] == ["b0"]
    # The id is free again after the session was cleared.
    await old.store_event("s1", "a0", "new")
    assert [e.data for e in await old.get_all_events("s1")] == ["new"]


async def test_the_cap_bounds_each_session(store_url: str) -> None:
    async with open_store(store_url, max_events_per_stream=3) as store:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old = LegacyEventStore(store)
        for i in range(5):
            await old.store_event("s1", f"e{i}", i)
        assert [e.id for e in await old.get_all_events("s1")] == ["e2", "e3", "e4"]
        with pytest.raises(UnknownCursorError):
            await old.get_events_after("s1", "e0")  # trimmed


async def test_the_wrapper_shares_its_stream_with_ported_code(store: EventStore) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = LegacyEventStore(store)
        stdio = LegacyEventStore(store, stream_id="stdio")
    await old.store_event("s1", "e0", "legacy")
    await store.store_event("s1", DEFAULT_STREAM_ID, "e1", "ported")
    await stdio.store_event("s1", "e2", "other stream")
    assert [e.data for e in await old.get_all_events("s1")] == ["legacy", "ported"]
    assert [e.data for e in await store.get_stream_events("s1", "stdio")] == ["other stream"]
    with pytest.raises(InvalidInputError):
        LegacyEventStore(store, stream_id="")


async def test_the_deprecation_warning_is_emitted_once(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(legacy_module, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LegacyEventStore(store)
        LegacyEventStore(store)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1
    assert "MIGRATION.md" in str(deprecations[0].message)
    assert deprecations[0].filename == __file__


async def test_imported_legacy_data_is_readable_through_the_wrapper(
    tmp_path: Path, sqlite_url: str
) -> None:
    dump = DumpLines(tmp_path / "dump.jsonl")
    dump.add("s1", "e1", {"n": 1}, 20)
    dump.add("s1", "e0", {"n": 0}, 10)
    async with open_store(sqlite_url) as store:
        report = await import_events(DumpFile(str(dump.write())), store)
        assert (report.stored, report.rejected) == (2, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old = LegacyEventStore(store)
        assert [(e.id, e.timestamp) for e in await old.get_all_events("s1")] == [
            ("e0", 10),
            ("e1", 20),
        ]
        await old.store_event("s1", "e2", {"n": 2})
        assert [e.id for e in await old.get_events_after("s1", "e0")] == ["e1", "e2"]
