"""Input checks and the JSON encoding every backend stores.

Everything here runs before a backend touches its storage, so a rejected argument never
costs a write. The encoding is deterministic for a given value and decodes back to an equal
value, including ``"\\u0000"`` inside strings, lone surrogates, integers of any size and
non-ASCII text.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from eventstore.errors import (
    CorruptDataError,
    InvalidInputError,
    PayloadTooLargeError,
)

#: Longest accepted session, stream or event id, in UTF-8 bytes. Two of them side by side
#: stay well inside PostgreSQL's 2,704-byte limit for a btree index entry.
MAX_ID_BYTES = 1024
#: Deepest accepted nesting of lists and objects in ``data``. A fixed bound, so data
#: accepted once can always be replayed, whatever the reader's own stack depth.
MAX_NESTING = 256
#: Largest retention cap (the database column is a 32-bit integer).
MAX_CAP = 2**31 - 1
#: Default largest accepted JSON encoding of ``data``, in UTF-8 bytes (16 MiB).
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
#: The most ``max_event_bytes`` may be (256 MiB): well inside what one value may hold
#: in SQLite (1e9 bytes) and in one PostgreSQL protocol message (1 GiB), so an event
#: the store accepts is one every backend can write.
MAX_EVENT_BYTES_LIMIT = 256 * 1024 * 1024

# The SQL columns are signed 64-bit integers.
#: Largest value of a 64-bit signed integer column (and of a read's ``limit``).
MAX_BIGINT = 2**63 - 1

_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_ascii = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
# One text per JSON value: key order does not matter, while 1, 1.0 and true (equal to
# Python's ==) stay different values.
_canonical = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":")
)

_LONG_DIGITS = re.compile("[0-9]{19}")
# Types orjson would encode its own way; json refuses them or encodes them as it does.
_ORJSON_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def check_id(kind: str, value: object) -> str:
    """Return ``value`` if it is usable as a session, stream or event id, else raise.

    An id is a non-empty ``str`` that is not only whitespace, at most
    :data:`MAX_ID_BYTES` bytes in UTF-8, without NUL and encodable as UTF-8.
    """
    # The usual id, at a third of the cost: ASCII, so one byte a character.
    if (
        type(value) is str
        and value.isascii()
        and 0 < len(value) <= MAX_ID_BYTES
        and "\x00" not in value
        and not value.isspace()
    ):
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"{kind} must be a str, not {type(value).__name__}")
    if not value or value.isspace():
        raise InvalidInputError(f"{kind} must not be empty or only whitespace")
    if len(value) > MAX_ID_BYTES:
        raise InvalidInputError(
            f"{kind} is {len(value)} characters long; the limit is {MAX_ID_BYTES} bytes"
        )
    if "\x00" in value:
        raise InvalidInputError(f"{kind} must not contain NUL characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # Lone, or a pair held as two code points (which stands for one character): either
        # way not text UTF-8 can carry.
        raise InvalidInputError(
            f"{kind} contains surrogate code points (U+D800-U+DFFF), which are not valid "
            "Unicode text; a pair of them stands for one character: join it first"
        ) from None
    if size > MAX_ID_BYTES:
        raise InvalidInputError(
            f"{kind} is {size} bytes long in UTF-8; the limit is {MAX_ID_BYTES} bytes"
        )
    return value


def encode_data(data: Any, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> str:
    """Encode ``data`` as compact JSON text, or raise :class:`InvalidInputError`.

    Non-ASCII text is kept as is; only a value holding a lone surrogate (which UTF-8
    cannot carry) is written with ASCII escapes, so it still round-trips exactly.
    ``NaN``, ``Infinity``, sets, arbitrary objects, nesting deeper than
    :data:`MAX_NESTING`, and values JSON would silently change (tuples, dict keys that
    are not ``str``, a surrogate pair held as two code points) are rejected.
    """
    return encode_checked(data, max_bytes)[0]


def encode_checked(data: Any, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> tuple[str, Any]:
    """:func:`encode_data`, and the value a replay of that text gives back."""
    # orjson first, at a quarter of json's cost on every write. Whatever it refuses (big
    # integers, lone surrogates, non-str keys, subclasses, dataclasses, datetimes) or
    # does not give back unchanged (NaN becomes null, a tuple a list, an enum its value)
    # takes json's path below, which decides and words the error.
    try:
        encoded = orjson.dumps(data, option=_ORJSON_PASSTHROUGH)
        if (
            encoded.count(b"[") + encoded.count(b"{") <= MAX_NESTING
            and len(encoded) <= max_bytes
            and (replayed := orjson.loads(encoded)) == data
        ):
            return encoded.decode(), replayed
    except Exception:  # an orjson.Fragment that is not JSON, an __eq__ that raises
        pass
    try:
        text = _compact.encode(data)
    except (TypeError, ValueError) as exc:
        reason = too_many_digits(exc) or exc
        raise InvalidInputError(f"data is not a JSON value: {reason}") from None
    except RecursionError:
        raise InvalidInputError(_too_deep()) from None
    # Counting brackets is an upper bound on the depth at C speed; only data with many
    # of them pays for the exact walk.
    if text.count("[") + text.count("{") > MAX_NESTING and _nesting(data) > MAX_NESTING:
        raise InvalidInputError(_too_deep())
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
    # The encoder turns tuples into lists and int/bool/None keys into strings; storing
    # that would replay a value other than the one given. Decoded as a replay decodes it
    # (orjson where it is exact: several times faster than json.loads, on every write).
    replayed = decode_data(text)
    if replayed != data:
        raise InvalidInputError(_replay_mismatch(data))
    return text, replayed


def _replay_mismatch(data: Any) -> str:
    """Why ``data`` decodes to another value: a surrogate pair, else a tuple or key."""
    pair = _surrogate_pair(data)
    if pair is not None:
        # "\ud83d\ude00" escaped in JSON decodes as one character, and UTF-8 has no way
        # to write the two halves apart: the caller most likely decoded UTF-16 by hand.
        joined = pair.encode("utf-16", "surrogatepass").decode("utf-16")
        return (
            f"data would not replay as given: a string in it holds the surrogate code points "
            f"{pair!r} as two characters, which JSON and UTF-8 join into the one character "
            f"{joined!r}; join them first, e.g. with s.encode('utf-16', 'surrogatepass')"
            ".decode('utf-16')"
        )
    return (
        "data would not replay as given: it holds a tuple or a dict key that is not a "
        "str (JSON has only lists and string keys); convert it first"
    )


_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _surrogate_pair(data: Any) -> str | None:
    """The first high-then-low surrogate pair in a string or key of ``data``, if any."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            found = _SURROGATE_PAIR.search(value)
            if found is not None:
                return found.group()
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
    return None


