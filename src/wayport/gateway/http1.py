"""A lean HTTP/1.1 client for provider calls: keep-alive pools per origin, httptools' parser.

aiohttp's client took longer to start a request than the rest of the gateway took to route it (URL
objects, a task per request body, several turns of the event loop before the first byte went out).
Here a request is encoded once and written in one call, and the answer is parsed by llhttp through
httptools (the parser uvicorn serves with). A minimal uvicorn app relaying a stream through each
client first sent a byte 0.84 ms (aiohttp) and 0.48 ms (this shape) after the request, against
0.14 ms straight to the upstream (docs/bench.md).

Outbound proxies are CONNECT tunnels (``wayport.gateway.proxy``). What it leaves out, on purpose:
HTTP/2, redirects, cookies, ``Expect: 100-continue``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

from wayport.eager import Signal
from wayport.gateway.proxy import DIRECT, Proxy, ProxyRoutes, TunnelRefused, open_tunnel

IDLE_TIMEOUT_S = 15.0  # an idle connection older than this is not reused (NATs drop them silently)
HIGH_WATER = 1 << 18  # answer bytes buffered before reading from the socket pauses
_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_TARGET_UNSAFE = re.compile(r"[^\x21-\x7e]")
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses to connect to``, checked by the caller's policy."""


class UpstreamError(Exception):
    """The exchange with the provider failed; ``str()`` is a short reason fit for an error message."""


class ConnectFailed(UpstreamError):
    """No connection could be made: DNS, refused, TLS handshake or the connect timeout."""


class ConnectionBroken(UpstreamError):
    """The connection ended, or sent something that is not HTTP, before the answer was complete."""


