"""Parsing dump lines and table rows: what becomes an event, and why the rest is rejected."""

from __future__ import annotations

import sys

import pytest

from eventstore.transfer.records import Reject, SourceEvent, parse_line, parse_row

LIMIT = 1024


def line(text: str) -> SourceEvent | Reject | None:
    return parse_line(7, text.encode("utf-8"), LIMIT)


def test_a_legacy_line_and_an_exported_line() -> None:
    legacy = line('{"session_id": "s", "id": "e", "data": {"b": 1, "a": 2}, "timestamp": 5}\n')
    assert legacy == SourceEvent(7, "s", None, None, "e", 5, '{"b":1,"a":2}')
    exported = line(
        '{"session_id":"s","stream_id":"7","seq":3,"id":"e","data":null,"timestamp":1}\r\n'
    )
    assert exported == SourceEvent(7, "s", "7", 3, "e", 1, "null")


def test_float_timestamps_are_truncated_milliseconds() -> None:
    event = line('{"session_id": "s", "id": "e", "data": 1, "timestamp": 1700000000123.9}')
    assert isinstance(event, SourceEvent) and event.timestamp == 1700000000123


def test_blank_lines_are_not_events() -> None:
    assert line("   \n") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object but list"),
        ('{"id": "e", "data": 1, "timestamp": 1}', "missing field 'session_id'"),
        ('{"session_id": "s", "data": 1, "timestamp": 1}', "missing field 'id'"),
        ('{"session_id": "s", "id": "e", "timestamp": 1}', "missing field 'data'"),
        ('{"session_id": "s", "id": "e", "data": 1}', "missing field 'timestamp'"),
        ('{"session_id": "s", "id": "e", "data": 1, "timestamp": "today"}', "timestamp must"),
        ('{"session_id": "s", "id": "e", "data": 1, "timestamp": -1}', "timestamp must"),
        (
            '{"session_id": "s", "id": "e", "data": 1, "timestamp": 9223372036854775808}',
            "timestamp must be epoch milliseconds (a number from 0 to 2**63-1)",
        ),
        ('{"session_id": "s", "id": "e", "data": 1, "timestamp": 1, "seq": 0}', "seq must"),
        (
            '{"session_id": "s", "id": "e", "data": 1, "timestamp": 1, "seq": 9223372036854775808}',
            "seq must be an int from 1 to 2**63-1, not 9223372036854775808",
        ),
        ('{"session_id": " ", "id": "e", "data": 1, "timestamp": 1}', "session_id must not"),
        ('{"session_id": "s", "id": 5, "data": 1, "timestamp": 1}', "id must be a str"),
        ('{"session_id": "s", "id": "e\\u0000", "data": 1, "timestamp": 1}', "NUL"),
        ('{"session_id": "s", "id": "e", "data": NaN, "timestamp": 1}', "not a JSON value"),
        ('{"session_id": "s", "id": "e", "data": "' + "x" * 2000 + '", "timestamp": 1}', "bytes"),
    ],
)
def test_bad_lines_are_rejected_with_the_reason(text: str, reason: str) -> None:
    rejected = line(text)
    assert isinstance(rejected, Reject)
    assert rejected.position == 7
    assert reason in rejected.reason
    assert rejected.source == text


@pytest.mark.parametrize("field", ["data", "timestamp", "seq"])
def test_an_integer_python_will_not_read_is_a_rejected_line(field: str) -> None:
    # Valid JSON, but json.loads raises a plain ValueError (not JSONDecodeError) for an
    # integer over sys.get_int_max_str_digits() digits: it used to end the import.
    record = '{"session_id": "s", "id": "e", "data": 1, "timestamp": 1, "seq": 1}'
    text = record.replace(f'"{field}": 1', f'"{field}": {"9" * 5000}')

    rejected = line(text)

    assert isinstance(rejected, Reject)
    assert rejected.reason == (
        f"the line holds an integer with more than {sys.get_int_max_str_digits()} digits, "
        "which Python will not read"
    )
    assert rejected.source == text


def test_a_row_whose_data_holds_an_integer_python_will_not_read_is_rejected() -> None:
    row = {"id": 9, "session_id": "s", "event_id": "e", "data": "9" * 5000, "timestamp": 4}
    rejected = parse_row(9, row, LIMIT)
    assert isinstance(rejected, Reject)
    assert rejected.reason == (
        f"data holds an integer with more than {sys.get_int_max_str_digits()} digits, "
        "which Python will not read"
    )


def test_a_line_that_is_not_utf8_is_rejected() -> None:
    rejected = parse_line(3, b'{"session_id": "\xff"}', LIMIT)
    assert isinstance(rejected, Reject) and rejected.reason.startswith("not UTF-8 text")


def test_table_rows() -> None:
    row = {"id": 9, "session_id": "s", "event_id": "e", "data": '{"a": 1}', "timestamp": 4}
    assert parse_row(9, row, LIMIT) == SourceEvent(9, "s", None, None, "e", 4, '{"a":1}')
    broken = parse_row(10, {**row, "data": "{"}, LIMIT)
    assert isinstance(broken, Reject) and broken.reason.startswith("data is not JSON")
    nameless = parse_row(11, {**row, "session_id": None}, LIMIT)
    assert isinstance(nameless, Reject) and nameless.reason == "missing field 'session_id'"