def _too_deep() -> str:
    return f"data is nested more than {MAX_NESTING} levels deep"


def _nesting(data: Any) -> int:
    """How deeply lists and dicts nest in ``data`` (stops counting past the limit)."""
    deepest = 0
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > MAX_NESTING:
                return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


def decode_data(text: str) -> Any:
    """Decode text written by :func:`encode_data`.

    Text that is not JSON (a row written around the store, e.g. by a legacy writer)
    raises :class:`~eventstore.errors.CorruptDataError`.
    """
    # orjson parses a typical event several times faster than json, which dominates a
    # replay's CPU time. It turns integers beyond 64 bits into floats, so text with 19
    # digits in a row goes to json, as does what orjson refuses (escaped lone
    # surrogates).
    if type(text) is not str:
        # bytes: a writer around the store bound a BLOB (SQLite keeps what it is given).
        raise CorruptDataError(
            f"a stored event's data is {type(text).__name__}, not JSON text "
            "(a SQLite BLOB: CAST(data AS TEXT) in an UPDATE of that row converts it)"
        )
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except ValueError as exc:
        if (digits := too_many_digits(exc)) is not None:
            raise CorruptDataError(
                f"a stored event's data holds {digits}, which Python will not read"
            ) from None
        raise CorruptDataError(f"a stored event's data is not valid JSON: {exc}") from None


def too_many_digits(exc: Exception) -> str | None:
    """``"an integer with more than N digits"`` when ``exc`` is Python refusing to convert
    one, else ``None``. (Python's own advice, sys.set_int_max_str_digits, is no use to
    someone storing or importing events.)"""
    if "integer string conversion" not in str(exc):
        return None
    return f"an integer with more than {sys.get_int_max_str_digits()} digits"


def _finite_float(text: str) -> float:
    # Valid JSON (1e999), but no float holds it: writing it back would need Infinity.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text} is beyond a float's range")
    return value


def _no_constant(name: str) -> float:
    # json accepts NaN and Infinity, which JSON does not have (nor does this store).
    raise ValueError(f"{name} is not JSON")


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_ZEROS = b"0" * 19

#: Decodes what :func:`orjson_exact` approved exactly (raises ``orjson.JSONDecodeError``).
fast_loads = orjson.loads


