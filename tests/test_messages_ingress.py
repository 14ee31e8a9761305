"""``POST /v1/messages``: the anthropic SDK reaches any provider through Wayport."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anthropic
import orjson
import pytest

from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.anthropic import API_KEY, AnthropicEmulator
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from wayport.gateway.retry import RetryRunner

MESSAGES = [{"role": "user", "content": "What is your name"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def anthropic_emulator() -> Iterator[AnthropicEmulator]:
    emulator = AnthropicEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def messages_gateway(
    openai_emulator: OpenAIEmulator,
    anthropic_emulator: AnthropicEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    settings = emulator_settings(openai_emulator, Path(tmp_path_factory.mktemp("messages")))
    settings = replace(settings, base_urls={**settings.base_urls, "anthropic": anthropic_emulator.base_url})
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.02)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_anthropic(request: pytest.FixtureRequest) -> None:
    if "anthropic_emulator" in request.fixturenames:
        request.getfixturevalue("anthropic_emulator").reset()


def client(gateway: GatewayServer, provider: str, api_key: str = "sk-openai") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url, api_key=api_key, default_headers={"x-portkey-provider": provider}, max_retries=0
    )


def test_messages_to_openai(messages_gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    message = client(messages_gateway, "openai").messages.create(
        model="gpt-4o", max_tokens=64, system="Be brief.", messages=MESSAGES
    )
    assert message.content[0].type == "text" and message.content[0].text == "Echo: What is your name"
    assert message.stop_reason == "end_turn" and message.model == "gpt-4o"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = openai_emulator.last.json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 64
    assert openai_emulator.last.headers["Authorization"] == "Bearer sk-openai"


def test_messages_stream_to_openai(messages_gateway: GatewayServer) -> None:
    with client(messages_gateway, "openai").messages.stream(
        model="gpt-4o", max_tokens=64, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: What is your name"
    assert final.stop_reason == "end_turn"


def test_messages_tools_to_openai(messages_gateway: GatewayServer) -> None:
    message = client(messages_gateway, "openai").messages.create(
        model="gpt-4o",
        max_tokens=64,
        messages=MESSAGES,
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert message.stop_reason == "tool_use"
    tool_use = [b for b in message.content if b.type == "tool_use"]
    assert tool_use[0].name == "get_weather" and tool_use[0].input == {"q": 0}


def test_provider_error_in_anthropic_shape(
    messages_gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(status=429, json={"error": {"message": "slow down", "type": "requests"}}))
    with pytest.raises(anthropic.RateLimitError) as info:
        client(messages_gateway, "openai").messages.create(model="gpt-4o", max_tokens=64, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "slow down" in info.value.body["error"]["message"]  # type: ignore[index]


def test_gateway_error_in_anthropic_shape(messages_gateway: GatewayServer) -> None:
    bad = anthropic.Anthropic(base_url=messages_gateway.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        bad.messages.create(model="gpt-4o", max_tokens=64, messages=MESSAGES)
    assert "x-portkey-provider" in info.value.body["error"]["message"]  # type: ignore[index]


def test_messages_to_anthropic_pass_through(
    messages_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    c = client(messages_gateway, "anthropic", api_key=API_KEY)
    message = c.messages.create(
        model="claude-3-opus-20240229",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    )
    assert message.content[0].text == "Echo: hi"  # type: ignore[union-attr]
    sent = anthropic_emulator.last.json()
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}  # kept as sent
    assert anthropic_emulator.last.headers["x-api-key"] == API_KEY


def test_messages_stream_to_anthropic(messages_gateway: GatewayServer) -> None:
    c = client(messages_gateway, "anthropic", api_key=API_KEY)
    with c.messages.stream(model="claude-3-opus-20240229", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert text == "Echo: What is your name"


def test_anthropic_error_passes_through(messages_gateway: GatewayServer) -> None:
    c = client(messages_gateway, "anthropic", api_key="sk-wrong")
    with pytest.raises(anthropic.AuthenticationError) as info:
        c.messages.create(model="claude-3-opus-20240229", max_tokens=64, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_messages_config_with_fallback_to_anthropic(
    messages_gateway: GatewayServer, openai_emulator: OpenAIEmulator, anthropic_emulator: AnthropicEmulator
) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "api_key": "sk-o"},
            {
                "provider": "anthropic",
                "api_key": API_KEY,
                "override_params": {"model": "claude-3-opus-20240229"},
            },
        ],
    }
    openai_emulator.inject(Fault(status=503, json={"error": {"message": "down"}}))
    c = anthropic.Anthropic(
        base_url=messages_gateway.url,
        api_key="unused",
        default_headers={"x-portkey-config": orjson.dumps(config).decode()},
        max_retries=0,
    )
    response = c.messages.with_raw_response.create(model="gpt-4o", max_tokens=64, messages=MESSAGES)
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert response.parse().content[0].text == "Echo: What is your name"  # type: ignore[union-attr]
    assert anthropic_emulator.last.json()["model"] == "claude-3-opus-20240229"
