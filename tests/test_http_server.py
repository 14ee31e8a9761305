"""Wayport's uvicorn protocol: the ClientChannel it puts in each request's scope."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import serving_asgi
from wayport.http_server import CLIENT_CHANNEL, ClientChannel


class Recorder:
    """An ASGI app answering 200 that keeps each request's channel and a weak reference to the
    uvicorn object behind its ``send`` (the request's cycle)."""

    def __init__(self) -> None:
        self.channels: list[ClientChannel] = []
        self.cycles: list[weakref.ref[Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.channels.append(scope[CLIENT_CHANNEL])
        self.cycles.append(weakref.ref(send.__self__))
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served() -> Iterator[tuple[Recorder, int]]:
    app = Recorder()
    with serving_asgi(app) as port:
        yield app, port


def test_a_finished_request_is_freed_without_the_garbage_collector(served: tuple[Recorder, int]) -> None:
    """The scope holds the channel and the cycle holds the scope: the channel must not hold the
    cycle strongly, or every request becomes garbage that only a collection frees."""
    app, port = served
    gc.collect()
    gc.disable()
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/", headers={"connection": "close"})
        assert r.text == "ok"
        deadline = time.monotonic() + 5
        while app.cycles[0]() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.cycles[0]() is None, "the request's cycle outlived its connection"
    finally:
        gc.enable()
    # a channel kept past its request answers as a connection that is gone
    channel = app.channels[0]
    assert channel.gone
    assert not channel.paused
    assert not channel.serves(object())
    channel.write(b"late")  # nowhere to go: dropped, no error
