"""The gate of eventstore.mcp.reattach on a real SDK transport, step by step.

The end-to-end tests (test_live_resume.py) show that no message is lost; these pin down
when a held stream is let go: the SDK attaching it, the replay's connection ending first,
the timeout (which then closes the half-attached stream so the client resumes again).
"""

from __future__ import annotations

import asyncio

import anyio
from mcp.server.streamable_http import StreamableHTTPServerTransport

from eventstore.mcp.reattach import StreamAttachments


def watched(timeout: float = 5.0) -> tuple[StreamableHTTPServerTransport, StreamAttachments]:
    transport = StreamableHTTPServerTransport(mcp_session_id="s")
    attachments = StreamAttachments.watch(transport, timeout=timeout)
    assert attachments is not None
    return transport, attachments


async def held(attachments: StreamAttachments, stream_id: str) -> asyncio.Task[None]:
    waiter = asyncio.create_task(attachments.wait(stream_id))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    return waiter


async def test_the_gate_holds_until_the_sdk_attaches_the_stream() -> None:
    transport, attachments = watched()
    assert attachments.close("1")
    assert not attachments.close("1")  # one hand-over per stream at a time
    waiter = await held(attachments, "1")
    await attachments.wait("2")  # other streams pass
    assert attachments.hand_over("1")
    writer, reader = anyio.create_memory_object_stream[object](0)
    transport._sse_stream_writers["1"] = writer
    await asyncio.sleep(0.01)
    assert not waiter.done()  # registering the writer is not attaching
    transport._request_streams["1"] = anyio.create_memory_object_stream[object](16)
    await asyncio.wait_for(waiter, 1)
    assert attachments.attached("1")
    writer.close()
    reader.close()


async def test_the_gate_opens_when_the_replay_connection_ends_first() -> None:
    transport, attachments = watched()
    attachments.close("1")
    assert attachments.hand_over("1")
    waiter = await held(attachments, "1")
    writer, reader = anyio.create_memory_object_stream[object](0)
    transport._sse_stream_writers["1"] = writer
    # The client went away while the SDK sent the priming event.
    transport._sse_stream_writers.pop("1", None)
    await asyncio.wait_for(waiter, 1)
    assert not attachments.attached("1")
    reader.close()


async def test_on_timeout_a_half_attached_stream_is_closed_so_the_client_resumes() -> None:
    transport, attachments = watched(timeout=0.1)
    attachments.close("1")
    assert attachments.hand_over("1")
    writer, reader = anyio.create_memory_object_stream[object](0)
    transport._sse_stream_writers["1"] = writer
    waiter = await held(attachments, "1")
    await asyncio.wait_for(waiter, 2)
    assert "1" not in transport._sse_stream_writers
    # The SDK's replay sender finds its stream closed and ends the response.
    assert writer._closed
    reader.close()


async def test_a_timeout_while_catching_up_makes_the_replay_give_the_stream_up() -> None:
    _, attachments = watched(timeout=0.05)
    attachments.close("1")
    waiter = await held(attachments, "1")
    await asyncio.wait_for(waiter, 1)
    assert not attachments.hand_over("1")


async def test_an_already_attached_stream_is_let_go_at_hand_over() -> None:
    transport, attachments = watched()
    attachments.close("1")
    waiter = await held(attachments, "1")
    transport._request_streams["1"] = anyio.create_memory_object_stream[object](16)
    assert attachments.hand_over("1")
    await asyncio.wait_for(waiter, 1)


async def test_terminating_the_transport_opens_every_gate() -> None:
    transport, attachments = watched()
    attachments.close("1")
    attachments.close("_GET_stream")
    waiters = [await held(attachments, "1"), await held(attachments, "_GET_stream")]
    await transport.terminate()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)


def test_a_transport_without_the_registries_is_not_watched() -> None:
    transport = StreamableHTTPServerTransport(mcp_session_id="s")
    transport._request_streams = {}
    del transport._sse_stream_writers
    assert StreamAttachments.watch(transport) is None
