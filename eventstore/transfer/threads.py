"""Blocking work in a worker thread that a cancellation cannot leave running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


async def in_thread(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``asyncio.to_thread(func, ...)``, except that a cancellation waits for ``func``.

    A cancelled ``to_thread`` returns at once while its thread goes on: the caller's
    cleanup (closing the staging database or the generator the thread is inside of)
    would then run under it -- a segfault for SQLite, ``generator already executing``
    for a generator. Here the cancellation is held until ``func`` returns, then raised.
    """
    call = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        while not call.done():
            try:
                await asyncio.wait({call})
            except asyncio.CancelledError:
                continue
        if not call.cancelled():
            call.exception()  # retrieved: the cancellation is what the caller gets
        raise
