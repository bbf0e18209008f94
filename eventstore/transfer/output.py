"""Writing to a binary stream so that nothing is dropped without an error."""

from __future__ import annotations

import errno
import select
from typing import IO


def write_all(out: IO[bytes], data: bytes) -> None:
    """Write every byte of ``data`` to ``out``, or raise :class:`OSError`.

    A buffered stream writes everything or raises, but a raw one (standard output under
    ``python -u`` / ``PYTHONUNBUFFERED``) returns after a *short write* -- what a disk
    that fills up mid-write gives -- and only the next write raises ``ENOSPC``. So the
    rest is written until it is all out, or until the stream refuses it with an error.
    A raw stream in non-blocking mode returns ``None`` when full: wait until it takes
    more.
    """
    view = memoryview(data)
    while view:
        written = out.write(view)
        if written is None:
            select.select([], [out.fileno()], [])
            continue
        if written <= 0:
            # No error and no progress: looping would never end.
            raise OSError(errno.EIO, "the output accepted no more bytes")
        view = view[written:]