def orjson_exact(texts: list[str]) -> bool:
    """Whether :data:`fast_loads` decodes each of ``texts`` exactly: no 19-digit runs.

    What a replay checks once for all its rows: bytes.translate and a substring search
    run at C speed, where a regular expression per row cost four times the parse.
    Text that is not plain UTF-8 (a lone surrogate) is refused too.
    """
    try:
        joined = "\n".join(texts).encode("utf-8")
    except (UnicodeEncodeError, TypeError):  # TypeError: a row that is not text
        return False
    return _LONG_ZEROS not in joined.translate(_DIGITS_TO_ZERO)


def same_content(stored_text: str, data_text: str) -> bool:
    """Whether two encodings hold the same JSON value.

    Key order does not matter; ``1``, ``1.0`` and ``true`` are different values.
    """
    if stored_text == data_text:
        return True
    return _canonical.encode(json.loads(stored_text)) == _canonical.encode(json.loads(data_text))


def check_timestamp(timestamp: object) -> int | None:
    """Validate an event's explicit time: ``None`` (now) or epoch ms as an ``int`` >= 0."""
    if timestamp is None:
        return None
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int)
        or not 0 <= timestamp <= MAX_BIGINT
    ):
        raise InvalidInputError(
            f"timestamp must be None or epoch milliseconds as an int >= 0, not {timestamp!r}"
        )
    return timestamp


def check_seconds(name: str, value: object, *, allow_zero: bool, allow_none: bool = False) -> None:
    """Refuse a duration that is not a finite number of seconds, above 0 (or 0 too)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if value > 0 or (allow_zero and value == 0):
            return
    wanted = "a non-negative" if allow_zero else "a positive"
    prefix = "None or " if allow_none else ""
    raise InvalidInputError(f"{name} must be {prefix}{wanted} number of seconds, not {value!r}")


def check_limit(limit: object) -> int | None:
    """Validate the ``limit`` of a read: ``None`` or a positive ``int``."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BIGINT:
        raise InvalidInputError(f"limit must be None or a positive int below 2**63, not {limit!r}")
    return limit


def check_requests(requests: object) -> list[Any]:
    """Validate the argument of ``apply``: a list or tuple (each request is checked alone)."""
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise InvalidInputError(
            f"requests must be a list of write requests, not {type(requests).__name__}"
        )
    return list(requests)


def check_session_ids(session_ids: object) -> set[str]:
    """Validate a collection of session ids (not a lone ``str``); return them as a set."""
    if isinstance(session_ids, (str, bytes)) or not isinstance(session_ids, Collection):
        raise InvalidInputError(
            f"session_ids must be a collection of str, not {type(session_ids).__name__}"
        )
    return {check_id("session_id", session_id) for session_id in session_ids}


def check_idle_ms(idle_ms: object) -> int:
    """Validate the idle time of ``prune_idle_sessions``: an ``int`` >= 0."""
    if isinstance(idle_ms, bool) or not isinstance(idle_ms, int) or not 0 <= idle_ms <= MAX_BIGINT:
        raise InvalidInputError(f"idle_ms must be a non-negative int below 2**63, not {idle_ms!r}")
    return idle_ms


def check_max_event_bytes(limit: object) -> int:
    """Validate a store's ``max_event_bytes``: an ``int`` from 1 to
    :data:`MAX_EVENT_BYTES_LIMIT`."""
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_EVENT_BYTES_LIMIT
    ):
        raise InvalidInputError(
            f"max_event_bytes must be an int from 1 to {MAX_EVENT_BYTES_LIMIT} "
            f"(256 MiB), not {limit!r}"
        )
    return limit


def check_cap_stream(session_id: object, stream_id: object) -> tuple[str, str] | None:
    """The stream whose own cap ``set_max_events_per_stream`` sets, or ``None`` for the
    store-wide cap; one of the two ids without the other is refused."""
    if session_id is None and stream_id is None:
        return None
    if session_id is None or stream_id is None:
        raise InvalidInputError(
            "a stream's cap needs both session_id and stream_id (neither sets the store-wide cap)"
        )
    return check_id("session_id", session_id), check_id("stream_id", stream_id)


def check_cap(cap: object) -> int | None:
    """Validate a retention cap: ``None`` (unlimited) or an ``int`` of at least 1."""
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_CAP:
        raise InvalidInputError(
            f"max_events_per_stream must be None or an int from 1 to {MAX_CAP}, not {cap!r}"
        )
    return cap
