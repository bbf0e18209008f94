"""Event ids of the MCP adapter: opaque, bounded, unique in the session, naming their stream.

An id reads ``<nonce>.<counter>.<stream key>``:

* ``nonce`` -- 11 random URL-safe characters drawn once per session adapter, so ids of two
  sessions never coincide (a cursor copied from another session names no event here);
* ``counter`` -- 1, 2, 3, ... per adapter: unique within the session;
* ``stream key`` -- the SDK's stream id when it is short and plain (``"1"``,
  ``"_GET_stream"``, a UUID), else ``~`` and a 128-bit hash of it. The SDK's replay hands
  the store nothing but the ``Last-Event-ID``, so the id itself must say which stream to
  read; the hash keeps ids short however long a client's JSON-RPC request ids are.

Clients must treat ids as opaque; only this module parses them.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets

_PLAIN_STREAM = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EVENT_ID = re.compile(
    r"(?P<nonce>[A-Za-z0-9_-]{11})\.(?P<counter>[1-9][0-9]{0,19})"
    r"\.(?P<stream>[A-Za-z0-9_-]{1,64}|~[A-Za-z0-9_-]{22})"
)

#: Longest id this module mints (and longest ``Last-Event-ID`` it will parse).
MAX_EVENT_ID_LENGTH = 11 + 1 + 20 + 1 + 64


def stream_key(stream_id: str) -> str:
    """The key a stream is stored under, as it appears in its events' ids.

    Plain ids (letters, digits, ``_``, ``-``; at most 64) are their own key; anything else
    (long, empty, dots, non-ASCII, lone surrogates) becomes ``~`` plus a URL-safe hash,
    which no plain id can look like.
    """
    if _PLAIN_STREAM.fullmatch(stream_id):
        return stream_id
    digest = hashlib.blake2b(stream_id.encode("utf-8", "surrogatepass"), digest_size=16)
    return "~" + base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def is_hashed(key: str) -> bool:
    """Whether ``key`` is a hash (the stream id cannot be read back from it)."""
    return key.startswith("~")


def stream_key_of(event_id: str) -> str | None:
    """The stream key inside an id minted by :class:`EventIds`; ``None`` if it is not one."""
    parsed = parse_event_id(event_id)
    return None if parsed is None else parsed[2]


def parse_event_id(event_id: str) -> tuple[str, int, str] | None:
    """``(nonce, counter, stream key)`` of an id shaped like ours; ``None`` if it is not."""
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        return None
    match = _EVENT_ID.fullmatch(event_id)
    if match is None:
        return None
    return match["nonce"], int(match["counter"]), match["stream"]


class EventIds:
    """Mints the event ids of one session."""

    def __init__(self) -> None:
        self.nonce = secrets.token_urlsafe(8)
        self._counter = itertools.count(1)

    def mint(self, key: str) -> str:
        """A new id for an event of the stream stored under ``key``."""
        return self.mint_numbered(key)[1]

    def mint_numbered(self, key: str) -> tuple[int, str]:
        """A new id for an event of ``key``, and its counter."""
        counter = next(self._counter)
        return counter, f"{self.nonce}.{counter}.{key}"
