"""What the native-provider suites share: a gateway pointed at one emulator, the clients users
have (openai, LlamaIndex) configured by a Config object, and reading an SSE body."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
from llama_index.llms.openai import OpenAI

import wayport
from tests.conftest import GatewayServer
from wayport.gateway.retry import RetryRunner
from wayport.settings import Settings


@contextmanager
def provider_gateway(data_dir: Path, provider: str, base_url: str) -> Iterator[GatewayServer]:
    """Wayport (auth off, fast retries) with ``provider``'s base URL at an emulator."""
    settings = Settings(
        auth=False,
        data_dir=data_dir,
        base_urls={provider: base_url},
        trusted_hosts=("127.0.0.1", "localhost"),
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.05)).start()
    try:
        yield server
    finally:
        server.stop()


def config_headers(config: dict[str, Any], **extra: str) -> dict[str, str]:
    return {**wayport.createHeaders(config=config), **extra}


def openai_client(gateway: GatewayServer, config: dict[str, Any], **extra: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.v1, api_key="unused", default_headers=config_headers(config, **extra), max_retries=0
    )


def llamaindex_llm(gateway: GatewayServer, config: dict[str, Any], **kwargs: Any) -> OpenAI:
    return OpenAI(
        api_base=gateway.v1,
        api_key="unused",
        model="gpt-4o",
        default_headers=wayport.createHeaders(config=config),
        max_retries=0,
        **kwargs,
    )


def sse_payloads(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body, ``[DONE]`` as the string."""
    out: list[Any] = []
    for line in text.split("\n"):
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def raw_stream(gateway: GatewayServer, headers: dict[str, str], body: dict[str, Any]) -> list[Any]:
    """The payloads of a streamed chat completion sent as it is (no client library in between)."""
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", json={**body, "stream": True}, headers=headers, timeout=10
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_payloads(response.read().decode())


def content_of(chunks: list[Any]) -> str:
    """The text a stream's chunks carry, joined."""
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c != "[DONE]" and c["choices"]
    )
