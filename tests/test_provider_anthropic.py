"""The ``anthropic`` provider: OpenAI-shaped clients reach Anthropic's Messages API through Wayport.

The issue's config is sent by LlamaIndex and the openai SDK to a real Wayport whose Anthropic
base URL points at the emulator; the pure translation functions are tested underneath.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import wayport
from tests.conftest import GatewayServer
from tests.emulators.anthropic import API_KEY, AnthropicEmulator, InvalidRequest, error, validate
from tests.emulators.server import Fault
from wayport.errors import BadRequest
from wayport.gateway.retry import RetryRunner
from wayport.providers.anthropic import (
    AnthropicStreamTranslator,
    anthropic_error,
    anthropic_to_openai,
    build_anthropic_body,
)
from wayport.settings import Settings

CONFIG: dict[str, Any] = {
    "provider": "anthropic",
    "api_key": API_KEY,
    "override_params": {"model": "claude-3-opus-20240229", "max_tokens": 64},
}
QUESTION = "What is your name"
PROMPT = "Paul Graham is "
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def anthropic_emulator() -> Iterator[AnthropicEmulator]:
    emulator = AnthropicEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def anthropic_gateway(
    anthropic_emulator: AnthropicEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = Settings(
        auth=False,
        data_dir=Path(tmp_path_factory.mktemp("wayport-anthropic")),
        base_urls={"anthropic": anthropic_emulator.base_url},
        trusted_hosts=("127.0.0.1", "localhost"),
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.05)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "anthropic_emulator" in request.fixturenames:
        request.getfixturevalue("anthropic_emulator").reset()


def headers_for(config: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    return {**wayport.createHeaders(config=config or CONFIG), **extra}


def client(gateway: GatewayServer, config: dict[str, Any] | None = None, **extra: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.v1, api_key="unused", default_headers=headers_for(config, **extra), max_retries=0
    )


def llm(gateway: GatewayServer, **kwargs: Any) -> OpenAI:
    return OpenAI(
        model="gpt-4o",
        api_key="unused",
        api_base=gateway.v1,
        default_headers=headers_for(),
        max_retries=0,
        **kwargs,
    )


def sent(emulator: AnthropicEmulator) -> dict[str, Any]:
    """The last body the emulator received, after checking the auth Wayport sent with it."""
    recorded = emulator.last
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert not [name for name in headers if name.startswith("x-portkey-")]
    body: dict[str, Any] = recorded.json()
    return body


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# -- LlamaIndex with the config -------------------------------------------------------


def test_llamaindex_chat(anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator) -> None:
    response = llm(anthropic_gateway).chat([ChatMessage(role="user", content=QUESTION)])

    assert response.message.content == f"Echo: {QUESTION}"
    body = sent(anthropic_emulator)
    assert body["model"] == "claude-3-opus-20240229"
    assert body["max_tokens"] == 64
    assert body["messages"] == [user(QUESTION)]
    assert "stream" not in body


def test_llamaindex_stream_chat(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    responses = list(llm(anthropic_gateway).stream_chat([ChatMessage(role="user", content=QUESTION)]))

    deltas = [r.delta or "" for r in responses]
    assert len([d for d in deltas if d]) >= 3
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert sent(anthropic_emulator)["stream"] is True


def test_llamaindex_complete(anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator) -> None:
    assert llm(anthropic_gateway).complete(PROMPT).text == f"Echo: {PROMPT}"
    assert sent(anthropic_emulator)["messages"] == [user(PROMPT)]


def test_llamaindex_stream_complete(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    responses = list(llm(anthropic_gateway).stream_complete(PROMPT))

    assert "".join(r.delta or "" for r in responses) == f"Echo: {PROMPT}"
    assert responses[-1].text == f"Echo: {PROMPT}"


@pytest.fixture
async def allm(anthropic_gateway: GatewayServer) -> AsyncIterator[OpenAI]:
    async with httpx.AsyncClient() as http:
        yield llm(anthropic_gateway, async_http_client=http)


async def test_llamaindex_async_chat_and_stream(allm: OpenAI, anthropic_emulator: AnthropicEmulator) -> None:
    response = await allm.achat([ChatMessage(role="user", content=QUESTION)])
    assert response.message.content == f"Echo: {QUESTION}"

    streamed = [r async for r in await allm.astream_complete(PROMPT)]
    assert "".join(r.delta or "" for r in streamed) == f"Echo: {PROMPT}"
    assert sent(anthropic_emulator)["stream"] is True


def test_llamaindex_system_prompt_and_history_are_hoisted(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    history = [
        ChatMessage(role="system", content="You are Wayport."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Echo: Hi"),
        ChatMessage(role="user", content=QUESTION),
    ]
    assert llm(anthropic_gateway).chat(history).message.content == f"Echo: {QUESTION}"

    body = sent(anthropic_emulator)
    assert body["system"] == [{"type": "text", "text": "You are Wayport."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


# -- tools with the openai SDK ----------------------------------------------------------------


def test_two_parallel_tool_calls(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    completion = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[user("weather and time?")],
        tools=TOOLS,
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("toolu_00", "get_weather", '{"q":0}'),
        ("toolu_01", "get_time", '{"q":1}'),
    ]
    tools = sent(anthropic_emulator)["tools"]
    assert tools[0] == {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    assert "tool_choice" not in sent(anthropic_emulator)


def test_streamed_tool_calls_carry_openai_indexes(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    stream = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[user("weather and time?")],
        tools=TOOLS,
        stream=True,
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"ids": [], "name": None, "arguments": ""})
            if delta.id:
                call["ids"].append(delta.id)
            if delta.function and delta.function.name:
                call["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
    assert calls == {
        0: {"ids": ["toolu_00"], "name": "get_weather", "arguments": '{"q":0}'},
        1: {"ids": ["toolu_01"], "name": "get_time", "arguments": '{"q":1}'},
    }
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id == "msg_emu01"


def test_tool_results_go_back_as_one_user_turn(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    sdk = client(anthropic_gateway)
    first = sdk.chat.completions.create(model="gpt-4o", messages=[user("weather and time?")], tools=TOOLS)
    calls = first.choices[0].message.tool_calls or []
    messages: list[Any] = [
        user("weather and time?"),
        first.choices[0].message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)),
    ]
    follow_up = sdk.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)

    assert follow_up.choices[0].message.content == "Echo: tool results received"
    assert follow_up.choices[0].finish_reason == "stop"
    turns = sent(anthropic_emulator)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[1]["content"]] == ["tool_use", "tool_use"]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_00", "content": "result 0"},
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "result 1"},
    ]


def test_parallel_tool_calls_false_and_required(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    completion = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[user("weather?")],
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
    )

    assert len(completion.choices[0].message.tool_calls or []) == 1
    assert sent(anthropic_emulator)["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_named_tool_choice(anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator) -> None:
    completion = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[user("time?")],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )

    assert [c.function.name for c in completion.choices[0].message.tool_calls or []] == ["get_time"]
    assert sent(anthropic_emulator)["tool_choice"] == {"type": "tool", "name": "get_time"}


# -- images, response_format, parameters ------------------------------------------------------


def test_images_as_base64_and_url_sources(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    completion = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": content}],
    )

    assert completion.choices[0].message.content == "Echo: Describe"
    assert sent(anthropic_emulator)["messages"][0]["content"] == [
        {"type": "text", "text": "Describe"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_json_schema_uses_structured_outputs(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "additionalProperties": False}
    completion = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[user("hi")],
        response_format={"type": "json_schema", "json_schema": {"name": "echo", "schema": schema}},
    )

    assert orjson.loads(completion.choices[0].message.content or "") == {"echo": "Echo: hi"}
    assert sent(anthropic_emulator)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_json_object_asks_in_the_system_prompt(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    client(anthropic_gateway).chat.completions.create(
        model="gpt-4o", messages=[user("hi")], response_format={"type": "json_object"}
    )

    system = sent(anthropic_emulator)["system"]
    assert "JSON object" in system[-1]["text"]


def test_sampling_parameters_are_mapped(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    client(anthropic_gateway, {"provider": "anthropic", "api_key": API_KEY}).chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[user("hi")],
        temperature=1.5,
        top_p=0.9,
        stop="END",
        user="user-7",
        seed=3,
        extra_body={"top_k": 5},
    )

    body = sent(anthropic_emulator)
    assert body["model"] == "claude-sonnet-4-6"
    assert body["max_tokens"] == 4096  # Anthropic requires it; the client sent none
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert (body["top_p"], body["top_k"]) == (0.9, 5)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-7"}
    assert "seed" not in body


def test_max_completion_tokens_is_max_tokens(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    client(anthropic_gateway, {"provider": "anthropic", "api_key": API_KEY}).chat.completions.create(
        model="claude-sonnet-4-6", messages=[user("hi")], max_completion_tokens=77
    )
    assert sent(anthropic_emulator)["max_tokens"] == 77


# -- usage and finish reasons -----------------------------------------------------------------


def test_usage_counts_cache_tokens_in_the_prompt(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    system = {
        "role": "system",
        "content": [{"type": "text", "text": "Long", "cache_control": {"type": "ephemeral"}}],
    }
    r = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        headers=headers_for(),
        json={"model": "gpt-4o", "messages": [system, user("hi there")]},
    )

    assert r.status_code == 200
    assert sent(anthropic_emulator)["system"][0]["cache_control"] == {"type": "ephemeral"}
    usage = r.json()["usage"]
    # the emulator answers input 2 (uncached), cache write 20, cache read 100, output 3
    assert usage["prompt_tokens"] == 2 + 20 + 100
    assert usage["completion_tokens"] == 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100, "cache_creation_tokens": 20}
    assert r.json()["provider"] == "anthropic"
    assert r.json()["id"] == "msg_emu01"


@pytest.mark.parametrize(
    ("extra", "strict", "expected"),
    [
        ({"stop": ["name"]}, True, "stop"),
        ({"stop": ["name"]}, False, "stop_sequence"),
        ({"max_tokens": 2}, True, "length"),
        ({"max_tokens": 2}, False, "max_tokens"),
        ({}, False, "end_turn"),
    ],
)
def test_finish_reasons_strict_and_raw(
    anthropic_gateway: GatewayServer, extra: dict[str, Any], strict: bool, expected: str
) -> None:
    headers = {} if strict else {"x-portkey-strict-open-ai-compliance": "false"}
    config = {"provider": "anthropic", "api_key": API_KEY}
    completion = client(anthropic_gateway, config, **headers).chat.completions.create(
        model="claude-sonnet-4-6", messages=[user(QUESTION)], **extra
    )
    assert completion.choices[0].finish_reason == expected


def test_thinking_blocks_in_non_strict_mode(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body = {"model": "claude-sonnet-4-6", "messages": [user("hi")], "thinking": thinking}
    lenient = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        headers=headers_for(
            {"provider": "anthropic", "api_key": API_KEY}, **{"x-portkey-strict-open-ai-compliance": "false"}
        ),
        json=body,
    ).json()
    strict = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        headers=headers_for({"provider": "anthropic", "api_key": API_KEY}),
        json=body,
    ).json()

    assert sent(anthropic_emulator)["thinking"] == thinking
    message = lenient["choices"][0]["message"]
    assert message["content"] == "Echo: hi"
    assert message["content_blocks"] == [
        {"type": "thinking", "thinking": "Let me think about that.", "signature": "c2lnbmF0dXJl"},
        {"type": "text", "text": "Echo: hi"},
    ]
    assert lenient["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert "content_blocks" not in strict["choices"][0]["message"]


def test_thinking_deltas_stream_as_content_blocks_when_not_strict(anthropic_gateway: GatewayServer) -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "messages": [user("hi")],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    headers = headers_for(
        {"provider": "anthropic", "api_key": API_KEY}, **{"x-portkey-strict-open-ai-compliance": "false"}
    )
    r = httpx.post(anthropic_gateway.v1 + "/chat/completions", headers=headers, json=body)

    chunks = [orjson.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    blocks = [b for c in chunks for b in c["choices"][0]["delta"].get("content_blocks", [])]
    assert {"index": 0, "delta": {"thinking": "Let me think about that."}} in blocks
    assert {"index": 0, "delta": {"signature": "c2lnbmF0dXJl"}} in blocks
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Echo: hi"
    assert chunks[-1]["choices"][0]["finish_reason"] == "end_turn"


# -- streams ----------------------------------------------------------------------------------


def test_stream_usage_only_when_asked(anthropic_gateway: GatewayServer) -> None:
    sdk = client(anthropic_gateway)
    with_usage = list(
        sdk.chat.completions.create(
            model="gpt-4o", messages=[user(QUESTION)], stream=True, stream_options={"include_usage": True}
        )
    )
    without = list(sdk.chat.completions.create(model="gpt-4o", messages=[user(QUESTION)], stream=True))

    last = with_usage[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (4, 5)
    assert all(c.usage is None for c in with_usage[:-1])
    assert with_usage[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in without)
    assert without[-1].choices[0].finish_reason == "stop"


def test_error_event_mid_stream_raises(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.inject(
        Fault(status=200, json=error("overloaded_error", "Overloaded"), stream_events=5)
    )
    stream = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o", messages=[user(QUESTION)], stream=True
    )

    received: list[str] = []
    with pytest.raises(openai.APIError, match="anthropic error: Overloaded"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Echo: What"


def test_stream_cut_before_message_stop_raises(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.inject(Fault(stream_events=6, cut=True))
    stream = client(anthropic_gateway).chat.completions.create(
        model="gpt-4o", messages=[user(QUESTION)], stream=True
    )

    with pytest.raises(openai.APIError):
        list(stream)


# -- errors and auth --------------------------------------------------------------------------


def test_wrong_key_is_a_401_in_openai_shape(anthropic_gateway: GatewayServer) -> None:
    sdk = client(anthropic_gateway, {**CONFIG, "api_key": "sk-ant-wrong"})
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=[user("hi")])

    assert caught.value.status_code == 401
    assert caught.value.body == {
        "message": "anthropic error: invalid x-api-key",
        "type": "authentication_error",
        "param": None,
        "code": None,
    }


def test_overloaded_keeps_status_and_retry_after(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.inject(
        Fault(status=529, json=error("overloaded_error", "Overloaded"), headers={"retry-after": "7"})
    )
    r = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        headers=headers_for(),
        json={"model": "gpt-4o", "messages": [user("hi")]},
    )

    assert r.status_code == 529
    assert r.headers["retry-after"] == "7"
    assert r.json() == {
        "error": {
            "message": "anthropic error: Overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": None,
        },
        "provider": "anthropic",
    }


def test_rate_limit_through_the_sdk(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.inject(
        Fault(status=429, json=error("rate_limit_error", "Number of requests exceeded"))
    )
    with pytest.raises(openai.RateLimitError, match="anthropic error: Number of requests exceeded"):
        client(anthropic_gateway).chat.completions.create(model="gpt-4o", messages=[user("hi")])


def test_invalid_request_reaches_the_client(anthropic_gateway: GatewayServer) -> None:
    # an assistant tool call whose result never comes: the API (and the emulator) refuse it
    messages: list[Any] = [
        user("hi"),
        {"role": "tool", "tool_call_id": "toolu_unknown", "content": "x"},
    ]
    with pytest.raises(openai.BadRequestError, match="tool_use_id"):
        client(anthropic_gateway).chat.completions.create(model="gpt-4o", messages=messages)


def test_version_and_beta_from_the_config_and_headers(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    config = {**CONFIG, "anthropic_version": "2023-01-01", "anthropic_beta": "tools-2024-04-04"}
    client(anthropic_gateway, config).chat.completions.create(model="gpt-4o", messages=[user("hi")])
    headers = {k.lower(): v for k, v in anthropic_emulator.last.headers.items()}
    assert (headers["anthropic-version"], headers["anthropic-beta"]) == ("2023-01-01", "tools-2024-04-04")

    httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        headers={
            "x-portkey-provider": "anthropic",
            "authorization": f"Bearer {API_KEY}",
            "x-portkey-anthropic-beta": "prompt-caching-2024-07-31",
        },
        json={"model": "claude-sonnet-4-6", "messages": [user("hi")]},
    )
    headers = {k.lower(): v for k, v in anthropic_emulator.last.headers.items()}
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["anthropic-version"] == "2023-06-01"


def test_missing_key_is_a_400(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    r = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        headers={"x-portkey-provider": "anthropic"},
        json={"model": "claude-sonnet-4-6", "messages": [user("hi")]},
    )
    assert r.status_code == 400
    assert "api_key" in r.json()["message"]
    assert anthropic_emulator.requests == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/completions", {"model": "claude-2.1", "prompt": "hi"}),
        ("/embeddings", {"model": "claude-2.1", "input": "hi"}),
    ],
)
def test_completions_and_embeddings_are_not_supported(
    anthropic_gateway: GatewayServer, path: str, body: dict[str, Any]
) -> None:
    r = httpx.post(anthropic_gateway.v1 + path, headers=headers_for(), json=body)
    assert r.status_code == 400
    assert "not supported by anthropic" in r.json()["message"]


def test_passthrough_uses_anthropic_auth(
    anthropic_gateway: GatewayServer, anthropic_emulator: AnthropicEmulator
) -> None:
    r = httpx.get(anthropic_gateway.v1 + "/models", headers=headers_for())
    assert r.status_code == 200
    assert r.json()["data"][0]["id"] == "claude-3-opus-20240229"
    assert anthropic_emulator.last.headers["x-api-key"] == API_KEY


# -- the request translation ------------------------------------------------------------------


def test_system_messages_anywhere_are_hoisted_in_order() -> None:
    body = build_anthropic_body(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "one"},
                user("hi"),
                {"role": "developer", "content": [{"type": "text", "text": "two"}]},
                user("again"),
            ],
        }
    )
    assert body["system"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}
    ]


def test_tool_results_and_following_user_text_share_one_turn() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    body = build_anthropic_body(
        {
            "model": "m",
            "messages": [
                user("go"),
                {"role": "assistant", "content": "Calling.", "tool_calls": [call, {**call, "id": "c2"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "r2"}]},
                user("thanks"),
            ],
        }
    )
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "f", "input": {"a": 1}},
    ]
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
            {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "r2"}]},
            {"type": "text", "text": "thanks"},
        ],
    }
    validate(body)


def test_cache_control_is_kept() -> None:
    mark = {"type": "ephemeral"}
    body = build_anthropic_body(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "s", "cache_control": mark}]},
                {"role": "user", "content": "long document", "cache_control": mark},
            ],
            "tools": [{**TOOLS[0], "cache_control": mark}],
        }
    )
    assert body["system"][0]["cache_control"] == mark
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "long document", "cache_control": mark}
    ]
    assert body["tools"][0]["cache_control"] == mark


def test_vertex_body_has_no_model_and_tool_choice_none_keeps_tools() -> None:
    body = build_anthropic_body(
        {"model": "m", "messages": [user("hi")], "tools": TOOLS, "tool_choice": "none", "stream": True},
        include_model=False,
    )
    assert "model" not in body
    assert body["tool_choice"] == {"type": "none"}
    assert body["stream"] is True


@pytest.mark.parametrize(
    "params",
    [
        {"model": "m", "messages": [user("hi")], "n": 2},
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"role": "function", "content": "x"}]},
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
                    ],
                }
            ],
        },
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
        },
    ],
)
def test_untranslatable_requests_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        build_anthropic_body(params)


TEXT = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), TEXT), min_size=1, max_size=12))
def test_any_text_conversation_translates_without_losing_text(turns: list[tuple[str, str]]) -> None:
    messages = [{"role": role, "content": text} for role, text in turns]
    if all(role == "system" for role, _ in turns):
        messages.append(user("x"))
    body = build_anthropic_body({"model": "m", "messages": messages})

    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))  # strictly alternating

    def texts(content: Any) -> list[str]:
        return [content] if isinstance(content, str) else [b["text"] for b in content]

    got = [(m["role"], t) for m in body["messages"] for t in texts(m["content"])]
    assert got == [(m["role"], m["content"]) for m in messages if m["role"] != "system"]
    assert [b["text"] for b in body.get("system", [])] == [t for r, t in turns if r == "system"]
    try:
        validate(body)
    except InvalidRequest as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(str(exc))


# -- the response, stream and error translation -----------------------------------------------


def test_response_with_text_and_tool_use() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "Let me "},
            {"type": "text", "text": "check."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    out = anthropic_to_openai(data, provider="anthropic", strict=True)

    message = out["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert message["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"city":"Paris"}'}}
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["total_tokens"] == 12
    assert (out["id"], out["model"], out["provider"]) == ("msg_1", "claude", "anthropic")


@pytest.mark.parametrize(
    ("reason", "strict_value"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_finish_reason_table(reason: str, strict_value: str) -> None:
    data = {"id": "m", "model": "c", "content": [], "stop_reason": reason, "usage": {}}
    assert (
        anthropic_to_openai(data, provider="anthropic", strict=True)["choices"][0]["finish_reason"]
        == strict_value
    )
    assert (
        anthropic_to_openai(data, provider="anthropic", strict=False)["choices"][0]["finish_reason"] == reason
    )


def test_errors_in_anthropic_google_and_unknown_shapes() -> None:
    assert orjson.loads(anthropic_error("anthropic", orjson.dumps(error("not_found_error", "model: x")))) == {
        "error": {
            "message": "anthropic error: model: x",
            "type": "not_found_error",
            "param": None,
            "code": None,
        },
        "provider": "anthropic",
    }
    google = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    assert orjson.loads(anthropic_error("vertex-ai", orjson.dumps(google)))["error"] == {
        "message": "vertex-ai error: Resource exhausted",
        "type": "RESOURCE_EXHAUSTED",
        "param": None,
        "code": 429,
    }
    garbage = orjson.loads(anthropic_error("anthropic", b"<html>bad gateway</html>"))
    assert garbage["error"]["message"].startswith("anthropic error: Invalid response received from anthropic")


def sse_of(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(f"event: {n}\ndata: ".encode() + orjson.dumps(p) + b"\n\n" for n, p in events)


def tool_stream() -> bytes:
    """Text in block 0, then two tool_use blocks at Anthropic indexes 1 and 2."""
    from tests.emulators.anthropic import stream_events

    message = {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 30, "cache_read_input_tokens": 4},
    }
    return sse_of(stream_events(message))


def chunks_of(raw: bytes) -> list[Any]:
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    assert events[-1] == "data: [DONE]"
    return [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]


def without_time(chunks: list[Any]) -> list[Any]:
    return [{k: v for k, v in c.items() if k != "created"} for c in chunks]


def test_stream_translation_maps_block_indexes_to_tool_indexes() -> None:
    params = {"model": "m", "stream_options": {"include_usage": True}}
    translator = AnthropicStreamTranslator(params, provider="anthropic", strict=True)
    chunks = chunks_of(translator.feed(tool_stream()) + translator.close())

    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    heads = [t for d in deltas for t in d.get("tool_calls", []) if "id" in t]
    assert [(t["index"], t["id"], t["function"]["name"]) for t in heads] == [
        (0, "toolu_a", "get_weather"),
        (1, "toolu_b", "get_time"),
    ]
    arguments = {0: "", 1: ""}
    for d in deltas:
        for t in d.get("tool_calls", []):
            arguments[t["index"]] += t["function"]["arguments"]
    assert arguments == {0: '{"city":"Paris"}', 1: "{}"}
    assert "".join(d.get("content") or "" for d in deltas) == "Checking both."
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 14
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert {c["id"] for c in chunks} == {"msg_x"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(tool_stream()) - 1), max_size=20))
def test_stream_translation_does_not_depend_on_how_bytes_are_split(cuts: list[int]) -> None:
    raw = tool_stream()
    whole = AnthropicStreamTranslator({"model": "m"}, provider="anthropic", strict=True)
    expected = chunks_of(whole.feed(raw) + whole.close())
    pieces = AnthropicStreamTranslator({"model": "m"}, provider="anthropic", strict=True)
    bounds = [0, *sorted(set(cuts)), len(raw)]
    out = b"".join(pieces.feed(raw[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)) + pieces.close()
    assert without_time(chunks_of(out)) == without_time(expected)


def test_stream_error_event_and_early_eof() -> None:
    translator = AnthropicStreamTranslator({"model": "m"}, provider="anthropic", strict=True)
    start = tool_stream().split(b"event: content_block_stop")[0]
    out = translator.feed(start + sse_of([("error", error("overloaded_error", "Overloaded"))]))
    assert out.endswith(
        b'data: {"error":{"message":"anthropic error: Overloaded","type":"overloaded_error",'
        b'"param":null,"code":null}}\n\ndata: [DONE]\n\n'
    )
    assert translator.feed(b"event: message_stop\ndata: {}\n\n") == b"" and translator.close() == b""

    cut = AnthropicStreamTranslator({"model": "m"}, provider="anthropic", strict=True)
    cut.feed(start)
    tail = cut.close()
    assert b"before its message_stop event" in tail and tail.endswith(b"data: [DONE]\n\n")
