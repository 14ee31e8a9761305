"""The minimal relays bench/floor.py measures: what any Python gateway pays before its own work.

    .venv/bin/python bench/floor_relays.py tcp|aiohttp|http1 --port 18500 --upstream http://127.0.0.1:18181/v1

bench/run.py measures one like a gateway (CPU per request, first byte, memory):

    .venv/bin/python bench/run.py --gateway-name floor-http1 \
        --gateway-cmd ".venv/bin/python bench/floor_relays.py http1 --port {port} --upstream {mock_url}"

- ``tcp``: an asyncio protocol forwarding bytes both ways; no HTTP parsing at all.
- ``aiohttp``: uvicorn (uvloop, httptools) with an ASGI app that sends each request to the
  upstream's chat completions with aiohttp's client and relays the answer (status, content type, chunks)
  (``GET /health`` answers 200 itself).
- ``http1``: the same app on Wayport's own client (wayport.gateway.http1).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import uvicorn
import uvloop

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Forward(asyncio.Protocol):
    """One side of the TCP relay: what it receives goes out on ``peer``."""

    def __init__(self, peer: asyncio.Transport | None = None) -> None:
        self.peer = peer
        self.pending: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.pending.append(data)
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


async def tcp_relay(port: int, upstream: str) -> None:
    target = urlsplit(upstream)
    loop = asyncio.get_running_loop()

    async def attach(client: Forward) -> None:
        assert client.transport is not None
        transport, _ = await loop.create_connection(
            lambda: Forward(client.transport), target.hostname, target.port
        )
        client.peer = transport  # type: ignore[assignment]
        for data in client.pending:
            transport.write(data)

    def accept() -> Forward:
        client = Forward()
        loop.call_soon(lambda: asyncio.ensure_future(attach(client)))
        return client

    server = await loop.create_server(accept, "127.0.0.1", port)
    await server.serve_forever()


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def health(scope: Message, send: Send) -> bool:
    if scope["path"] != "/health":
        return False
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
    return True


async def lifespan(receive: Receive, send: Send, start: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            start()
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


def aiohttp_app(url: str) -> Any:
    import aiohttp

    session: list[aiohttp.ClientSession] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, lambda: session.append(aiohttp.ClientSession()))
            return
        if await health(scope, send):
            return
        body = await read_body(receive)
        response = await session[0].post(url, data=body, headers={"content-type": "application/json"})
        start = [(b"content-type", response.headers.get("content-type", "").encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": start})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        response.release()

    return app


def http1_app(url: str) -> Any:
    from wayport.gateway.http1 import HTTPClient

    client: list[HTTPClient] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, lambda: client.append(HTTPClient(limit=100, connect_timeout_s=5)))
            return
        if await health(scope, send):
            return
        body = await read_body(receive)
        response = await client[0].request("POST", url, {"content-type": "application/json"}, body)
        start = [(b"content-type", response.headers.get("content-type", "").encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": start})
        while chunk := await response.next_chunk():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        response.release()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("relay", choices=["tcp", "aiohttp", "http1"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--upstream", required=True, help="the mock's base URL, e.g. http://127.0.0.1:18181/v1"
    )
    args = parser.parse_args()
    if args.relay == "tcp":
        uvloop.run(tcp_relay(args.port, args.upstream))
        return
    url = args.upstream.rstrip("/") + "/chat/completions"
    app = aiohttp_app(url) if args.relay == "aiohttp" else http1_app(url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning")


if __name__ == "__main__":
    main()
