"""Wayport's HTTP protocol for uvicorn: a response head leaves with its first body write, and
the scope says when the client has gone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from tests.conftest import free_port
from wayport.http_server import CLIENT_GONE, CorkedTransport, server_options
from wayport.settings import Settings


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 7


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def corked() -> tuple[CorkedTransport, FakeTransport, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    fake = FakeTransport()
    return CorkedTransport(fake, loop), fake, loop  # type: ignore[arg-type]


def test_a_head_leaves_with_the_next_write() -> None:
    transport, fake, loop = corked()
    transport.write(HEAD)
    assert fake.writes == []
    transport.write(b"hi")
    assert fake.writes == [HEAD + b"hi"]
    transport.write(b"more")  # body writes pass straight through, in order
    assert fake.writes == [HEAD + b"hi", b"more"]
    loop.run_until_complete(asyncio.sleep(0))
    assert fake.writes == [HEAD + b"hi", b"more"]  # nothing was left to flush
    loop.close()


def test_a_head_alone_is_written_on_the_next_turn_of_the_loop() -> None:
    transport, fake, loop = corked()
    transport.write(HEAD)
    loop.run_until_complete(asyncio.sleep(0))
    assert fake.writes == [HEAD]
    loop.close()


def test_closing_writes_a_held_head_first() -> None:
    transport, fake, loop = corked()
    transport.write(HEAD)
    transport.close()
    assert fake.writes == [HEAD] and fake.closed
    loop.run_until_complete(asyncio.sleep(0))
    assert fake.writes == [HEAD]  # the scheduled flush finds nothing more
    assert transport.get_write_buffer_size() == 7  # everything else is the real transport's
    loop.close()


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Headers at once, the body 0.5 s later; ``/gone`` answers what CLIENT_GONE says."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/gone":
        body = str(scope[CLIENT_GONE]()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"late", "more_body": False})


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    port = free_port()
    options = {**server_options(Settings()), "log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(slow_app, host="127.0.0.1", port=port, lifespan="off", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_head_without_a_body_yet_reaches_the_client_at_once(slow_server: str) -> None:
    started = time.monotonic()
    with httpx.stream("GET", slow_server + "/slow") as r:
        headers_after = time.monotonic() - started
        assert r.status_code == 200 and r.headers["content-type"] == "text/plain"
        assert r.read() == b"late"
    assert headers_after < 0.3 < time.monotonic() - started


def test_the_scope_says_whether_the_client_is_still_there(slow_server: str) -> None:
    assert httpx.get(slow_server + "/gone").text == "False"
