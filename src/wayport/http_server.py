"""How uvicorn serves Wayport: its options, and an HTTP protocol with two savings per request.

uvicorn's httptools protocol, unchanged but for its transport and its scope:

- A response head is held until the next write on the connection (its body, or a stream's first
  chunk) and both leave in one ``send()`` system call instead of two. On loopback and on a busy
  host that call is the dearest step of relaying a chunk. A head that no write follows in the same
  turn of the event loop is written on the next turn.
- The scope carries ``CLIENT_GONE``, a check that the client's connection is closing, so a relayed
  stream can stop when its client leaves without a task per request waiting on ``receive()``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from wayport.settings import Settings

__all__ = ["CLIENT_GONE", "CorkedTransport", "WayportHTTPProtocol", "server_options"]

CLIENT_GONE = "wayport.client_gone"
"""Scope key: a ``() -> bool`` that is true once the client's connection is closing."""

_HEAD = b"HTTP/1.1 "


class CorkedTransport:
    """A transport that holds what starts with a status line until the next write or the next
    turn of the loop, whichever comes first; everything else passes straight through, in order."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""

    def write(self, data: bytes) -> None:
        held = self._held
        if held:
            self._held = b""
            self._transport.write(held + data)
        elif data.startswith(_HEAD):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held:
            self._held = b""
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class WayportHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CorkedTransport`, with ``CLIENT_GONE`` in scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = CorkedTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, corked))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CLIENT_GONE] = self.transport.is_closing  # type: ignore[literal-required]


def server_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves Wayport, beside where and with how many workers (``wayport serve`` and
    the tests' servers alike)."""
    return {
        "http": WayportHTTPProtocol,
        "log_level": settings.log_level,
        # The access log would print query strings, which may carry keys; and it costs CPU per request.
        "access_log": False,
        "server_header": False,
        "timeout_keep_alive": settings.keep_alive_s,
    }
