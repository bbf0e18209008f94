"""Progress of a long transfer: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressSink(Protocol):
    """Receives a transfer's progress: phases, each with a count that advances."""

    def start(self, phase: str, total: int | None, unit: str = "events") -> None:
        """A new phase begins: ``total`` ``unit`` to do (``None``: unknown, or uncounted)."""

    def advance(self, count: int) -> None:
        """``count`` more items of the current phase are done."""

    def finish(self) -> None:
        """The transfer is over (also after a failure): release the display."""


class NoProgress:
    """Reports nothing."""

    def start(self, phase: str, total: int | None, unit: str = "events") -> None:
        """Ignore the phase."""

    def advance(self, count: int) -> None:
        """Ignore the count."""

    def finish(self) -> None:
        """Nothing to release."""


class RichProgress:
    """A live progress bar with counts, rate and time left, for a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream),
        )
        self._task: TaskID | None = None
        self._started = 0.0
        self._progress.start()

    def start(self, phase: str, total: int | None, unit: str = "events") -> None:
        """Close the previous phase's bar and open one for ``phase``."""
        self._close_phase()
        self._task = self._progress.add_task(phase, total=total, rate="", unit=unit)
        self._started = time.monotonic()

    def advance(self, count: int) -> None:
        """Move the bar and refresh the events-per-second figure."""
        if self._task is None:
            return
        self._progress.advance(self._task, count)
        completed = self._progress.tasks[-1].completed
        elapsed = time.monotonic() - self._started
        if elapsed > 0:
            unit = self._progress.tasks[-1].fields["unit"]
            self._progress.update(self._task, rate=f"{completed / elapsed:,.0f} {unit}/s")

    def finish(self) -> None:
        """Stop the live display, leaving the final bars on screen."""
        self._close_phase()
        self._progress.stop()

    def _close_phase(self) -> None:
        # A phase without a known total would keep pulsing; show it as complete.
        if self._task is not None:
            done = self._progress.tasks[-1].completed
            self._progress.update(self._task, total=done, completed=done)
            self._progress.stop_task(self._task)
            self._task = None


class LogProgress:
    """A plain line every ``interval`` seconds and at the end of each phase (logs, CI)."""

    def __init__(self, emit: Callable[[str], None], interval: float = 10.0) -> None:
        self._emit = emit
        self._interval = interval
        self._phase = ""
        self._unit = "events"
        self._total: int | None = None
        self._done = 0
        self._started = 0.0
        self._last = 0.0

    def start(self, phase: str, total: int | None, unit: str = "events") -> None:
        """Close the previous phase with a final line; start counting the new one."""
        self._close_phase()
        self._phase, self._total, self._unit, self._done = phase, total, unit, 0
        self._started = self._last = time.monotonic()

    def advance(self, count: int) -> None:
        """Count, and print a line when ``interval`` has passed since the last."""
        if not count:
            return
        self._done += count
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._line(now)

    def finish(self) -> None:
        """Print the last phase's final line."""
        self._close_phase()

    def _close_phase(self) -> None:
        if self._phase:
            self._line(time.monotonic())
            self._phase = ""

    def _line(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        if self._total is None and not self._done:
            self._emit(f"{self._phase}: {elapsed:,.1f}s")
            return
        of = f"/{self._total:,}" if self._total is not None else ""
        self._emit(
            f"{self._phase}: {self._done:,}{of} {self._unit},"
            f" {self._done / elapsed:,.0f} {self._unit}/s, {elapsed:,.1f}s"
        )
