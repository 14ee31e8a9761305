"""What a target answered, and how it is written to the ASGI ``send`` callable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wayport.errors import GatewayError

if TYPE_CHECKING:
    from wayport.gateway.streaming import PushRelay

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = (b"content-type", b"application/json")
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
GATEWAY_EXCEPTION = (b"x-portkey-gateway-exception", b"true")

# Upstream response headers that describe the upstream connection, not the answer.
DROPPED_UPSTREAM_HEADERS = frozenset(
    {
        b"content-length",
        b"content-encoding",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"date",
        b"server",
        b"set-cookie",
        b"alt-svc",
        b"content-type",
        b"cache-control",
    }
)


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    gateway_exception: bool = False
    # already in the client's own format (an ingress request that went to its native provider)
    native: bool = False
    # relays ``stream`` past the ASGI send when the client's connection allows (streaming.PushRelay)
    relay: PushRelay | None = None

    @classmethod
    def from_error(cls, exc: GatewayError) -> Reply:
        return cls(exc.status, [JSON, *exc.headers], exc.body(), gateway_exception=exc.stops_fallback)

    async def discard(self) -> None:
        """Release the upstream connection of a reply that will not be sent."""
        stream = self.stream
        if stream is not None and hasattr(stream, "aclose"):
            await stream.aclose()
        if self.relay is not None:
            # a generator closed before its first step never runs its ``finally``: the answer
            # behind it is closed here (a no-op when the relay or the generator released it)
            self.relay.response.close()


def upstream_headers(raw: Any) -> list[tuple[bytes, bytes]]:
    """Provider headers worth passing on (rate limits, request ids), lower-cased."""
    out = []
    for name, value in raw:
        lowered = name.lower()
        if lowered not in DROPPED_UPSTREAM_HEADERS:
            out.append((lowered, value))
    return out


async def send_body(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
