"""How uvicorn serves Wayport: the options ``wayport serve`` and the tests' servers share, and the
protocol that gives a streamed answer direct access to the client's connection."""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from wayport.eager import EagerCoroutine
from wayport.settings import Settings

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

__all__ = ["CLIENT_CHANNEL", "ClientChannel", "WayportHttpProtocol", "server_options"]

CLIENT_CHANNEL = "wayport.client_channel"
"""The scope key under which ``WayportHttpProtocol`` puts a request's ``ClientChannel``."""


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options beside where to listen and how many workers."""
    return {
        "http": WayportHttpProtocol,
        "log_level": settings.log_level,
        # The access log would print query strings, which may carry keys; and it costs CPU per request.
        "access_log": False,
        "server_header": False,
        "timeout_keep_alive": settings.keep_alive_s,
    }


class ClientChannel:
    """One request's connection to its client, for relaying a stream past the ASGI ``send``.

    uvicorn's ``send`` is a coroutine with a dozen checks, run by a task woken for every chunk; a
    relay that holds the channel writes each chunk as it arrives from the provider, framed as
    uvicorn frames it, and hears at once (``on_lost``) when the client goes away. The response is
    still started and ended through ``send``, so uvicorn's keep-alive and bookkeeping stay whole.
    """

    __slots__ = ("_cycle", "on_lost")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        # Weak: the scope holds the channel and the cycle holds the scope. A strong reference would
        # make every request a reference cycle that only the garbage collector frees, after its
        # objects (scope, headers) have been carried into older generations.
        self._cycle: weakref.ref[RequestResponseCycle] = weakref.ref(cycle)
        self.on_lost: Callable[[], None] | None = None

    def serves(self, send: object) -> bool:
        """``send`` is uvicorn's own for this request (no middleware between them), and the
        response it started is chunked and not finished: ``write`` may be used."""
        cycle = self._cycle()
        owner: object = getattr(send, "__self__", None)
        if cycle is None or owner is not cycle:  # another server's send, or wrapped by middleware
            return False
        return cycle.response_started and cycle.chunked_encoding is True and not cycle.response_complete

    @property
    def gone(self) -> bool:
        """The client closed its connection."""
        cycle = self._cycle()
        return cycle is None or cycle.disconnected or cycle.transport.is_closing()

    @property
    def paused(self) -> bool:
        """The client reads more slowly than the answer arrives: the connection's buffer is full."""
        cycle = self._cycle()
        return cycle is not None and cycle.flow.write_paused

    async def drain(self) -> None:
        """Wait until the client has read enough (or left)."""
        cycle = self._cycle()
        if cycle is not None:
            await cycle.flow.drain()

    def write(self, chunk: bytes) -> None:
        """One non-empty piece of the body, in the chunked framing of the started response."""
        cycle = self._cycle()
        if cycle is not None:
            cycle.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))


class WayportHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a ``ClientChannel`` in every request's scope, whose
    requests start at once (an ``EagerCoroutine``: a request read in full is on its way to the
    provider before the event loop turns)."""

    channel: ClientChannel | None = None
    _starting: EagerCoroutine | None = None
    _reading = False

    def data_received(self, data: bytes) -> None:
        self._reading = True
        try:
            super().data_received(data)
        finally:
            self._reading = False
        starting = self._starting
        if starting is not None:
            self._starting = None
            starting.step()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        fresh = getattr(self.config, "reset_contextvars", False)
        context = contextvars.Context() if fresh else contextvars.copy_context()
        coro = EagerCoroutine(cycle.run_asgi(app), self.loop, context)
        task = self.loop.create_task(coro, context=context)
        coro.bind(task)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        if self._reading:  # stepped once the request's bytes at hand are parsed (its body with them)
            self._starting = coro

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # a request the app will run
            self.channel = ClientChannel(cycle)
            cast(MutableMapping[str, Any], self.scope)[CLIENT_CHANNEL] = self.channel

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        channel = self.channel
        if channel is not None and channel.on_lost is not None:
            channel.on_lost()
