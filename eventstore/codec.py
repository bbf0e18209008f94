"""Input checks and the JSON encoding every backend stores.

Everything here runs before a backend touches its storage, so a rejected argument never
costs a write. The encoding is deterministic for a given value and decodes back to an equal
value, including ``"\\u0000"`` inside strings, lone surrogates, integers of any size and
non-ASCII text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from eventstore.errors import InvalidInputError, PayloadTooLargeError

#: Longest accepted session, stream or event id, in characters.
MAX_ID_LENGTH = 1024
#: Default largest accepted JSON encoding of ``data``, in UTF-8 bytes (16 MiB).
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

# The SQL column is a signed 64-bit integer.
_MAX_TIMESTAMP = 2**63 - 1

_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_ascii = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))

_LONG_DIGITS = re.compile("[0-9]{19}")


def check_id(kind: str, value: object) -> str:
    """Return ``value`` if it is usable as a session, stream or event id, else raise.

    An id is a non-empty ``str`` that is not only whitespace, at most
    :data:`MAX_ID_LENGTH` characters, without NUL and encodable as UTF-8.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{kind} must be a str, not {type(value).__name__}")
    if not value or value.isspace():
        raise InvalidInputError(f"{kind} must not be empty or only whitespace")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            f"{kind} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}"
        )
    if "\x00" in value:
        raise InvalidInputError(f"{kind} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{kind} contains a lone surrogate (not valid Unicode)") from None
    return value


def encode_data(data: Any, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> str:
    """Encode ``data`` as compact JSON text, or raise :class:`InvalidInputError`.

    Non-ASCII text is kept as is; only a value holding a lone surrogate (which UTF-8
    cannot carry) is written with ASCII escapes, so it still round-trips exactly.
    ``NaN``, ``Infinity``, sets, arbitrary objects and nesting deeper than the
    interpreter's recursion limit are rejected.
    """
    try:
        text = _compact.encode(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"data is not a JSON value: {exc}") from None
    except RecursionError:
        raise InvalidInputError("data is nested too deeply to encode as JSON") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = _ascii.encode(data)
        size = len(text)
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"data encodes to {size} bytes; this store accepts at most {max_bytes} "
            "(max_event_bytes)"
        )
    return text


def decode_data(text: str) -> Any:
    """Decode text written by :func:`encode_data`."""
    # orjson parses a typical event several times faster than json, which dominates a
    # replay's CPU time. It turns integers beyond 64 bits into floats, so text with 19
    # digits in a row goes to json, as does what orjson refuses (escaped lone
    # surrogates, very deep nesting).
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def same_content(stored_text: str, data_text: str) -> bool:
    """Whether two encodings hold the same value (key order does not matter)."""
    return stored_text == data_text or json.loads(stored_text) == json.loads(data_text)


def check_timestamp(timestamp: object) -> int | None:
    """Validate an event's explicit time: ``None`` (now) or epoch ms as an ``int`` >= 0."""
    if timestamp is None:
        return None
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int)
        or not 0 <= timestamp <= _MAX_TIMESTAMP
    ):
        raise InvalidInputError(
            f"timestamp must be None or epoch milliseconds as an int >= 0, not {timestamp!r}"
        )
    return timestamp


def check_limit(limit: object) -> int | None:
    """Validate the ``limit`` of a read: ``None`` or a positive ``int``."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"limit must be None or a positive int, not {limit!r}")
    return limit


def check_cap(cap: object) -> int | None:
    """Validate a retention cap: ``None`` (unlimited) or an ``int`` of at least 1."""
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidInputError(f"max_events_per_stream must be None or an int >= 1, not {cap!r}")
    return cap
