"""in_thread: a cancelled caller waits for its thread, so cleanup never runs under it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from eventstore.transfer.threads import in_thread


def _blocked(release: threading.Event, finished: list[str], *, fail: bool = False) -> str:
    release.wait(10)
    finished.append("done")
    if fail:
        raise RuntimeError("the work itself failed")
    return "result"


async def test_the_result_comes_back() -> None:
    release = threading.Event()
    release.set()
    assert await in_thread(_blocked, release, []) == "result"


@pytest.mark.parametrize("fail", [False, True], ids=["returns", "raises"])
async def test_a_cancelled_caller_waits_for_the_thread_then_is_cancelled(fail: bool) -> None:
    release, finished = threading.Event(), []
    call = asyncio.create_task(in_thread(_blocked, release, finished, fail=fail))
    await asyncio.sleep(0.05)

    call.cancel()
    await asyncio.sleep(0.1)
    assert not call.done(), "the cancellation did not wait for the thread"
    call.cancel()  # a second cancel is held back too
    await asyncio.sleep(0.05)
    assert not call.done()

    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert finished == ["done"]
