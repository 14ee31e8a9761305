"""Fallback across providers with different wire formats: LlamaIndex through Wayport, OpenAI
first, Anthropic when OpenAI answers 429 or 503 (reference config B of portkey.md §1.6)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import wayport
from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.anthropic import API_KEY, AnthropicEmulator
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from wayport.gateway.retry import RetryRunner

# Config B of the reference, with the emulators' keys.
CONFIG_B: dict[str, Any] = {
    "strategy": {"mode": "fallback", "on_status_codes": [429, 503]},
    "override_params": {"temperature": 0},
    "targets": [
        {"provider": "openai", "api_key": "sk-openai", "override_params": {"model": "gpt-4o-mini"}},
        {
            "provider": "anthropic",
            "api_key": API_KEY,
            "override_params": {"model": "claude-3-5-sonnet-latest", "max_tokens": 512},
        },
    ],
}
MESSAGES = [ChatMessage(role="user", content="What is your name")]


@pytest.fixture(scope="module")
def anthropic_emulator() -> Iterator[AnthropicEmulator]:
    emulator = AnthropicEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def two_provider_gateway(
    openai_emulator: OpenAIEmulator,
    anthropic_emulator: AnthropicEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    settings = emulator_settings(openai_emulator, Path(tmp_path_factory.mktemp("fallback")))
    settings = replace(settings, base_urls={**settings.base_urls, "anthropic": anthropic_emulator.base_url})
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.02)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_anthropic(request: pytest.FixtureRequest) -> None:
    if "anthropic_emulator" in request.fixturenames:
        request.getfixturevalue("anthropic_emulator").reset()


def llm(gateway: GatewayServer) -> OpenAI:
    return OpenAI(
        model="gpt-4o",
        api_key="unused",
        api_base=gateway.v1,
        default_headers=wayport.createHeaders(config=CONFIG_B),
        max_retries=0,
    )


@pytest.mark.parametrize("status", [429, 503])
def test_openai_failure_falls_over_to_anthropic(
    two_provider_gateway: GatewayServer,
    openai_emulator: OpenAIEmulator,
    anthropic_emulator: AnthropicEmulator,
    status: int,
) -> None:
    openai_emulator.inject(Fault(status=status, json={"error": {"message": "busy", "type": "server_error"}}))
    answer = llm(two_provider_gateway).chat(MESSAGES)
    assert answer.message.content == "Echo: What is your name"
    sent = anthropic_emulator.last.json()
    assert sent["model"] == "claude-3-5-sonnet-latest" and sent["max_tokens"] == 512
    assert sent["temperature"] == 0  # inherited override_params
    assert openai_emulator.last.json()["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("status", [429, 503])
def test_streaming_failure_falls_over_to_anthropic(
    two_provider_gateway: GatewayServer, openai_emulator: OpenAIEmulator, status: int
) -> None:
    openai_emulator.inject(Fault(status=status, json={"error": {"message": "busy", "type": "server_error"}}))
    text = "".join(r.delta or "" for r in llm(two_provider_gateway).stream_chat(MESSAGES))
    assert text == "Echo: What is your name"


def test_status_not_listed_is_returned(
    two_provider_gateway: GatewayServer,
    openai_emulator: OpenAIEmulator,
    anthropic_emulator: AnthropicEmulator,
) -> None:
    openai_emulator.inject(Fault(status=400, json={"error": {"message": "bad request", "type": "invalid"}}))
    with pytest.raises(Exception, match="openai error: bad request"):
        llm(two_provider_gateway).chat(MESSAGES)
    assert anthropic_emulator.requests == []


def test_healthy_primary_answers(
    two_provider_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    assert llm(two_provider_gateway).chat(MESSAGES).message.content == "Echo: What is your name"
    assert anthropic_emulator.requests == []
