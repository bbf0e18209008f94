"""The reject file: every line an import did not take, with its line number and reason."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from eventstore.transfer.records import Reject, dumps_line


class RejectFile:
    """Appends rejects as JSON lines ``{"line": N, "reason": "...", "source": "..."}``.

    The file is created (or truncated) at the first reject. Every run of an import
    reports all of its rejects again, so a file left by an earlier run is stale: a run
    without rejects removes it on :meth:`close`. For a database source, ``line`` is the
    legacy row's ``id``. Callable, so it can be passed as ``on_reject``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None

    def __call__(self, reject: Reject) -> None:
        """Write one reject."""
        if self._file is None:
            # Line-buffered: what an interrupted import rejected is on disk already.
            self._file = open(self.path, "w", encoding="utf-8", buffering=1)
        self._file.write(dumps_line(reject.to_dict()) + "\n")
        self.count += 1

    def close(self) -> None:
        """Flush and close the file; remove a stale one if nothing was rejected."""
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self.count == 0:
            self.path.unlink(missing_ok=True)
