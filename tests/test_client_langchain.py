"""LangChain's ``ChatOpenAI`` and ``OpenAIEmbeddings`` pointed at Wayport with Portkey headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import portkey_ai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

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


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"noon in {city}"


def make_chat(gateway: GatewayServer, factory: str, **kwargs: Any) -> ChatOpenAI:
    create_headers = portkey_ai.createHeaders if factory == "portkey_ai" else wayport.createHeaders
    return ChatOpenAI(
        base_url=gateway.v1,
        api_key="unused",  # type: ignore[arg-type]
        model="gpt-4o-mini",
        default_headers=create_headers(api_key=GATEWAY_KEY, config=CONFIG),
        max_retries=0,
        **kwargs,
    )


@pytest.fixture(params=["portkey_ai", "wayport"])
def chat(request: pytest.FixtureRequest, gateway: GatewayServer) -> ChatOpenAI:
    return make_chat(gateway, request.param)


@pytest.fixture(params=["portkey_ai", "wayport"])
async def achat(request: pytest.FixtureRequest, gateway: GatewayServer) -> AsyncIterator[ChatOpenAI]:
    """LangChain shares one async httpx client per base URL across event loops, and every async
    test has its own loop: give each its own client, closed with it."""
    async with httpx.AsyncClient() as http:
        yield make_chat(gateway, request.param, http_async_client=http)


def assert_provider_request(recorded: Recorded, user_text: str, *, stream: bool) -> dict[str, Any]:
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    body: dict[str, Any] = recorded.json()
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
    return body


def test_invoke(chat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    message = chat.invoke([SystemMessage("Be brief."), HumanMessage(QUESTION)])

    assert isinstance(message, AIMessage)
    assert message.content == f"Echo: {QUESTION}"
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 5
    assert len(openai_emulator.requests) == 1
    body = assert_provider_request(openai_emulator.last, QUESTION, stream=False)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_stream(chat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    chunks = list(chat.stream(QUESTION))

    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len([c for c in chunks if c.content]) >= 3
    assert "".join(str(c.content) for c in chunks) == f"Echo: {QUESTION}"
    assert_provider_request(openai_emulator.last, QUESTION, stream=True)


async def test_ainvoke(achat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    message = await achat.ainvoke(QUESTION)

    assert message.content == f"Echo: {QUESTION}"
    assert_provider_request(openai_emulator.last, QUESTION, stream=False)


async def test_astream(achat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    chunks = [c async for c in achat.astream(QUESTION)]

    assert "".join(str(c.content) for c in chunks) == f"Echo: {QUESTION}"
    assert_provider_request(openai_emulator.last, QUESTION, stream=True)


def test_stream_usage(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """``stream_usage=True`` makes LangChain ask for ``include_usage``; the usage chunk comes through."""
    chat = ChatOpenAI(
        base_url=gateway.v1,
        api_key="unused",  # type: ignore[arg-type]
        model="gpt-4o",
        default_headers=wayport.createHeaders(config=CONFIG),
        stream_usage=True,
        max_retries=0,
    )
    total: AIMessageChunk | None = None
    for chunk in chat.stream(QUESTION):
        total = chunk if total is None else total + chunk

    assert total is not None
    assert total.content == f"Echo: {QUESTION}"
    assert total.usage_metadata is not None
    assert total.usage_metadata["output_tokens"] == 5
    assert openai_emulator.last.json()["stream_options"] == {"include_usage": True}


def test_batch_of_two(chat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    answers = chat.batch(["first question", "second question"])

    assert [a.content for a in answers] == ["Echo: first question", "Echo: second question"]
    assert len(openai_emulator.requests) == 2
    sent = sorted(r.json()["messages"][-1]["content"] for r in openai_emulator.requests)
    assert sent == ["first question", "second question"]
    for recorded in openai_emulator.requests:
        assert_provider_request(recorded, recorded.json()["messages"][-1]["content"], stream=False)


async def test_abatch_of_two(achat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    answers = await achat.abatch(["one", "two"])

    assert [a.content for a in answers] == ["Echo: one", "Echo: two"]
    assert len(openai_emulator.requests) == 2


def test_bind_tools(chat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    message = chat.bind_tools([get_weather, get_time]).invoke("Weather and time in Paris?")

    assert isinstance(message, AIMessage)
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert [(c["name"], c["args"], c["id"]) for c in message.tool_calls] == [
        ("get_weather", {"q": 0}, "call_0"),
        ("get_time", {"q": 1}, "call_1"),
    ]
    body = assert_provider_request(openai_emulator.last, "Weather and time in Paris?", stream=False)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]


def test_bind_tools_stream(chat: ChatOpenAI, openai_emulator: OpenAIEmulator) -> None:
    total: AIMessageChunk | None = None
    for chunk in chat.bind_tools([get_weather, get_time]).stream("Weather and time in Paris?"):
        total = chunk if total is None else total + chunk

    assert total is not None
    assert [(c["name"], c["args"], c["id"]) for c in total.tool_calls] == [
        ("get_weather", {"q": 0}, "call_0"),
        ("get_time", {"q": 1}, "call_1"),
    ]
    assert_provider_request(openai_emulator.last, "Weather and time in Paris?", stream=True)


def test_provider_header_and_own_key(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """No config: the provider key is LangChain's ``api_key`` and the request's own model is kept."""
    chat = ChatOpenAI(
        base_url=gateway.v1,
        api_key="sk-langchain",  # type: ignore[arg-type]
        model="gpt-4o-mini",
        default_headers=portkey_ai.createHeaders(provider="openai", trace_id="lc-1"),
        max_retries=0,
    )
    message = chat.invoke(QUESTION)

    assert message.content == f"Echo: {QUESTION}"
    assert message.response_metadata["model_name"] == "gpt-4o-mini"
    assert openai_emulator.last.json()["model"] == "gpt-4o-mini"
    headers = {k.lower(): v for k, v in openai_emulator.last.headers.items()}
    assert headers["authorization"] == "Bearer sk-langchain"


def test_embed_documents(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    embeddings = OpenAIEmbeddings(
        base_url=gateway.v1,
        api_key="unused",  # type: ignore[arg-type]
        model="text-embedding-3-small",
        default_headers=wayport.createHeaders(
            api_key=GATEWAY_KEY, config={"provider": "openai", "api_key": PROVIDER_KEY}
        ),
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    vectors = embeddings.embed_documents(["alpha text", "beta text", "gamma text"])

    assert len(vectors) == 3
    assert all(len(v) == 8 for v in vectors)
    assert len({tuple(v) for v in vectors}) == 3
    recorded = openai_emulator.last
    assert recorded.path == "/v1/embeddings"
    assert recorded.json()["input"] == ["alpha text", "beta text", "gamma text"]
    assert recorded.json()["model"] == "text-embedding-3-small"
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    assert headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not [name for name in headers if name.startswith("x-portkey-")]

    query = embeddings.embed_query("alpha text")
    assert query == vectors[0]


async def test_aembed_documents(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    async with httpx.AsyncClient() as http:
        embeddings = OpenAIEmbeddings(
            base_url=gateway.v1,
            api_key="sk-embed",  # type: ignore[arg-type]
            model="text-embedding-3-small",
            default_headers=portkey_ai.createHeaders(provider="openai"),
            check_embedding_ctx_length=False,
            dimensions=4,
            max_retries=0,
            http_async_client=http,
        )
        vectors = await embeddings.aembed_documents(["x", "y"])

    assert [len(v) for v in vectors] == [4, 4]
    assert openai_emulator.last.json()["dimensions"] == 4
