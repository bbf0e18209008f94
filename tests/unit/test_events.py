from __future__ import annotations

import dataclasses

import pytest

from eventstore import DEFAULT_STREAM_ID, InvalidInputError, StoredEvent, StoreEvent
from eventstore.events import make_event


def test_to_dict_from_dict_round_trip() -> None:
    event = StoredEvent("e1", "st", {"x": [1, "\u0000"]}, 1_700_000_000_000, "s", 7)
    assert StoredEvent.from_dict(event.to_dict()) == event


def test_legacy_dict_loads_into_the_default_stream() -> None:
    event = StoredEvent.from_dict({"id": "e1", "data": 1, "timestamp": 5, "session_id": "s"})
    assert event.stream_id == DEFAULT_STREAM_ID
    assert event.seq == 0


def test_stored_event_is_frozen_and_slotted() -> None:
    event = StoredEvent("e1", "st", 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.id = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_from_dict_reports_missing_fields() -> None:
    with pytest.raises(InvalidInputError, match="'timestamp'"):
        StoredEvent.from_dict({"id": "e1"})


@pytest.mark.parametrize("bad", [None, 1.5, True, ["e1"], {"id": 1}])
def test_from_dict_refuses_ids_that_are_not_text(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="'id' must be a str"):
        StoredEvent.from_dict({"id": bad, "timestamp": 5})


def test_from_dict_takes_a_legacy_numeric_id_as_text() -> None:
    assert StoredEvent.from_dict({"id": 17, "timestamp": 5}).id == "17"


def test_a_request_repr_never_shows_the_payload() -> None:
    shown = repr(StoreEvent("s", "st", "e1", {"token": "secret-value"}))
    assert "secret-value" not in shown
    assert "'s'" in shown and "'st'" in shown and "'e1'" in shown


def test_make_event_builds_the_same_frozen_event() -> None:
    made = make_event("e1", "st", {"x": 1}, 5, "s", 3)
    assert made == StoredEvent("e1", "st", {"x": 1}, 5, "s", 3)
    assert type(made) is StoredEvent
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.seq = 4  # type: ignore[misc]
    assert made.to_dict()["seq"] == 3
