"""Fixtures: provider emulators and a real Wayport server, both on loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvloop import run as uvloop_run

from tests.emulators.openai import OpenAIEmulator
from wayport.app import WayportApp
from wayport.gateway.retry import RetryRunner
from wayport.http_server import server_options
from wayport.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving_asgi(app: Any, *, uvloop: bool = False, **options: Any) -> Iterator[int]:
    """``app`` served by uvicorn with Wayport's server options (``options`` over them) in a
    background thread, on asyncio's event loop or (``uvloop``) on the one `wayport serve` uses;
    yields the port."""
    port = free_port()
    merged = {**server_options(Settings()), "log_level": "warning", **options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", **merged))
    run = uvloop_run if uvloop else asyncio.run
    thread = threading.Thread(target=lambda: run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


class GatewayServer:
    """Wayport served by uvicorn in a background thread, as `wayport serve` would serve it."""

    def __init__(self, settings: Settings, retry: RetryRunner | None = None) -> None:
        self.port = free_port()
        self.app = WayportApp(replace(settings, port=self.port), retry=retry)
        options = {**server_options(settings), "log_level": "warning"}
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, loop="asyncio", lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def start(self) -> GatewayServer:
        self._thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("Wayport did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


@pytest.fixture(scope="session")
def openai_emulator() -> Iterator[OpenAIEmulator]:
    emulator = OpenAIEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    if "openai_emulator" in request.fixturenames or "gateway" in request.fixturenames:
        request.getfixturevalue("openai_emulator").reset()


def emulator_settings(emulator: OpenAIEmulator, data_dir: Path, **overrides: object) -> Settings:
    base_urls = {name: emulator.base_url for name in ("openai", "groq", "together-ai")}
    base_urls["azure-openai"] = emulator.server.url
    settings = Settings(
        auth=False,
        data_dir=data_dir,
        base_urls=base_urls,
        trusted_hosts=("127.0.0.1", "localhost"),
        log_flush_interval_s=0.05,  # tests read the logs right after a request
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def gateway(
    openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = emulator_settings(
        openai_emulator, tmp_path_factory.mktemp("wayport"), max_body_bytes=1024 * 1024
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.05)).start()
    yield server
    server.stop()
