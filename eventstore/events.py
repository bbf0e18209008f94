"""The stored event value and the stream id used when a caller has no streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventstore.errors import InvalidInputError

#: Stream of events written without a stream: non-SSE transports (stdio) and every event
#: of a legacy, pre-stream store. Configurable wherever legacy data is migrated.
DEFAULT_STREAM_ID = "_default"

#: A JSON value: what ``data`` may hold.
JSONValue = Any


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the store holds it.

    ``id`` is the caller's event id (unique within the session), ``seq`` its position in
    the stream (1, 2, 3, ... with no gaps, never reused), ``timestamp`` the time it was
    stored in milliseconds since the epoch. Within a stream, the timestamps of events
    stored "now" never decrease along ``seq``, also under concurrent writers and when
    the clock steps back (such an event then gets its stream's latest time, not the
    clock's); a timestamp given explicitly (an import) is kept as given.
    """

    id: str
    stream_id: str
    data: JSONValue
    timestamp: int
    session_id: str = ""
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` gives back an equal event."""
        return {
            "session_id": self.session_id,
            "stream_id": self.stream_id,
            "seq": self.seq,
            "id": self.id,
            "data": self.data,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoredEvent:
        """Build an event from :meth:`to_dict` output or from a legacy (pre-stream) dict.

        A legacy dict has no ``stream_id`` (it loads into :data:`DEFAULT_STREAM_ID`) and
        no ``seq`` (it loads as 0: "not yet sequenced").
        """
        try:
            return cls(
                id=_text(raw["id"], "id"),
                stream_id=_text(raw.get("stream_id", DEFAULT_STREAM_ID), "stream_id"),
                data=raw.get("data"),
                timestamp=int(raw["timestamp"]),
                session_id=_text(raw.get("session_id", ""), "session_id"),
                seq=int(raw.get("seq", 0)),
            )
        except KeyError as exc:
            raise InvalidInputError(f"event dict lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed event dict: {exc}") from None


def _text(value: Any, field: str) -> str:
    """An id field: a ``str``, or an ``int`` (legacy stores numbered their events)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(f"event dict field {field!r} must be a str, not {value!r}")


_new = object.__new__
_set_id, _set_stream_id, _set_data, _set_timestamp, _set_session_id, _set_seq = (
    StoredEvent.__dict__[name].__set__
    for name in ("id", "stream_id", "data", "timestamp", "session_id", "seq")
)


def make_event(
    id: str, stream_id: str, data: Any, timestamp: int, session_id: str, seq: int
) -> StoredEvent:
    """``StoredEvent(...)`` for values the store already holds, at half the cost.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` once a field;
    a replay builds one event a row, so this fills the slots directly. Nothing is
    checked: only for values read back from a store.
    """
    event = _new(StoredEvent)
    _set_id(event, id)
    _set_stream_id(event, stream_id)
    _set_data(event, data)
    _set_timestamp(event, timestamp)
    _set_session_id(event, session_id)
    _set_seq(event, seq)
    return event
