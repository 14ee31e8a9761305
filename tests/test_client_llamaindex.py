"""LlamaIndex's ``OpenAI`` LLM pointed at Wayport with Portkey headers: the configuration of the issue.

Only the base URL changes from a Portkey setup. The config carries the provider and its key and
overrides the model and ``max_tokens``; the gateway key travels in ``x-portkey-api-key`` and must
never reach the provider; neither must LlamaIndex's own (unused) API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import portkey_ai
import pytest
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import wayport
from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Recorded

PROVIDER_KEY = "sk-provider-from-config"
GATEWAY_KEY = "wp-gateway-key"
CONFIG: dict[str, Any] = {
    "provider": "openai",
    "api_key": PROVIDER_KEY,
    "override_params": {"model": "gpt-4o", "max_tokens": 64},
}
QUESTION = "What is your name"
PROMPT = "Paul Graham is "

HEADER_FACTORIES: dict[str, Callable[..., dict[str, str]]] = {
    "portkey_ai": portkey_ai.createHeaders,
    "wayport": wayport.createHeaders,
}


def make_llm(gateway: GatewayServer, factory: str, **kwargs: Any) -> OpenAI:
    headers = HEADER_FACTORIES[factory](api_key=GATEWAY_KEY, config=CONFIG)
    return OpenAI(
        model="gpt-4o",
        api_key="unused",
        api_base=gateway.v1,
        default_headers=headers,
        max_retries=0,
        **kwargs,
    )


@pytest.fixture(params=sorted(HEADER_FACTORIES))
def llm(request: pytest.FixtureRequest, gateway: GatewayServer) -> OpenAI:
    return make_llm(gateway, request.param)


@pytest.fixture(params=sorted(HEADER_FACTORIES))
async def allm(request: pytest.FixtureRequest, gateway: GatewayServer) -> AsyncIterator[OpenAI]:
    """For the async calls: an httpx client that lives and dies with the test's event loop."""
    async with httpx.AsyncClient() as http:
        yield make_llm(gateway, request.param, async_http_client=http)


def chat_messages() -> list[ChatMessage]:
    return [ChatMessage(role="user", content=QUESTION)]


def assert_chat_request(recorded: Recorded, user_text: str, *, stream: bool) -> None:
    """The provider got the overridden model and max_tokens, the config's key and nothing else."""
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    body = recorded.json()
    assert body["model"] == "gpt-4o"
    assert body["max_tokens"] == 64
    assert body["messages"][-1] == {"role": "user", "content": user_text}
    assert bool(body.get("stream")) is stream
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    assert headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not [name for name in headers if name.startswith("x-portkey-")]
    values = " ".join(headers.values())
    assert GATEWAY_KEY not in values
    assert "unused" not in values


def test_headers_factories_agree() -> None:
    assert wayport.createHeaders(api_key=GATEWAY_KEY, config=CONFIG) == portkey_ai.createHeaders(
        api_key=GATEWAY_KEY, config=CONFIG
    )


# -- sync -------------------------------------------------------------------------------------


def test_chat(llm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    response = llm.chat(chat_messages())

    assert response.message.content == f"Echo: {QUESTION}"
    assert str(response.message.role.value) == "assistant"
    assert len(openai_emulator.requests) == 1
    assert_chat_request(openai_emulator.last, QUESTION, stream=False)


def test_stream_chat(llm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    responses = list(llm.stream_chat(chat_messages()))

    deltas = [r.delta or "" for r in responses]
    assert len([d for d in deltas if d]) >= 3  # really streamed, word by word
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert responses[-1].message.content == f"Echo: {QUESTION}"
    assert_chat_request(openai_emulator.last, QUESTION, stream=True)


def test_complete(llm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    response = llm.complete(PROMPT)

    assert response.text == f"Echo: {PROMPT}"
    # gpt-4o is a chat model: LlamaIndex sends the prompt as one user message to /chat/completions
    assert_chat_request(openai_emulator.last, PROMPT, stream=False)
    assert len(openai_emulator.last.json()["messages"]) == 1


def test_stream_complete(llm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    responses = list(llm.stream_complete(PROMPT))

    assert "".join(r.delta or "" for r in responses) == f"Echo: {PROMPT}"
    assert responses[-1].text == f"Echo: {PROMPT}"
    assert_chat_request(openai_emulator.last, PROMPT, stream=True)


# -- async ------------------------------------------------------------------------------------


async def test_achat(allm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    response = await allm.achat(chat_messages())

    assert response.message.content == f"Echo: {QUESTION}"
    assert_chat_request(openai_emulator.last, QUESTION, stream=False)


async def test_astream_chat(allm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    responses = [r async for r in await allm.astream_chat(chat_messages())]

    assert "".join(r.delta or "" for r in responses) == f"Echo: {QUESTION}"
    assert responses[-1].message.content == f"Echo: {QUESTION}"
    assert_chat_request(openai_emulator.last, QUESTION, stream=True)


async def test_acomplete(allm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    response = await allm.acomplete(PROMPT)

    assert response.text == f"Echo: {PROMPT}"
    assert_chat_request(openai_emulator.last, PROMPT, stream=False)


async def test_astream_complete(allm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    responses = [r async for r in await allm.astream_complete(PROMPT)]

    assert "".join(r.delta or "" for r in responses) == f"Echo: {PROMPT}"
    assert responses[-1].text == f"Echo: {PROMPT}"
    assert_chat_request(openai_emulator.last, PROMPT, stream=True)


# -- variations -------------------------------------------------------------------------------


def test_chat_with_system_prompt_and_history(llm: OpenAI, openai_emulator: OpenAIEmulator) -> None:
    history = [
        ChatMessage(role="system", content="You are Wayport."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Echo: Hi"),
        ChatMessage(role="user", content=QUESTION),
    ]
    response = llm.chat(history)

    assert response.message.content == f"Echo: {QUESTION}"
    sent = openai_emulator.last.json()["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert_chat_request(openai_emulator.last, QUESTION, stream=False)


def test_provider_header_without_config(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """``createHeaders(provider=...)`` with the key in LlamaIndex's own ``api_key``: no override."""
    llm = OpenAI(
        model="gpt-4o-mini",
        api_key="sk-llama-key",
        api_base=gateway.v1,
        default_headers=wayport.createHeaders(provider="openai", trace_id="li-1"),
        max_retries=0,
        max_tokens=12,
    )
    response = llm.complete(PROMPT)

    assert response.text == f"Echo: {PROMPT}"
    body = openai_emulator.last.json()
    assert body["model"] == "gpt-4o-mini"
    assert body["max_tokens"] == 12
    assert {k.lower(): v for k, v in openai_emulator.last.headers.items()}[
        "authorization"
    ] == "Bearer sk-llama-key"
