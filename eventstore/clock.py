"""Wall-clock time as the store records it."""

import time

# The last value handed out: events stored within the same millisecond share one int
# object instead of 32 bytes each (the in-memory store keeps one per event).
_last = 0


def now_ms() -> int:
    """Milliseconds since the epoch."""
    global _last
    now = time.time_ns() // 1_000_000
    if now != _last:
        _last = now
    return _last
