"""The bad-input catalogue: every input the store must refuse, or carry exactly.

``REJECTIONS`` maps a case name (``operation.argument=kind``) to a call that must raise
its error before anything is written; ``BATCHABLE`` are those that can also travel as a
request of a batch. ``ODD_IDS`` and ``EXACT_DATA`` must round-trip exactly.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eventstore import (
    ClearSession,
    ClearStream,
    EventStore,
    InvalidInputError,
    StoreEvent,
    UpdateLastEventId,
)
from eventstore.codec import MAX_CAP, MAX_ID_BYTES, MAX_NESTING

MIB = 1024 * 1024


def _nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _nested_dict(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


# -- ids ------------------------------------------------------------------------------------

BAD_IDS: dict[str, Any] = {
    "empty": "",
    "space": " ",
    "whitespace": "\t\n \r",
    "10kB": "x" * 10_000,
    "one-over-limit": "x" * (MAX_ID_BYTES + 1),
    # Within the limit in characters, over it in UTF-8 bytes (a PostgreSQL index entry
    # would overflow): refused on every backend alike.
    "multibyte-one-over-limit": "é" * (MAX_ID_BYTES // 2) + "x",
    "700-emoji": "😀" * 700,
    "nul": "a\x00b",
    "lone-surrogate": "a\ud800",
    "surrogate-pair": "a\ud83d\ude00",
    "None": None,
    "int": 1,
    "float": 1.5,
    "bool": True,
    "bytes": b"s",
    "list": ["s"],
    "dict": {"s": 1},
}

# Ids that look like SQL, format strings, LIKE patterns or escapes are just ids.
ODD_IDS: dict[str, str] = {
    "quote": "'",
    "double-quote": '"',
    "semicolon": ";",
    "percent": "%",
    "format": "%s %(x)s {0} {x}",
    "backslash": "\\",
    "backslash-quote": "\\'",
    "injection": "x'); DELETE FROM events; --",
    "like-wildcards": "_%",
    "placeholders": "? $1 :name",
    "non-ascii": "żółć 漢字 🎉",
    "newline": "a\nb",
    "leading-space": " a",
    "limit-length": "y" * MAX_ID_BYTES,
    "limit-length-multibyte": "é" * (MAX_ID_BYTES // 2),
}

# -- data -----------------------------------------------------------------------------------

EXACT_DATA: dict[str, Any] = {
    "nul-string": "\u0000",
    "nul-inside": "a\x00b\x00",
    "nul-key": {"\x00": "\x00"},
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogate": "x\udfffy",
    "surrogate-key": {"\ud83d": 1},
    "pair-and-lone": "🎉\ud800🎉",
    "int-2**64": 2**64,
    "int--2**100": -(2**100),
    "float-max": 1.7976931348623157e308,
    "float-tiny": 5e-324,
    "negative-zero": -0.0,
    "key-order": {"z": 1, "a": 2, "m": {"y": 1, "b": 2}},
    "sql-text": "'); DROP TABLE events; --",
    "escapes": '\\u0000 \\n " \\',
    "list-nested-to-the-limit": _nested_list(MAX_NESTING),
    "dict-nested-to-the-limit": _nested_dict(MAX_NESTING),
    "many-brackets-shallow": [[i] for i in range(5_000)] + ["[[[{{{"] * 100,
    "empty-string": "",
    "null": None,
    "10MB": "x" * (10 * MIB),
}

NOT_JSON: dict[str, Any] = {
    "nan": math.nan,
    "infinity": math.inf,
    "-infinity": -math.inf,
    "nested-nan": {"a": [1, {"b": math.nan}]},
    "set": {1, 2},
    "object": object(),
    "bytes": b"data",
    "tuple": (1, 2),
    "nested-tuple": {"a": [1, (2, 3)]},
    "int-key": {1: "a"},
    "none-key": {None: 1},
    "bool-key": {True: 1},
    "tuple-key": {(1,): 1},
    # Two code points that JSON and UTF-8 would join into one character.
    "surrogate-pair": "\ud800\udfff",
    "surrogate-pair-value": {"k": "\ud83d\ude00"},
    "surrogate-pair-key": {"\ud800\udc00": 1},
    "decimal": decimal.Decimal("1.5"),
    "datetime": datetime.datetime(2024, 1, 1),
    "function": len,
    "int-5000-digits": 10**5000,
    "list-one-over-the-nesting-limit": _nested_list(MAX_NESTING + 1),
    "dict-one-over-the-nesting-limit": _nested_dict(MAX_NESTING + 1),
    "list-10k-deep": _nested_list(10_000),
    "dict-10k-deep": _nested_dict(10_000),
}


# -- the catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """A call that must raise ``error`` before writing anything."""

    call: Callable[[EventStore], Awaitable[Any]]
    error: type[InvalidInputError] = InvalidInputError
    # The same mistake as a request of a batch, when it can be one.
    request: Any = None


def _rejections() -> dict[str, Rejection]:
    cases: dict[str, Rejection] = {}
    for name, bad in BAD_IDS.items():
        # Every id argument of every operation, and of every write request.
        cases[f"store_event.session_id={name}"] = Rejection(
            lambda s, b=bad: s.store_event(b, "a", "e", 1), request=StoreEvent(bad, "a", "e", 1)
        )
        cases[f"store_event.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.store_event("s", b, "e", 1), request=StoreEvent("s", bad, "e", 1)
        )
        cases[f"store_event.event_id={name}"] = Rejection(
            lambda s, b=bad: s.store_event("s", "a", b, 1), request=StoreEvent("s", "a", bad, 1)
        )
        cases[f"get_events_after.session_id={name}"] = Rejection(
            lambda s, b=bad: s.get_events_after(b, "a", "e1")
        )
        cases[f"get_events_after.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.get_events_after("s", b, "e1")
        )
        cases[f"get_events_after.after_event_id={name}"] = Rejection(
            lambda s, b=bad: s.get_events_after("s", "a", b)
        )
        cases[f"get_stream_events.session_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_events(b, "a")
        )
        cases[f"get_stream_events.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_events("s", b)
        )
        cases[f"clear_stream.session_id={name}"] = Rejection(
            lambda s, b=bad: s.clear_stream(b, "a"), request=ClearStream(bad, "a")
        )
        cases[f"clear_stream.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.clear_stream("s", b), request=ClearStream("s", bad)
        )
        cases[f"clear_session.session_id={name}"] = Rejection(
            lambda s, b=bad: s.clear_session(b), request=ClearSession(bad)
        )
        cases[f"stream_count.session_id={name}"] = Rejection(lambda s, b=bad: s.stream_count(b))
        cases[f"get_stream_info.session_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_info(b, "a")
        )
        cases[f"get_stream_info.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.get_stream_info("s", b)
        )
        cases[f"set_max_events_per_stream.session_id={name}"] = Rejection(
            lambda s, b=bad: s.set_max_events_per_stream(1, session_id=b, stream_id="a")
        )
        cases[f"set_max_events_per_stream.stream_id={name}"] = Rejection(
            lambda s, b=bad: s.set_max_events_per_stream(1, session_id="s", stream_id=b)
        )
        cases[f"UpdateLastEventId.event_id={name}"] = Rejection(
            lambda s, b=bad: _apply_one(s, UpdateLastEventId("s", "a", b)),
            request=UpdateLastEventId("s", "a", bad),
        )
    for name, data in NOT_JSON.items():
        cases[f"store_event.data={name}"] = Rejection(
            lambda s, d=data: s.store_event("s", "a", "e", d),
            request=StoreEvent("s", "a", "e", data),
        )
    bad_counts = {"zero": 0, "negative": -1, "float": 1.5, "str": "3", "bool": True}
    for name, limit in {**bad_counts, "2**63": 2**63}.items():
        cases[f"get_events_after.limit={name}"] = Rejection(
            lambda s, x=limit: s.get_events_after("s", "a", "e1", limit=x)
        )
        cases[f"get_stream_events.limit={name}"] = Rejection(
            lambda s, x=limit: s.get_stream_events("s", "a", limit=x)
        )
    # The cap columns are 32-bit: one over the largest cap is refused before any write.
    for name, limit in {**bad_counts, "over-max": MAX_CAP + 1}.items():
        cases[f"set_max_events_per_stream.limit={name}"] = Rejection(
            lambda s, x=limit: s.set_max_events_per_stream(x)
        )
        cases[f"set_max_events_per_stream.stream-limit={name}"] = Rejection(
            lambda s, x=limit: s.set_max_events_per_stream(x, session_id="s", stream_id="a")
        )
    for name, idle in {
        "negative": -1,
        "float": 0.5,
        "str": "10",
        "None": None,
        "2**70": 2**70,
    }.items():
        cases[f"prune_idle_sessions.idle_ms={name}"] = Rejection(
            lambda s, x=idle: s.prune_idle_sessions(x)
        )
    for name, timestamp in {"negative": -1, "float": 1.5, "str": "0", "huge": 2**63}.items():
        request = StoreEvent("s", "a", "e", 1, timestamp=timestamp)
        cases[f"StoreEvent.timestamp={name}"] = Rejection(
            lambda s, r=request: _apply_one(s, r), request=request
        )
    for name, requests in {"None": None, "str": "abc", "dict": {"a": 1}, "int": 5}.items():
        cases[f"apply.requests={name}"] = Rejection(lambda s, r=requests: s.apply(r))
    for name, item in {"dict": {"session_id": "s"}, "None": None, "str": "StoreEvent"}.items():
        cases[f"apply.item={name}"] = Rejection(lambda s, i=item: _apply_one(s, i), request=item)
    cases["set_max_events_per_stream.missing-stream"] = Rejection(
        lambda s: s.set_max_events_per_stream(1, session_id="s", stream_id="missing")
    )
    cases["UpdateLastEventId.missing-stream"] = Rejection(
        lambda s: _apply_one(s, UpdateLastEventId("s", "missing", "e1")),
        request=UpdateLastEventId("s", "missing", "e1"),
    )
    return cases


async def _apply_one(store: EventStore, request: Any) -> Any:
    """Apply one request and raise its error, as the convenience methods do."""
    (result,) = await store.apply([request])
    if isinstance(result, Exception):
        raise result
    return result


REJECTIONS = _rejections()
BATCHABLE = {name: case for name, case in REJECTIONS.items() if case.request is not None}
