"""What an import reads: validated events and rejected input, and the rules between them.

A source line or row becomes a :class:`SourceEvent` only if the target store would accept
it (ids, JSON data, size); anything else becomes a :class:`Reject` naming its position and
the reason, so one bad line never stops an import.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from eventstore.codec import check_id, decode_data, encode_data, too_many_digits
from eventstore.errors import EventStoreError


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event read from a source and validated, not yet stored.

    ``position`` is the 1-based line number of a file, or the legacy row's ``id`` for a
    database. ``stream_id`` is ``None`` for legacy input (it goes to the import's stream),
    ``seq`` is ``None`` unless the source is in the new format. ``text`` is ``data`` as
    the store encodes it.
    """

    position: int
    session_id: str
    stream_id: str | None
    seq: int | None
    event_id: str
    timestamp: int
    text: str

    def to_line(self) -> str:
        """The event as one JSON line (for reject reports of events that parsed)."""
        record: dict[str, Any] = {"session_id": self.session_id}
        if self.stream_id is not None:
            record["stream_id"] = self.stream_id
        if self.seq is not None:
            record["seq"] = self.seq
        record.update(id=self.event_id, data=decode_data(self.text), timestamp=self.timestamp)
        return dumps_line(record)


@dataclass(frozen=True, slots=True)
class Reject:
    """Input that was not imported: where it was, why, and the input itself."""

    position: int
    reason: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The reject-file record."""
        return {"line": self.position, "reason": self.reason, "source": self.source}


class _Invalid(Exception):
    """A field failed validation; the message is the reject reason."""


def dumps_line(record: Any) -> str:
    """Compact JSON for one line: UTF-8 text where possible, ASCII escapes otherwise.

    A lone surrogate cannot be written as UTF-8; only values holding one fall back to
    ``\\u`` escapes, which still decode to the same value.
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text


def parse_line(position: int, raw: bytes, max_event_bytes: int) -> SourceEvent | Reject | None:
    """Parse one line of a dump (legacy or new format); ``None`` for a blank line.

    Legacy lines hold ``session_id``, ``id``, ``data`` and ``timestamp``; lines written
    by ``eventstore export`` add ``stream_id`` and ``seq``.
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(position, f"not UTF-8 text: {exc}", raw.decode("utf-8", "replace"))
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Reject(position, f"not JSON: {exc}", line)
    except ValueError as exc:
        return Reject(position, f"the line {_unreadable(exc)}", line)
    except RecursionError:
        return Reject(position, "not JSON: nested too deeply", line)
    if not isinstance(record, dict):
        return Reject(position, f"not a JSON object but {type(record).__name__}", line)
    try:
        if "data" not in record:
            raise _Invalid("missing field 'data'")
        return SourceEvent(
            position=position,
            session_id=_id(record, "session_id"),
            stream_id=None if record.get("stream_id") is None else _id(record, "stream_id"),
            seq=_seq(record.get("seq")),
            event_id=_id(record, "id"),
            timestamp=_timestamp(record.get("timestamp")),
            text=encode_data(record["data"], max_event_bytes),
        )
    except (_Invalid, EventStoreError) as exc:
        return Reject(position, str(exc), line)


def parse_row(
    position: int,
    values: dict[str, Any],
    max_event_bytes: int,
) -> SourceEvent | Reject:
    """Validate one row of an ``events`` table: legacy (no ``stream_id``) or current.

    Text columns may come as bytes (an SQLite source reads them so, a PostgreSQL
    ``bytea`` column is so): they must be UTF-8, or the row is rejected.
    """
    try:
        values = _decoded(values)
    except _Invalid as exc:
        return Reject(position, str(exc), dumps_line(readable(values)))
    try:
        if values.get("data") is None:
            raise _Invalid("missing field 'data'")
        try:
            data = json.loads(values["data"])
        except (json.JSONDecodeError, TypeError) as exc:
            raise _Invalid(f"data is not JSON: {exc}") from None
        except ValueError as exc:
            raise _Invalid(f"data {_unreadable(exc)}") from None
        return SourceEvent(
            position=position,
            session_id=_id(values, "session_id"),
            stream_id=None if values.get("stream_id") is None else _id(values, "stream_id"),
            seq=_seq(values.get("seq")),
            event_id=_id(values, "event_id"),
            timestamp=_timestamp(values.get("timestamp")),
            text=encode_data(data, max_event_bytes),
        )
    except (_Invalid, EventStoreError) as exc:
        return Reject(position, str(exc), dumps_line(values))


def _unreadable(exc: ValueError) -> str:
    """The reason for valid JSON that ``json.loads`` still refuses."""
    if (digits := too_many_digits(exc)) is not None:
        return f"holds {digits}, which Python will not read"
    return f"is not readable JSON: {exc}"


def _decoded(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every bytes value decoded as UTF-8; raises :class:`_Invalid`
    naming the first column that is not UTF-8."""
    decoded = dict(values)
    for name, value in values.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                decoded[name] = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Invalid(f"{name} is not UTF-8 text: {exc}") from None
    return decoded


def readable(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with bytes decoded leniently (U+FFFD for bad bytes), as a reject's
    ``source`` shows them."""
    return {
        name: bytes(value).decode("utf-8", "replace")
        if isinstance(value, (bytes, bytearray, memoryview))
        else value
        for name, value in values.items()
    }


def _id(record: dict[str, Any], field: str) -> str:
    if record.get(field) is None:
        raise _Invalid(f"missing field {field!r}")
    return check_id(field, record[field])


def _seq(value: object) -> int | None:
    if value is None:
        return None
    # The staging table and the store hold seq in a signed 64-bit column.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise _Invalid(f"seq must be an int from 1 to 2**63-1, not {value!r}")
    return value


def _timestamp(value: object) -> int:
    # Legacy writers computed milliseconds as time.time() * 1000, so floats occur.
    if value is None:
        raise _Invalid("missing field 'timestamp'")
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _Invalid(
            f"timestamp must be epoch milliseconds (a number from 0 to 2**63-1), not {value!r}"
        )
    return value
