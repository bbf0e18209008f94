"""Running an ASGI app for real: uvicorn on 127.0.0.1, a free port, in this event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

# How long shutdown waits for open SSE streams before cancelling them.
_GRACEFUL_SHUTDOWN_SECONDS = 1
_STARTUP_TIMEOUT_SECONDS = 30.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host program (the CLI, pytest) keeps its own Ctrl+C handling.
        yield


@contextlib.asynccontextmanager
async def serve_on_loopback(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on ``127.0.0.1`` at a free port; yield its base URL.

    The app's lifespan runs (startup before the URL is yielded, shutdown on exit).
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if task.done():
                raise RuntimeError(f"uvicorn did not start: {task.exception()!r}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("uvicorn did not start within 30 seconds")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await _wait_for_shutdown(task)


async def _wait_for_shutdown(task: asyncio.Task[None]) -> None:
    """Wait for uvicorn's graceful shutdown, also when the caller is being cancelled.

    Cancelling uvicorn's task instead would cut its lifespan short (the app's sessions
    and store would not be closed) and make it log the cancellation as an error. The
    caller's cancellation is re-raised once the server is down.
    """
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if cancelled:
        raise asyncio.CancelledError
