"""The ``portkey-ai`` SDK pointed at Wayport, and its ``createHeaders`` used with the ``openai`` SDK.

The Portkey client always sends what a Portkey gateway expects (an empty ``x-portkey-api-key``,
``x-portkey-strict-open-ai-compliance: false``, telemetry headers and, when the credentials come
from a config, the placeholder ``Authorization: Bearer OPENAI_API_KEY``); Wayport must accept all
of it and send the provider only the real key.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import portkey_ai
import pytest
from portkey_ai._vendor import openai as vendored_openai

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault, Recorded

CONFIG: dict[str, Any] = {
    "provider": "openai",
    "api_key": "sk-from-config",
    "override_params": {"model": "gpt-4o", "max_tokens": 64},
}
MESSAGES: list[Any] = [{"role": "user", "content": "What is your name"}]


def lower_headers(recorded: Recorded) -> dict[str, str]:
    return {k.lower(): v for k, v in recorded.headers.items()}


def assert_provider_saw(recorded: Recorded, key: str) -> None:
    """The provider got exactly the given key, and nothing of the gateway's headers or keys."""
    headers = lower_headers(recorded)
    assert headers["authorization"] == f"Bearer {key}"
    assert not [name for name in headers if name.startswith("x-portkey-")]
    assert "OPENAI_API_KEY" not in str(headers)
    assert "wp-" not in str(headers)


