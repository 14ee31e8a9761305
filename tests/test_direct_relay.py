"""DirectRelay: a stream relayed from inside the provider connection's callback, handing over to
relay_stream when the client reads slowly, and always ending the way relay_stream ends a stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.test_http1 import client, serving
from wayport.gateway.http1 import HTTPClient, Response
from wayport.gateway.streaming import DirectRelay, UsageTap, relay_stream

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
DONE = b"data: [DONE]\n\n"


def event(n: int) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": f"w{n}"}}]}) + b"\n\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


class Client:
    """An ASGI ``send`` that records bodies, whether each was sent inside a task, and can make a
    chosen write wait (as uvicorn's does while the client's socket is full)."""

    def __init__(self, slow_write: int | None = None) -> None:
        self.bodies: list[bytes] = []
        self.in_task: list[bool] = []
        self.slow_write = slow_write
        self.drained = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if len(self.bodies) == self.slow_write:
            await self.drained.wait()
        self.in_task.append(asyncio.current_task() is not None)
        self.bodies.append(message["body"])


def direct(response: Response, stall_s: float | None = 5.0, strip: bool = False) -> DirectRelay:
    tap = UsageTap(strip=strip)
    return DirectRelay(
        response, tap, stall_s, relay_stream(response, None, sse=True, stall_s=stall_s, tap=tap)
    )


async def relay(
    response: Response, peer: Client, stall_s: float | None = 5.0, strip: bool = False
) -> tuple[bytes, UsageTap]:
    """What the gateway's _respond does: push, then send what push hands back."""
    relay = direct(response, stall_s, strip)
    rest: AsyncIterator[bytes] = await relay.push(peer.send, lambda: False, lambda chunk: None)
    async for piece in rest:
        await peer.send({"type": "http.response.body", "body": piece, "more_body": True})
    return b"".join(peer.bodies), relay.tap


async def stream_from(script: list[bytes | asyncio.Event | float]) -> Any:
    """An upstream that writes the head, then each item: bytes as they are, an Event waited for,
    a float slept; then the final chunk unless the script ends in b"CUT"."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD)
        for item in script:
            if isinstance(item, asyncio.Event):
                await item.wait()
            elif isinstance(item, float):
                await asyncio.sleep(item)
            elif item == b"CUT":
                await writer.drain()
                return
            else:
                writer.write(chunk(item))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    return serving(handler)


async def open_stream(http: HTTPClient, url: str) -> Response:
    return await http.request("POST", url, {}, b"{}")


async def test_chunks_are_sent_from_the_connection_callback_as_they_arrive() -> None:
    later = asyncio.Event()
    async with await stream_from([event(1), later, event(2), DONE]) as server:
        http = client()
        response = await open_stream(http, server.url)
        peer = Client()
        relaying = asyncio.create_task(relay(response, peer))
        for _ in range(100):
            if len(peer.bodies) == 1:
                break
            await asyncio.sleep(0.01)
        assert peer.bodies == [event(1)] and not relaying.done()
        later.set()
        out, _ = await relaying
        assert out == event(1) + event(2) + DONE
        # the first event came with the head and was sent as the relay began; the others were
        # sent where they arrived, without a task waking up to write them
        assert peer.in_task[0] and len(peer.in_task) > 1 and not any(peer.in_task[1:])
        await http.close()


async def test_a_slow_client_hands_the_rest_to_the_task_in_order() -> None:
    events = [event(n) for n in range(30)]
    async with await stream_from([*events[:10], 0.05, *events[10:], DONE]) as server:
        http = client()
        response = await open_stream(http, server.url)
        peer = Client(slow_write=3)  # the fourth write waits for the client
        relaying = asyncio.create_task(relay(response, peer))
        await asyncio.sleep(0.2)  # the provider sends everything meanwhile
        assert len(peer.bodies) == 3
        peer.drained.set()
        out, _ = await relaying
        assert out == b"".join(events) + DONE
        assert peer.in_task[3:] and all(peer.in_task[3:])  # the task wrote the rest
        await http.close()


async def test_usage_is_read_and_stripped_as_it_passes() -> None:
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
    async with await stream_from([event(1), usage + DONE]) as server:
        http = client()
        out, tap = await relay(await open_stream(http, server.url), Client(), strip=True)
        assert out == event(1) + DONE
        assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        await http.close()


async def test_a_stalled_provider_ends_the_stream_after_the_stall_time_once() -> None:
    async with await stream_from([event(1), 5.0]) as server:
        http = client()
        started = time.monotonic()
        out, _ = await relay(await open_stream(http, server.url), Client(), stall_s=0.3)
        elapsed = time.monotonic() - started
        assert out.startswith(event(1)) and out.endswith(DONE)
        assert b"sent nothing for 0.3 s mid-stream" in out
        assert 0.3 <= elapsed < 0.55  # the stall time counts once, not again after the hand-over
        await http.close()


async def test_a_provider_that_cuts_the_stream_gets_an_error_event() -> None:
    async with await stream_from([event(1), b"CUT"]) as server:
        http = client()
        out, _ = await relay(await open_stream(http, server.url), Client())
        assert out.startswith(event(1)) and out.endswith(DONE)
        assert b"broke mid-stream" in out or b"closed the stream before it was complete" in out
        await http.close()


async def test_a_failing_send_reaches_the_task_and_closes_the_connection() -> None:
    later = asyncio.Event()
    async with await stream_from([event(1), later, event(2), DONE]) as server:
        http = client()
        response = await open_stream(http, server.url)

        async def broken(message: dict[str, Any]) -> None:
            raise RuntimeError("client transport gone")

        with pytest.raises(RuntimeError, match="client transport gone"):
            await direct(response).push(broken, lambda: False, lambda chunk: None)
        assert response._conn.closed
        later.set()
        await http.close()


async def test_a_client_that_left_stops_the_relay() -> None:
    later = asyncio.Event()
    async with await stream_from([event(1), later, event(2), DONE]) as server:
        http = client()
        response = await open_stream(http, server.url)
        peer = Client()
        gone = False
        pushing = asyncio.create_task(direct(response).push(peer.send, lambda: gone, lambda chunk: None))
        await asyncio.sleep(0.1)
        gone = True
        later.set()
        rest = await pushing  # the next chunk found the client gone: nothing more was sent
        assert peer.bodies == [event(1)]
        await rest.aclose()  # the caller closes what is left (and with it the connection)
        assert response._conn.closed
        await http.close()