class InvalidRequest(UpstreamError):
    """The request cannot be written as HTTP/1.1 (a line break in a header, a bad URL)."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    host_header: str


class Response:
    """One answer: status and headers once ``HTTPClient.request`` returns, the body read with
    ``read()`` or ``next_chunk()``. ``release()`` (or ``close()``) must be called when done; it
    gives the connection back to its pool when the answer was read to its end."""

    __slots__ = (
        "status",
        "raw_headers",
        "headers",
        "_conn",
        "_client",
        "_head",
        "_chunks",
        "_buffered",
        "_waiter",
        "_complete",
        "_error",
        "_keep_alive",
        "_until_close",
        "_decoder",
        "_received",
        "_done",
        "_head_only",
        "_stall_at",
        "_stall_timer",
        "_on_data",
        "_on_end",
        "_fire_head",
    )

    def __init__(self, conn: _Connection, client: HTTPClient, head_only: bool) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        # by lower-cased name, repeated ones joined with ", "; filled when the head is complete
        self.headers: dict[str, str] = {}
        self._conn = conn
        self._client = client
        # a Signal: the request awaiting it goes on inside the callback that read the head
        self._head = Signal(loop=conn.loop)
        self._fire_head = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: UpstreamError | None = None
        self._keep_alive = False
        self._until_close = False
        self._decoder: Any = None
        self._received = False
        self._done = False
        self._head_only = head_only
        self._stall_at: float | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None

    async def next_chunk(self, stall_s: float | None = None) -> bytes:
        """The body bytes that arrived since the last call, waiting for some; ``b""`` at the end.

        ``TimeoutError`` when nothing arrived for ``stall_s`` seconds. One timer per answer serves
        every wait (it is moved on only when it fires), so a stream of many chunks does not arm
        and cancel a timer per chunk."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            loop = self._conn.loop
            waiter = self._waiter = loop.create_future()
            if stall_s is not None:
                self._stall_at = loop.time() + stall_s
                if self._stall_timer is None:
                    self._stall_timer = loop.call_at(self._stall_at, self._check_stall)
            try:
                await waiter
            finally:
                self._waiter = None
                self._stall_at = None
        return self._take()

    def push_to(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Hand the body to ``on_data`` as it arrives instead of buffering it for ``next_chunk``
        (what is buffered already goes first), and call ``on_end`` once the answer has ended or
        failed (``error`` says which), at once if it has. Both run inside the connection's
        callback. ``release()``/``close()`` end the pushing."""
        self._on_data, self._on_end = on_data, on_end
        if self._chunks:
            on_data(self._take())
        if self._complete or self._error is not None:
            on_end()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._conn.loop

    @property
    def error(self) -> UpstreamError | None:
        """Why the answer failed before its end, once it has."""
        return self._error

    def pause_reading(self) -> None:
        """Stop reading from the provider (the client is slower); ``resume_reading`` goes on."""
        self._conn.pause()

    def resume_reading(self) -> None:
        self._conn.resume()

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        parts = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Done with this answer: its connection is pooled again if the body was read to its end."""
        self._finish(reuse=True)

    def close(self) -> None:
        """Done with this answer, closing its connection (an unread body, a cancelled call)."""
        self._finish(reuse=False)

    def _finish(self, *, reuse: bool) -> None:
        if self._done:
            return
        self._done = True
        self._on_data = self._on_end = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        conn = self._conn
        conn.response = None
        if reuse and self._complete and self._keep_alive and not self._chunks:
            self._client.put_idle(conn)
        else:
            conn.close()
        self._client.slot_freed()

    # -- fed by the connection
    def _headers_done(self, status: int, keep_alive: bool) -> None:
        self.status = status
        self._keep_alive = keep_alive and not self._head_only
        headers = self.headers
        for raw_name, raw_value in self.raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if headers.get("content-encoding", "").strip().lower() in ("gzip", "deflate"):
            self._decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # zlib or gzip framing
        self._until_close = "content-length" not in headers and "transfer-encoding" not in headers
        if self._head_only:
            self._ended()
        if not self._head.done():
            self._head.set_result(None)
            self._fire_head = True

    def _feed(self, data: bytes) -> None:
        if self._complete:
            return
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._fail(ConnectionBroken(f"the answer could not be decompressed ({exc})"))
                self._conn.close()
                return
            if not data:
                return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _take(self) -> bytes:
        """What is buffered, in one piece; reading goes on if it had paused for it."""
        chunks = self._chunks
        chunk = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if self._buffered > HIGH_WATER:
            self._conn.resume()
        self._buffered = 0
        return chunk

    def _ended(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._deliver(rest)
        self._complete = True
        self._wake()
        if self._on_end is not None:
            self._on_end()

    def _fail(self, error: UpstreamError) -> None:
        if self._complete or self._error is not None:
            return
        self._error = error
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved here: a caller cancelled meanwhile must not warn
        self._wake()
        if self._on_end is not None:
            self._on_end()

    def _lost(self, exc: Exception | None) -> None:
        if self._head.done() and self._until_close and exc is None:
            self._ended()  # a body delimited by the end of the connection is complete now
        else:
            reason = f": {exc}" if exc is not None else ""
            self._fail(ConnectionBroken(f"the provider closed the connection{reason}"))

    def _check_stall(self) -> None:
        self._stall_timer = None
        at, waiter = self._stall_at, self._waiter
        if at is None or waiter is None or waiter.done():
            return  # not waiting now: the next wait arms a timer again
        loop = self._conn.loop
        if loop.time() >= at:
            waiter.set_exception(TimeoutError())
        else:
            self._stall_timer = loop.call_at(at, self._check_stall)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the httptools parser calls back into the current ``Response``."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        # kept, not asked for: Python 3.11 makes a getpid() system call in every
        # asyncio.get_running_loop(), and a stream asks once per chunk
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._interim = False

    def write(self, head: bytes, body: bytes | None) -> None:
        transport = self.transport
        assert transport is not None
        if body and len(body) > 65536:
            transport.write(head)
            transport.write(body)
        else:
            transport.write(head + body if body else head)

    def reusable(self, idle_after: float) -> bool:
        """Open, and idle since ``idle_after`` (loop time) or later."""
        return not self.closed and self.idle_since > idle_after

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response._complete:
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        response._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response._fail(ConnectionBroken(f"the answer is not valid HTTP/1.1 ({exc})"))
            self.close()
        if response._fire_head:  # after the parser, with what came along with the head buffered
            response._fire_head = False
            response._head.fire()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response._lost(exc)

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None or response._head.done():
            self.close()  # a second answer to one request
            return
        status = self.parser.get_status_code()
        self._interim = 100 <= status < 200
        if self._interim:  # 103 Early Hints and the like: the real answer follows
            response.raw_headers.clear()
            return
        response._headers_done(status, self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif self.response is not None:
            self.response._ended()


class HTTPClient:
    """Pooled HTTP/1.1 connections to any number of origins.

    At most ``limit`` requests are in flight at once (more wait for a slot). ``resolve``, when
    given, chooses the addresses a host name may be reached at (the SSRF guard); without it the
    event loop's resolver is used. ``proxies`` sends connections through a proxy's tunnel: to the
    host name, or with ``resolve`` to the addresses it chose (the proxy then resolves nothing).
    """

    def __init__(
        self,
        *,
        limit: int,
        connect_timeout_s: float,
        resolve: Resolver | None = None,
        proxies: ProxyRoutes = DIRECT,
    ) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._connect_timeout_s = connect_timeout_s
        self._resolve = resolve
        self._proxies = proxies
        self._idle: dict[Origin, list[_Connection]] = {}
        self._origins: dict[tuple[str, str], Origin] = {}
        self._ssl: ssl.SSLContext | None = None
        self._swept = 0.0

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """Send the request and wait for the answer's status and headers."""
        origin, target = self._split(url)
        head = _encode_head(method, target, origin, headers, body)
        for attempt in (1, 2):
            await self._slots.acquire()
            try:
                conn = await self._connection(origin)
            except BaseException:
                self._slots.release()
                raise
            response = Response(conn, self, head_only=method == "HEAD")
            conn.response = response
            try:
                conn.write(head, body)
                await response._head
                return response
            except ConnectionBroken:
                response.close()
                # A kept-alive connection the provider closed as it was reused: an idempotent
                # request goes once more on a fresh one. A POST is not sent twice behind the
                # caller's back (the provider may have acted on it); the retry policy decides.
                if attempt == 2 or not conn.reused or response._received or method not in _IDEMPOTENT:
                    raise
            except BaseException:
                response.close()
                raise
        raise AssertionError("unreachable")

    def request_target(self, url: str) -> str:
        """What the request line carries for ``url``: its path and query, as given (only bytes
        that cannot appear on a request line are percent-encoded)."""
        return self._split(url)[1]

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    # -- used by Response
    def put_idle(self, conn: _Connection) -> None:
        now = conn.loop.time()
        conn.idle_since = now
        conn.reused = True
        self._idle.setdefault(conn.origin, []).append(conn)
        if now - self._swept > IDLE_TIMEOUT_S:
            self._sweep(now)

    def slot_freed(self) -> None:
        self._slots.release()

    # -- internals
    def _split(self, url: str) -> tuple[Origin, str]:
        scheme, netloc, path, query, _ = urlsplit(url)
        origin = self._origins.get((scheme, netloc))
        if origin is None:
            origin = self._origins[(scheme, netloc)] = _origin(url)
            if len(self._origins) > 4096:  # custom hosts are client-chosen: keep the memo bounded
                self._origins.clear()
        target = (path or "/") + (f"?{query}" if query else "")
        if _TARGET_UNSAFE.search(target):
            target = quote(target, safe=_TARGET_SAFE)
        return origin, target

    async def _connection(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        if idle:
            oldest = asyncio.get_running_loop().time() - IDLE_TIMEOUT_S
            while idle:
                conn = idle.pop()
                if conn.reusable(oldest):
                    return conn
                conn.close()
        return await self._connect(origin)

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls() if origin.scheme == "https" else None
        proxy = self._proxies.proxy_for(origin.scheme, origin.host, origin.port)
        failure = "no address to connect to"
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if self._resolve is None:
                    addresses = [origin.host]
                else:
                    try:
                        addresses = await self._resolve(origin.host, origin.port)
                    except OSError as exc:
                        raise ConnectFailed(_reason(exc)) from None
                for address in addresses:
                    try:
                        if proxy is not None:
                            return await self._tunnel(loop, proxy, origin, address, tls)
                        _, conn = await loop.create_connection(
                            lambda: _Connection(origin, loop),
                            address,
                            origin.port,
                            ssl=tls,
                            server_hostname=origin.host if tls is not None else None,
                        )
                    except TunnelRefused as exc:
                        failure = str(exc)
                        continue
                    except OSError as exc:
                        failure = _reason(exc) if proxy is None else f"proxy {proxy.shown}: {_reason(exc)}"
                        continue
                    return conn
        except TimeoutError:
            failure = f"no connection within {self._connect_timeout_s:g} s"
        raise ConnectFailed(failure)

    @staticmethod
    async def _tunnel(
        loop: asyncio.AbstractEventLoop,
        proxy: Proxy,
        origin: Origin,
        address: str,
        tls: ssl.SSLContext | None,
    ) -> _Connection:
        transport, early = await open_tunnel(
            loop, proxy, f"[{address}]" if ":" in address else address, origin.port
        )
        conn = _Connection(origin, loop)
        try:
            if early:
                raise TunnelRefused(f"the proxy {proxy.shown} sent data before the provider was reached")
            if tls is not None:
                tunnelled = await loop.start_tls(transport, conn, tls, server_hostname=origin.host)
                if tunnelled is None:
                    raise TunnelRefused(
                        f"the tunnel through the proxy {proxy.shown} closed during the TLS handshake"
                    )
                transport = tunnelled
            else:
                transport.set_protocol(conn)
        except BaseException:
            transport.close()
            raise
        conn.connection_made(transport)
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    def _sweep(self, now: float) -> None:
        self._swept = now
        oldest = now - IDLE_TIMEOUT_S
        for origin, idle in list(self._idle.items()):
            keep = []
            for conn in idle:
                if conn.reusable(oldest):
                    keep.append(conn)
                else:
                    conn.close()
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc)
    if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
        return exc.strerror or str(exc) or type(exc).__name__
    return os.strerror(exc.errno)  # "Connection refused", not "Connect call failed ('10.0.0.1', 443)"


def _origin(url: str) -> Origin:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"invalid URL ({exc})") from None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        raise InvalidRequest("the URL must be absolute, with http or https")
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    return Origin(
        scheme,
        host,
        port or default,
        shown if port in (None, default) else f"{shown}:{port}",
    )


def _encode_head(
    method: str, target: str, origin: Origin, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {origin.host_header}\r\n"]
    for name, value in headers.items():
        if name.lower() not in _MANAGED_HEADERS:
            lines.append(f"{name}: {value}\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body) if body else 0}\r\n")
    lines.append("accept-encoding: gzip, deflate\r\n\r\n")
    text = "".join(lines)
    # The first and last lines end in two CRLFs, the others in one; any other CR, LF or NUL came
    # from a header and would split it into a header (or a request) of its own.
    if text.count("\n") != len(lines) + 2 or text.count("\r") != len(lines) + 2 or "\0" in text:
        raise InvalidRequest("a header name or value contains a line break")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidRequest("a header name or value has characters outside Latin-1") from None
