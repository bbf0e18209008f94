"""decode_data's orjson fast path gives exactly what json gives, for every JSON value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.codec import decode_data, encode_data, orjson_exact

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


def _same(decoded: Any, expected: Any) -> bool:
    # repr tells 1 from 1.0 from True and shows every float digit; == alone would not.
    return type(decoded) is type(expected) and repr(decoded) == repr(expected)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_decoding_matches_json_exactly(value: Any) -> None:
    text = encode_data(value)
    assert _same(decode_data(text), json.loads(text))


@pytest.mark.parametrize(
    "value",
    [
        2**63 - 1,
        2**64 - 1,
        2**64,
        -(2**63),
        -(2**63) - 1,
        10**18,
        10**19,
        {"n": [1, 2**70, "x"]},
        "digits in a string 12345678901234567890",
        1.7976931348623157e308,
        5e-324,
        "\ud800 lone surrogate",
        "\u0000",
    ],
    ids=repr,
)
def test_edge_values_decode_exactly(value: Any) -> None:
    text = encode_data(value)
    assert _same(decode_data(text), json.loads(text))
    assert decode_data(text) == value


@pytest.mark.parametrize(
    ("texts", "exact"),
    [
        (['{"a":1}', "[1,2,3]", '"x"'], True),
        (['{"a":1}', "12345678901234567890"], False),
        (['{"a":"1234567890123456789"}'], False),  # digits in a string: the safe side
        (["123456789", "0123456789"], True),  # a run may not span two rows
        (['"\ud800"'], False),
        ([], True),
    ],
)
def test_orjson_exact_spots_long_digit_runs(texts: list[str], exact: bool) -> None:
    assert orjson_exact(texts) is exact
