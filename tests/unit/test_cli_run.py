"""``eventstore.cli.options.run``: a signal always ends a command as Interrupted."""

from __future__ import annotations

import asyncio
import signal

import pytest

from eventstore.cli import options


async def _cancelled_again_on_its_way_out() -> None:
    try:
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        # Cleanup cancelled once more: asyncio.run then raises CancelledError, not
        # KeyboardInterrupt.
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)


def test_ctrl_c_before_the_commands_handlers_are_installed_is_an_interrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As when Ctrl-C lands after asyncio.run started and before run() installs its own
    # handlers: asyncio's SIGINT handler cancels the main task (a command exited 1 with a
    # CancelledError traceback, about 1 run in 50 of the import's Ctrl-C test).
    monkeypatch.setattr(options, "STOP_SIGNALS", ())
    with pytest.raises(options.Interrupted) as stopped:
        options.run(_cancelled_again_on_its_way_out())
    assert stopped.value.signum == signal.SIGINT
