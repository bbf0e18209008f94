"""Event ids: bounded, unique in the session, naming their stream, distinct across sessions."""

from __future__ import annotations

import pytest

from eventstore.codec import check_id
from eventstore.mcp.ids import (
    MAX_EVENT_ID_LENGTH,
    EventIds,
    is_hashed,
    stream_key,
    stream_key_of,
)


@pytest.mark.parametrize("stream_id", ["1", "_GET_stream", "42", "a-b_c", "0" * 64])
def test_plain_stream_ids_are_their_own_key(stream_id: str) -> None:
    assert stream_key(stream_id) == stream_id
    assert not is_hashed(stream_key(stream_id))


@pytest.mark.parametrize(
    "stream_id", ["", " ", "a.b", "é", "\ud800", "x" * 65, "y" * 100_000, "1\n2", "~abc"]
)
def test_other_stream_ids_hash_to_a_short_valid_key(stream_id: str) -> None:
    key = stream_key(stream_id)
    assert is_hashed(key)
    assert len(key) == 23
    assert check_id("stream_id", key) == key
    assert stream_key(stream_id) == key


def test_hashed_keys_differ_for_different_streams() -> None:
    keys = {stream_key("x" * n) for n in range(65, 300)}
    assert len(keys) == 300 - 65


def test_ids_are_bounded_unique_and_name_their_stream() -> None:
    ids = EventIds()
    minted = [ids.mint(stream_key(s)) for s in ("1", "_GET_stream", "z" * 5000) for _ in range(50)]
    assert len(set(minted)) == len(minted)
    assert all(len(event_id) <= MAX_EVENT_ID_LENGTH for event_id in minted)
    assert [stream_key_of(i) for i in minted[:50]] == ["1"] * 50
    assert stream_key_of(minted[50]) == "_GET_stream"
    assert stream_key_of(minted[100]) == stream_key("z" * 5000)


def test_two_sessions_never_mint_the_same_id() -> None:
    a, b = EventIds(), EventIds()
    assert {a.mint("1") for _ in range(100)}.isdisjoint({b.mint("1") for _ in range(100)})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "AAAAAAAAAAA.1",
        "AAAAAAAAAAA.0.1",
        "AAAAAAAAAAA.01.1",
        "AAAAAAAAAA.1.1",
        "AAAAAAAAAAA.1.1\n",
        "AAAAAAAAAAA.1.a.b",
        "AAAAAAAAAAA.1." + "x" * 65,
        "AAAAAAAAAAA.\u0661.1",  # an Arabic-Indic digit one
        "x" * (MAX_EVENT_ID_LENGTH + 1),
    ],
)
def test_anything_else_is_not_an_event_id(text: str) -> None:
    assert stream_key_of(text) is None
