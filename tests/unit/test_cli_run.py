"""``eventstore.cli.options.run``: a signal always ends a command as Interrupted."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from eventstore.cli import options


def test_ctrl_c_before_the_commands_handlers_are_installed_is_an_interrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C while the event loop is still being built: the command's own handlers are
    # not in yet. It used to raise KeyboardInterrupt wherever it landed (inside the
    # loop's constructor, an AttributeError from its __del__ at exit), or let asyncio's
    # handler cancel the task (a CancelledError traceback, exit 1). Now it is noted and
    # the command is cancelled as soon as it runs, its cleanup included.
    real_run = asyncio.run
    steps: list[str] = []

    def run_after_ctrl_c(main: Any) -> Any:
        signal.raise_signal(signal.SIGINT)
        return real_run(main)

    async def command() -> None:
        steps.append("started")
        try:
            await asyncio.sleep(5)
        finally:
            steps.append("cleaned up")

    monkeypatch.setattr(options.asyncio, "run", run_after_ctrl_c)
    with pytest.raises(options.Interrupted) as stopped:
        options.run(command())
    assert stopped.value.signum == signal.SIGINT
    assert steps == ["started", "cleaned up"]
