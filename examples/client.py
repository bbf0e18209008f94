"""Call the example server's ``countdown`` tool with the SDK client and print its progress.

    python examples/client.py http://127.0.0.1:8000/mcp 5

Stop the network mid-call (or restart nothing at all and just watch): the SDK client
reconnects with ``Last-Event-ID`` on its own and the missed steps arrive once each.
"""

import asyncio
import sys

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, start: int) -> None:
    async with streamable_http_client(url) as streams, ClientSession(*streams[:2]) as session:
        await session.initialize()

        async def show(progress: float, total: float | None, message: str | None) -> None:
            print(f"progress {progress:.0f}/{total:.0f}: {message}")

        result = await session.call_tool(
            "countdown", arguments={"start": start}, progress_callback=show
        )
        print("result:", " ".join(getattr(block, "text", "") for block in result.content))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5))
