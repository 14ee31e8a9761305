"""Limits on what a request may bring, and the headers every control-plane answer carries.

- Headers: at most ``MAX_HEADER_BYTES`` in all (431), on every route.
- Bodies: at most ``max_body_bytes`` (413); the data plane checks as it reads, the control plane
  reads the whole body first (its bodies are small) and checks its JSON nesting, which orjson caps
  at 1024 levels (400), so no deeper document reaches FastAPI's or pydantic's recursion.
- CORS stays off: no route answers ``Access-Control-Allow-*``, so browsers on other origins cannot
  read the API. Control-plane answers are never cached nor sniffed.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from wayport.errors import GatewayError
from wayport.gateway.reply import Message, Receive, Send

MAX_HEADER_BYTES = 64 * 1024
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def oversized_headers(headers: Iterable[tuple[bytes, bytes]]) -> GatewayError | None:
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
    if size <= MAX_HEADER_BYTES:
        return None
    return GatewayError(
        f"Request headers are {size} bytes; the limit is {MAX_HEADER_BYTES} bytes", status=431
    )


async def read_body(receive: Receive, limit: int, content_length: int | None) -> bytes:
    """The whole request body; 413 beyond ``limit`` bytes."""
    if content_length is not None and content_length > limit:
        raise GatewayError(f"Request body is {content_length} bytes; the limit is {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError(f"Request body is larger than the limit of {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def check_json_depth(body: bytes) -> None:
    """400 when ``body`` is JSON nested deeper than orjson's 1024 levels (other faults are left to
    the route, whose messages name the field)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise GatewayError("Request body nests deeper than 1024 levels", status=400) from None


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the client sends next (disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def secured(send: Send) -> Send:
    """``send`` with :data:`SECURITY_HEADERS` added to the answer (those a route did not set)."""

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend(item for item in SECURITY_HEADERS if item[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return send_secured
