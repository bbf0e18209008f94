"""Closing the SDK's replay→live window: hold a stream's live messages while it re-attaches.

After ``replay_events_after`` returns stream ``X``, the SDK's transport stores a new
priming event for ``X``, sends it, and only then registers ``X`` in its private
``_request_streams`` so that its message router delivers ``X``'s messages live. A message
the router stores for ``X`` before that registration is neither sent (no stream yet) nor
replayed later (the client's cursor, the new priming event, lies after it): lost.

:class:`StreamAttachments` watches one transport's two stream registries and keeps, per
stream, a *gate*. While a replay catches up, the adapter closes ``X``'s gate: the router's
next ``store_event(X, message)`` waits (the priming event, ``message is None``, passes).
The gate opens when the SDK registers ``X`` (the router then stores the message after
the priming event and delivers it live), when the SDK drops the replay's SSE writer
(the client went away: the message is stored and replayable), or after
:data:`REATTACH_TIMEOUT_SECONDS`. On that timeout the half-attached SSE stream is closed,
so the client resumes again from the last event it got instead of skipping anything.

Only the resuming session's router waits, and only between the adapter's final
catch-up read and the SDK's registration (normally well under a millisecond).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from mcp.server.streamable_http import StreamableHTTPServerTransport

log = logging.getLogger(__name__)
_warned_unwatchable = False

#: Longest a stream's live messages wait for the SDK to re-attach it after a replay.
REATTACH_TIMEOUT_SECONDS = 2.0


class _Gate:
    __slots__ = ("armed", "opened", "timer", "writer")

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        #: Set once the replay returned the stream: the SDK is attaching it now.
        self.armed = False
        #: The SSE writer the SDK registered for this replay (once armed).
        self.writer: object | None = None
        self.timer: asyncio.TimerHandle | None = None


class _Signalling(dict[Any, Any]):
    """A dict that reports stores and removals: the transport's private registries."""

    def __init__(
        self,
        items: Iterable[tuple[Any, Any]],
        on_set: Callable[[Any, Any], None],
        on_remove: Callable[[Any, Any], None],
        on_clear: Callable[[], None],
    ) -> None:
        super().__init__(items)
        self._on_set = on_set
        self._on_remove = on_remove
        self._on_clear = on_clear

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._on_set(key, value)

    def __delitem__(self, key: Any) -> None:
        value = super().__getitem__(key)
        super().__delitem__(key)
        self._on_remove(key, value)

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        if key not in self:
            if default is _Signalling._MISSING:
                raise KeyError(key)
            return default
        value = super().pop(key)
        self._on_remove(key, value)
        return value

    def clear(self) -> None:
        super().clear()
        self._on_clear()


class StreamAttachments:
    """Knows which of one transport's streams are attached, and gates their live messages.

    Build it with :meth:`watch`. It relies on the transport's private ``_request_streams``
    and ``_sse_stream_writers`` dicts (mcp 1.30.0 and 2.3.0 alike); :meth:`watch` returns
    ``None`` for a transport without them, and the adapter then does not gate.
    """

    def __init__(
        self, transport: StreamableHTTPServerTransport, *, timeout: float = REATTACH_TIMEOUT_SECONDS
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._gates: dict[str, _Gate] = {}
        transport._request_streams = _Signalling(
            transport._request_streams.items(),
            self._stream_registered,
            _ignore,
            self.open_all,
        )
        transport._sse_stream_writers = _Signalling(
            transport._sse_stream_writers.items(),
            self._writer_registered,
            self._writer_removed,
            self.open_all,
        )

    @classmethod
    def watch(
        cls, transport: StreamableHTTPServerTransport, *, timeout: float = REATTACH_TIMEOUT_SECONDS
    ) -> StreamAttachments | None:
        """Watch ``transport``; ``None`` if this SDK's transport lacks the registries."""
        registries = (
            getattr(transport, "_request_streams", None),
            getattr(transport, "_sse_stream_writers", None),
        )
        if not all(type(registry) is dict for registry in registries):
            global _warned_unwatchable
            if _warned_unwatchable:
                return None
            _warned_unwatchable = True
            log.warning(
                "this mcp version's transport has no stream registries to watch; a message "
                "sent while a stream is being resumed may be missed by that client"
            )
            return None
        return cls(transport, timeout=timeout)

    def attached(self, stream_id: str) -> bool:
        """Whether the SDK currently delivers ``stream_id``'s messages live."""
        return stream_id in self._transport._request_streams

    def close(self, stream_id: str) -> bool:
        """Make the router's messages for ``stream_id`` wait; ``False`` if already held."""
        if stream_id in self._gates:
            return False
        gate = self._gates[stream_id] = _Gate()
        gate.timer = asyncio.get_running_loop().call_later(
            self._timeout, self._expire, stream_id, gate
        )
        return True

    def hand_over(self, stream_id: str) -> bool:
        """The replay is about to return ``stream_id``: keep holding until it is attached.

        Call it right before returning (no ``await`` in between: the SDK checks its
        registry in the same step). Returns ``False`` if the gate was opened meanwhile (the
        timeout, the transport shutting down): the caller must then not return the stream,
        and the client resumes again from the last event it received.
        """
        gate = self._gates.get(stream_id)
        if gate is None:
            return False
        if self.attached(stream_id):
            # Attached meanwhile by another connection; the SDK will not re-attach.
            self._open(stream_id, gate)
        else:
            gate.armed = True
        return True

    def open(self, stream_id: str) -> None:
        """Let the router's messages for ``stream_id`` through."""
        gate = self._gates.get(stream_id)
        if gate is not None:
            self._open(stream_id, gate)

    def open_all(self) -> None:
        """Open every gate (the transport is shutting its streams)."""
        for stream_id, gate in list(self._gates.items()):
            self._open(stream_id, gate)

    async def wait(self, stream_id: str) -> None:
        """Wait while ``stream_id``'s gate is closed."""
        while (gate := self._gates.get(stream_id)) is not None:
            await gate.opened.wait()

    def _open(self, stream_id: str, gate: _Gate) -> None:
        if self._gates.get(stream_id) is gate:
            del self._gates[stream_id]
        if gate.timer is not None:
            gate.timer.cancel()
        gate.opened.set()

    def _stream_registered(self, stream_id: Any, _value: Any) -> None:
        gate = self._gates.get(stream_id)
        if gate is not None and gate.armed:
            self._open(stream_id, gate)

    def _writer_registered(self, stream_id: Any, writer: Any) -> None:
        gate = self._gates.get(stream_id)
        if gate is not None and gate.armed and gate.writer is None:
            gate.writer = writer

    def _writer_removed(self, stream_id: Any, writer: Any) -> None:
        gate = self._gates.get(stream_id)
        if gate is not None and gate.armed and writer is gate.writer:
            # The replay's connection ended before the stream was attached.
            self._open(stream_id, gate)

    def _expire(self, stream_id: str, gate: _Gate) -> None:
        if self._gates.get(stream_id) is not gate:
            return
        if not gate.armed:
            # Still catching up: hand_over() sees the gate gone and the replay ends the
            # stream instead of returning it.
            self._open(stream_id, gate)
            return
        log.info(
            "session %s: stream %r was not re-attached within %ss after a replay; "
            "closing it so that the client resumes again",
            self._transport.mcp_session_id,
            stream_id,
            self._timeout,
        )
        writer = self._transport._sse_stream_writers.get(stream_id)
        self._open(stream_id, gate)
        if writer is not None and writer is gate.writer:
            self._transport.close_sse_stream(stream_id)


def _ignore(_key: Any, _value: Any) -> None:
    pass
