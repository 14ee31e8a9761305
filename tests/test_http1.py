"""The lean HTTP/1.1 client (wayport.gateway.http1) against raw servers on loopback.

Each server here is a few lines of asyncio streams writing exact bytes, so every framing the
client meets (lengths, chunks, close-delimited bodies, compression, broken connections) is
spelled out in the test that uses it.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wayport.gateway.http1 import ConnectFailed, ConnectionBroken, HTTPClient, InvalidRequest, Response

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def client(limit: int = 8) -> HTTPClient:
    return HTTPClient(limit=limit, connect_timeout_s=2)


async def get(http: HTTPClient, server: Server) -> Response:
    return await http.request("GET", server.url, {}, None)


def keep_alive_server(reply: bytes = OK) -> Callable[[Server], Handler]:
    def bind(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            while True:
                await server.read_request(reader)
                writer.write(reply)
                await writer.drain()

        return handler

    return bind


@asynccontextmanager
async def serving_with(bind: Callable[[Server], Handler]) -> AsyncIterator[Server]:
    """``serving`` for handlers that need the server object (to record requests)."""
    holder: list[Server] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await bind(holder[0])(reader, writer, n)

    async with serving(handler) as server:
        holder.append(server)
        yield server


async def test_requests_share_one_kept_alive_connection() -> None:
    async with serving_with(keep_alive_server()) as server:
        http = client()
        for _ in range(3):
            response = await http.request("POST", server.url + "v1/x", {}, b"[1]")
            assert (response.status, await response.read()) == (200, b"{}")
            assert response.headers["content-type"] == "application/json"
            response.release()
        assert server.connections == 1
        assert len(server.requests) == 3
        await http.close()


async def test_the_request_is_written_as_http_1_1() -> None:
    async with serving_with(keep_alive_server()) as server:
        http = client()
        url = server.url + "v1/a b?q=1"
        response = await http.request("POST", url, {"Authorization": "Bearer k", "Host": "evil"}, b"{}")
        response.release()
        assert server.requests[0] == (
            b"POST /v1/a%20b?q=1 HTTP/1.1\r\n"
            + f"host: 127.0.0.1:{server.port}\r\n".encode()
            + b"Authorization: Bearer k\r\ncontent-length: 2\r\naccept-encoding: gzip, deflate\r\n\r\n{}"
        )
        await http.close()


async def test_a_line_break_in_a_header_is_refused_before_sending() -> None:
    async with serving_with(keep_alive_server()) as server:
        http = client()
        with pytest.raises(InvalidRequest, match="line break"):
            await http.request("GET", server.url, {"x-a": "1\r\nx-injected: 2"}, None)
        with pytest.raises(InvalidRequest, match="Latin-1"):
            await http.request("GET", server.url, {"x-a": "✓"}, None)
        assert server.requests == []
        # the refused requests gave their slots back
        response = await get(http, server)
        response.release()
        await http.close()


async def test_chunks_of_a_stream_arrive_one_by_one() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        http = client()
        response = await get(http, server)
        assert await response.next_chunk() == b"data:1"  # before the rest was even written
        release.set()
        assert await response.next_chunk() == b"data:2"
        assert await response.next_chunk() == b""
        response.release()
        await http.close()


def answers_then_closes(reply: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()

    return handler


async def test_a_body_delimited_by_the_connection_end_is_complete() -> None:
    async with serving(
        answers_then_closes(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
    ) as server:
        http = client()
        response = await get(http, server)
        assert await response.read() == b"all of it"
        response.release()
        response = await get(http, server)
        assert await response.read() == b"all of it"
        response.release()
        assert server.connections == 2  # the closed connection was not pooled
        await http.close()


async def test_gzip_answers_are_decompressed() -> None:
    packed = gzip.compress(b'{"big": "' + b"x" * 5000 + b'"}')
    reply = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed) + packed
    async with serving_with(keep_alive_server(reply)) as server:
        http = client()
        response = await get(http, server)
        assert await response.read() == b'{"big": "' + b"x" * 5000 + b'"}'
        response.release()
        await http.close()


async def test_a_connection_cut_mid_body_is_an_error() -> None:
    async with serving(
        answers_then_closes(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
    ) as server:
        http = client()
        response = await get(http, server)
        assert await response.next_chunk() == b"only part"
        with pytest.raises(ConnectionBroken, match="closed the connection"):
            await response.next_chunk()
        response.close()
        await http.close()


async def test_an_answer_that_is_not_http_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"<html>hello</html>\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        http = client()
        with pytest.raises(ConnectionBroken, match="not valid HTTP"):
            await get(http, server)
        await http.close()


async def test_a_refused_connection_says_why() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(ConnectFailed, match="refused"):
            await client().request("GET", f"http://127.0.0.1:{port}/", {}, None)


def drops_second_request(server: Server) -> Handler:
    """Answers the first request of its first connection, then reads the next one and closes
    without answering: the race of a keep-alive timeout on the server. Later connections answer."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if n == 1:
            await server.read_request(reader)
            return
        await reader.read()

    return handler