class Capture:
    """An httpx client that remembers the headers of every request the SDK sends to Wayport."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def _hook(self, request: httpx.Request) -> None:
        self.sent.append(dict(request.headers))

    async def _ahook(self, request: httpx.Request) -> None:
        self._hook(request)

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self._hook]})

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"request": [self._ahook]})


# -- Portkey(provider=..., Authorization=...) ---------------------------------------------------


def test_portkey_provider_and_authorization(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    capture = Capture()
    client = portkey_ai.Portkey(
        base_url=gateway.v1, provider="openai", Authorization="sk-x", http_client=capture.client()
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: What is your name"
    assert completion.choices[0].finish_reason == "stop"
    # what the SDK sent: the wire example of portkey.md §2.6
    sent = capture.sent[-1]
    assert sent["authorization"] == "Bearer sk-x"
    assert sent["x-portkey-api-key"] == ""
    assert sent["x-portkey-provider"] == "openai"
    assert sent["x-portkey-strict-open-ai-compliance"] == "false"
    assert sent["x-portkey-package-version"].startswith("portkey-")
    # what reached the provider
    recorded = openai_emulator.last
    assert recorded.path == "/v1/chat/completions"
    assert recorded.json()["model"] == "gpt-4o-mini"
    assert recorded.json()["messages"] == MESSAGES
    assert_provider_saw(recorded, "sk-x")
    # the response headers, as the SDK exposes them
    headers = completion.get_headers()
    assert headers is not None
    assert str(uuid.UUID(headers["trace-id"])) == headers["trace-id"]
    assert headers["provider"] == "openai"
    assert headers["cache-status"] == "DISABLED"
    assert headers["retry-attempt-count"] == "0"
    assert headers["last-used-option-index"] == "config"


def test_portkey_stream(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    client = portkey_ai.Portkey(base_url=gateway.v1, provider="openai", Authorization="sk-x")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: What is your name"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    body = openai_emulator.last.json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert_provider_saw(openai_emulator.last, "sk-x")


def test_portkey_trace_id_echoed(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    client = portkey_ai.Portkey(base_url=gateway.v1, provider="openai", Authorization="sk-x", trace_id="t-1")
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    headers = completion.get_headers()
    assert headers is not None
    assert headers["trace-id"] == "t-1"
    assert "x-portkey-trace-id" not in lower_headers(openai_emulator.last)


def test_portkey_default_model_sentinel(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """Without ``model`` the SDK sends ``portkey-default``; the gateway picks the provider's default."""
    client = portkey_ai.Portkey(base_url=gateway.v1, provider="openai", Authorization="sk-x")
    completion = client.chat.completions.create(messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: What is your name"
    assert openai_emulator.last.json()["model"] == "gpt-4o-mini"


# -- Portkey(config=...) with the key in the config ---------------------------------------------


def test_portkey_config_carries_key(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    capture = Capture()
    client = portkey_ai.Portkey(
        base_url=gateway.v1, api_key="wp-gateway-key", config=CONFIG, http_client=capture.client()
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)

    assert completion.choices[0].message.content == "Echo: What is your name"
    sent = capture.sent[-1]
    assert sent["authorization"] == "Bearer OPENAI_API_KEY"  # the SDK's placeholder
    assert sent["x-portkey-api-key"] == "wp-gateway-key"
    assert sent["x-portkey-strict-open-ai-compliance"] == "false"
    body = openai_emulator.last.json()
    assert body["model"] == "gpt-4o"  # override_params win over the request
    assert body["max_tokens"] == 64
    assert_provider_saw(openai_emulator.last, "sk-from-config")
    headers = completion.get_headers()
    assert headers is not None
    assert headers["provider"] == "openai"
    assert headers["last-used-option-index"] == "config"


def test_portkey_config_stream(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    client = portkey_ai.Portkey(base_url=gateway.v1, config=CONFIG)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: What is your name"
    assert openai_emulator.last.json()["model"] == "gpt-4o"
    assert openai_emulator.last.json()["max_tokens"] == 64
    assert_provider_saw(openai_emulator.last, "sk-from-config")


def test_portkey_config_with_retry(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(
        Fault(
            status=429,
            json={"error": {"message": "slow down", "type": "requests", "param": None, "code": None}},
        )
    )
    client = portkey_ai.Portkey(base_url=gateway.v1, config={**CONFIG, "retry": {"attempts": 2}})
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: What is your name"
    assert len(openai_emulator.requests) == 2
    headers = completion.get_headers()
    assert headers is not None
    assert headers["retry-attempt-count"] == "1"


def test_portkey_embeddings_completions_models(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    client = portkey_ai.Portkey(base_url=gateway.v1, provider="openai", Authorization="sk-x")

    embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c d"])
    assert [len(d.embedding) for d in embeddings.data] == [8, 8]
    assert openai_emulator.last.path == "/v1/embeddings"
    assert_provider_saw(openai_emulator.last, "sk-x")

    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Paul Graham is ")
    assert completion.choices[0].text == "Echo: Paul Graham is "
    assert openai_emulator.last.path == "/v1/completions"

    models = client.models.list()
    assert [m.id for m in models.data] == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    assert (openai_emulator.last.method, openai_emulator.last.path) == ("GET", "/v1/models")
    assert_provider_saw(openai_emulator.last, "sk-x")


def test_portkey_upstream_error(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(
        Fault(
            status=401,
            json={
                "error": {"message": "Bad key", "type": "invalid_request_error", "code": "invalid_api_key"}
            },
        )
    )
    client = portkey_ai.Portkey(base_url=gateway.v1, provider="openai", Authorization="sk-x")

    with pytest.raises(vendored_openai.AuthenticationError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "openai error: Bad key"
    assert info.value.response.json()["provider"] == "openai"
    assert info.value.response.headers["x-portkey-trace-id"]
    assert len(openai_emulator.requests) == 1  # a 401 is not retried, by the gateway or the SDK


# -- AsyncPortkey ---------------------------------------------------------------------------------


async def test_async_portkey_create_and_stream(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    capture = Capture()
    async with capture.async_client() as http:
        client = portkey_ai.AsyncPortkey(
            base_url=gateway.v1, config=CONFIG, trace_id="t-async", http_client=http
        )

        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert completion.choices[0].message.content == "Echo: What is your name"
        headers = completion.get_headers()
        assert headers is not None
        assert headers["trace-id"] == "t-async"
        assert capture.sent[-1]["authorization"] == "Bearer OPENAI_API_KEY"
        assert_provider_saw(openai_emulator.last, "sk-from-config")
        assert openai_emulator.last.json()["max_tokens"] == 64

        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: What is your name"
    assert openai_emulator.last.json()["stream"] is True
    assert_provider_saw(openai_emulator.last, "sk-from-config")


async def test_async_portkey_provider_header(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    async with httpx.AsyncClient() as http:
        client = portkey_ai.AsyncPortkey(
            base_url=gateway.v1, provider="openai", Authorization="sk-async", http_client=http
        )
        completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: What is your name"
    assert_provider_saw(openai_emulator.last, "sk-async")


# -- openai SDK + portkey_ai.createHeaders ------------------------------------------------------


def test_openai_sdk_with_portkey_create_headers(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = portkey_ai.createHeaders(
        provider="openai",
        api_key="",
        trace_id="t-2",
        metadata={"_user": "u1"},
        strict_open_ai_compliance=False,
    )
    assert "x-portkey-api-key" not in headers  # empty values are dropped by createHeaders
    client = openai.OpenAI(base_url=gateway.v1, api_key="x", default_headers=headers, max_retries=0)

    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)

    assert raw.parse().choices[0].message.content == "Echo: What is your name"
    assert raw.headers["x-portkey-trace-id"] == "t-2"
    assert raw.headers["x-portkey-provider"] == "openai"
    assert_provider_saw(openai_emulator.last, "x")

    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: What is your name"


def test_openai_sdk_with_portkey_config_headers(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    """The config carries the provider key; the client's own key is a placeholder and must not leak."""
    headers = portkey_ai.createHeaders(api_key="wp-gateway-key", config=CONFIG)
    client = openai.OpenAI(
        base_url=gateway.v1, api_key="OPENAI_API_KEY", default_headers=headers, max_retries=0
    )

    completion = client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: What is your name"
    assert openai_emulator.last.json()["model"] == "gpt-4o"
    assert openai_emulator.last.json()["max_tokens"] == 64
    assert_provider_saw(openai_emulator.last, "sk-from-config")


def test_portkey_wire_example(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """portkey.md §2.6: provider and key from headers, the config only adds a retry."""
    openai_emulator.inject(
        Fault(
            status=503,
            json={"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}},
        )
    )
    client = portkey_ai.Portkey(
        base_url=gateway.v1,
        provider="openai",
        Authorization="sk-x",
        config={"retry": {"attempts": 2}},
        metadata={"_user": "u1"},
        trace_id="t-1",
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: What is your name"
    assert len(openai_emulator.requests) == 2
    for recorded in openai_emulator.requests:
        assert recorded.json()["model"] == "gpt-4o-mini"
        assert_provider_saw(recorded, "sk-x")
    headers = completion.get_headers()
    assert headers is not None
    assert headers["trace-id"] == "t-1"
    assert headers["retry-attempt-count"] == "1"
    assert headers["last-used-option-index"] == "config"
    assert headers["provider"] == "openai"
    assert headers["cache-status"] == "DISABLED"