async def test_a_get_on_a_connection_the_server_dropped_is_sent_again() -> None:
    async with serving_with(drops_second_request) as server:
        http = client()
        for _ in range(2):
            response = await get(http, server)
            assert await response.read() == b"{}"
            response.release()
        assert server.connections == 2
        await http.close()


async def test_a_post_on_a_connection_the_server_dropped_is_not_sent_twice() -> None:
    async with serving_with(drops_second_request) as server:
        http = client()
        response = await http.request("POST", server.url, {}, b"1")
        await response.read()
        response.release()
        with pytest.raises(ConnectionBroken):
            await http.request("POST", server.url, {}, b"2")
        assert [r[-1:] for r in server.requests] == [b"1", b"2"]  # the provider saw it once
        await http.close()


async def test_a_fresh_connection_that_breaks_is_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with serving(handler) as server:
        http = client()
        with pytest.raises(ConnectionBroken):
            await http.request("POST", server.url, {}, b"x")
        assert server.connections == 1
        await http.close()


async def test_an_unread_body_closes_its_connection() -> None:
    async with serving_with(keep_alive_server()) as server:
        http = client()
        response = await get(http, server)
        response.close()
        response = await get(http, server)
        await response.read()
        response.release()
        assert server.connections == 2
        await http.close()


async def test_interim_answers_are_skipped() -> None:
    reply = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + OK
    async with serving_with(keep_alive_server(reply)) as server:
        http = client()
        response = await get(http, server)
        assert response.status == 200
        assert "link" not in response.headers
        assert await response.read() == b"{}"
        response.release()
        await http.close()


async def test_a_head_answer_has_no_body() -> None:
    async with serving_with(keep_alive_server(OK[:-2])) as server:  # content-length 2, no body bytes
        http = client()
        response = await http.request("HEAD", server.url, {}, None)
        assert (response.status, await response.read()) == (200, b"")
        response.release()
        await http.close()


async def test_requests_beyond_the_limit_wait_for_a_slot() -> None:
    async with serving_with(keep_alive_server()) as server:
        http = client(limit=2)
        url = server.url
        held = [await http.request("GET", url, {}, None) for _ in range(2)]
        third = asyncio.ensure_future(http.request("GET", url, {}, None))
        await asyncio.sleep(0.05)
        assert not third.done()
        await held[0].read()
        held[0].release()
        response = await asyncio.wait_for(third, 2)
        assert await response.read() == b"{}"
        for one in (held[1], response):
            one.release()
        await http.close()


async def test_a_cancelled_request_frees_its_slot_and_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if n == 1:
            await reader.read()  # never answers
            return
        writer.write(OK)
        await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        http = client(limit=1)
        url = server.url
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await http.request("GET", url, {}, None)
        response = await asyncio.wait_for(http.request("GET", url, {}, None), 2)
        assert await response.read() == b"{}"
        response.release()
        await http.close()


def self_signed(tmp: Path, dns_name: str | None = None) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and ``dns_name``) signed by its own key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wayport-test")])
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if dns_name is not None:
        names.append(x509.DNSName(dns_name))
    loopback = x509.SubjectAlternativeName(names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(loopback, False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def tls_server(cert: Path, key: Path) -> tuple[Server, ssl.SSLContext]:
    """A keep-alive server answering ``{}``, and the TLS context to serve it with ``cert``."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    holder: list[Server] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await keep_alive_server()(holder[0])(reader, writer, n)

    server = Server(handler)
    holder.append(server)
    return server, tls


async def test_https_verifies_the_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    server, tls = tls_server(cert, key)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    url = f"https://127.0.0.1:{listener.sockets[0].getsockname()[1]}/v1/models"
    try:
        with pytest.raises(ConnectFailed, match="certificate verify failed"):
            await client().request("GET", url, {}, None)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the client makes its TLS context
        http = client()
        response = await http.request("GET", url, {}, None)
        assert (response.status, await response.read()) == (200, b"{}")
        response.release()
        assert server.requests[-1].startswith(b"GET /v1/models HTTP/1.1\r\n")
        await http.close()
    finally:
        listener.close()


async def test_a_stalled_stream_times_out_and_a_slow_one_does_not() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        for trickle in (True, False):  # the first stream trickles, the next one stalls
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(8 if trickle else 1):
                writer.write(b"1\r\n.\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
            if trickle:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        http = client()
        url = server.url
        response = await http.request("GET", url, {}, None)
        body = b""
        while chunk := await response.next_chunk(stall_s=0.25):  # 0.8 s in all, 0.1 s apart
            body += chunk
        assert body == b"." * 8
        response.release()

        response = await http.request("GET", url, {}, None)
        assert await response.next_chunk(stall_s=0.25) == b"."
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await response.next_chunk(stall_s=0.25)
        assert 0.2 <= loop.time() - started < 1.0
        response.close()
        await http.close()
