"""The official ``openai`` SDK pointed at Wayport: every call a client makes, checked on the wire.

The client talks to a real Wayport server (``gateway``); Wayport forwards provider ``openai`` to
the OpenAI emulator, which answers ``"Echo: <last user message>"`` and records what it received.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import openai
import pytest

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault, Recorded

PROVIDER_HEADERS = {"x-portkey-provider": "openai"}
TOOLS: list[Any] = [
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
        "function": {
            "name": "get_time",
            "description": "Time in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
]


def client(gateway: GatewayServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.v1, api_key="sk-test", default_headers=PROVIDER_HEADERS, max_retries=0, **kwargs
    )


def async_client(gateway: GatewayServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gateway.v1, api_key="sk-test", default_headers=PROVIDER_HEADERS, max_retries=0
    )


def lower_headers(recorded: Recorded) -> dict[str, str]:
    return {k.lower(): v for k, v in recorded.headers.items()}


def assert_forwarded_cleanly(recorded: Recorded, key: str = "sk-test") -> None:
    """The provider got the caller's key and none of the gateway's own headers."""
    headers = lower_headers(recorded)
    assert headers["authorization"] == f"Bearer {key}"
    assert not [name for name in headers if name.startswith("x-portkey-")]


def messages(text: str) -> list[Any]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


# -- chat completions -------------------------------------------------------------------------


def test_chat_create_sync(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    completion = client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=messages("hello there"), temperature=0.2
    )

    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    assert len(openai_emulator.requests) == 1
    recorded = openai_emulator.last
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    body = recorded.json()
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.2
    assert body["messages"] == messages("hello there")
    assert_forwarded_cleanly(recorded)


async def test_chat_create_async(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    async with async_client(gateway) as aclient:
        completion = await aclient.chat.completions.create(model="gpt-4o", messages=messages("async hi"))

    assert completion.choices[0].message.content == "Echo: async hi"
    assert openai_emulator.last.json()["model"] == "gpt-4o"
    assert_forwarded_cleanly(openai_emulator.last)


def test_chat_stream_without_usage(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4o", messages=messages("stream me some words"), stream=True
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me some words"
    assert len(chunks) >= 6  # role chunk, one per word, finish chunk
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    body = openai_emulator.last.json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}  # Wayport asks, for the cost
    assert_forwarded_cleanly(openai_emulator.last)


def test_chat_stream_with_include_usage(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4o",
        messages=messages("count my tokens"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.completion_tokens == 4  # "Echo: count my tokens"
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "Echo: count my tokens"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert openai_emulator.last.json()["stream_options"] == {"include_usage": True}


async def test_chat_stream_async(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    async with async_client(gateway) as aclient:
        stream = await aclient.chat.completions.create(
            model="gpt-4o",
            messages=messages("async stream"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: async stream"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert_forwarded_cleanly(openai_emulator.last)


def test_chat_stream_is_relayed_incrementally(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    """Chunks reach the client as the provider sends them, not once the provider has finished."""
    openai_emulator.stream_gap_s = 0.05  # 6 events: about 0.3 s from first to last
    started = time.monotonic()
    arrivals: list[float] = []
    for _chunk in client(gateway).chat.completions.create(
        model="gpt-4o", messages=messages("one two three"), stream=True
    ):
        arrivals.append(time.monotonic() - started)

    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] >= 0.2


def test_chat_stream_helper_final_completion(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """``chat.completions.stream`` (the SDK's accumulating helper) assembles the same answer."""
    with client(gateway).chat.completions.stream(model="gpt-4o", messages=messages("helper path")) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == "Echo: helper path"
    assert openai_emulator.last.json()["stream"] is True


# -- tool calls -------------------------------------------------------------------------------


def test_tool_calls(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    completion = client(gateway).chat.completions.create(
        model="gpt-4o", messages=messages("weather and time in Paris?"), tools=TOOLS
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert [(c.id, c.type, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("call_0", "function", "get_weather"),
        ("call_1", "function", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [{"q": 0}, {"q": 1}]  # type: ignore[union-attr]
    assert openai_emulator.last.json()["tools"] == TOOLS


def test_tool_calls_stream(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4o", messages=messages("weather and time?"), tools=TOOLS, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] += delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments

    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert calls[0] == {"id": "call_0", "name": "get_weather", "arguments": '{"q":0}'}
    assert calls[1] == {"id": "call_1", "name": "get_time", "arguments": '{"q":1}'}
    assert openai_emulator.last.json()["stream"] is True


# -- legacy completions, embeddings, models ---------------------------------------------------


def test_legacy_completions(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    completion = client(gateway).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7
    )

    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Echo: Say this is a test"
    assert completion.choices[0].finish_reason == "stop"
    recorded = openai_emulator.last
    assert recorded.path == "/v1/completions"
    assert recorded.json() == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say this is a test",
        "max_tokens": 7,
    }
    assert_forwarded_cleanly(recorded)


def test_legacy_completions_stream(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    stream = client(gateway).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Paul Graham is", stream=True
    )
    chunks = list(stream)

    assert "".join(c.choices[0].text for c in chunks) == "Echo: Paul Graham is"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert openai_emulator.last.path == "/v1/completions"


def test_embeddings_list_input(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    inputs = ["first text", "second text", "third text"]
    result = client(gateway).embeddings.create(model="text-embedding-3-small", input=inputs)

    assert len(result.data) == 3
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 6
    recorded = openai_emulator.last
    assert recorded.path == "/v1/embeddings"
    body = recorded.json()
    assert body["input"] == inputs
    assert body["model"] == "text-embedding-3-small"
    assert_forwarded_cleanly(recorded)


def test_embeddings_dimensions(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    result = client(gateway).embeddings.create(
        model="text-embedding-3-small", input="one", dimensions=4, encoding_format="float"
    )

    assert len(result.data) == 1
    assert len(result.data[0].embedding) == 4
    assert openai_emulator.last.json()["dimensions"] == 4


def test_models_list(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    models = client(gateway).models.list()

    ids = [m.id for m in models]
    assert ids == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    recorded = openai_emulator.last
    assert (recorded.method, recorded.path) == ("GET", "/v1/models")
    assert_forwarded_cleanly(recorded)


# -- response headers -------------------------------------------------------------------------


def test_response_headers_generated_trace_id(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(model="gpt-4o", messages=messages("h"))

    trace_id = raw.headers["x-portkey-trace-id"]
    assert str(uuid.UUID(trace_id)) == trace_id
    assert raw.headers["x-portkey-provider"] == "openai"
    assert raw.headers["x-portkey-cache-status"] == "DISABLED"
    assert raw.headers["x-portkey-retry-attempt-count"] == "0"
    assert raw.headers["x-portkey-last-used-option-index"] == "config"
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().choices[0].message.content == "Echo: h"

    second = client(gateway).chat.completions.with_raw_response.create(model="gpt-4o", messages=messages("h"))
    assert second.headers["x-portkey-trace-id"] != trace_id


def test_response_headers_echoed_trace_id(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages("h"), extra_headers={"x-portkey-trace-id": "trace-abc-123"}
    )

    assert raw.headers["x-portkey-trace-id"] == "trace-abc-123"
    assert raw.headers["x-portkey-provider"] == "openai"
    # the trace id is the gateway's business, not the provider's
    assert "x-portkey-trace-id" not in lower_headers(openai_emulator.last)


def test_response_headers_on_stream(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    with client(gateway).chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=messages("streamed headers"),
        stream=True,
        extra_headers={"x-portkey-trace-id": "t-s"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-portkey-trace-id"] == "t-s"
        assert response.headers["x-portkey-provider"] == "openai"
        assert response.headers["x-portkey-cache-status"] == "DISABLED"
        assert response.headers["x-portkey-retry-attempt-count"] == "0"
        assert response.headers["x-portkey-last-used-option-index"] == "config"
        chunks = list(response.parse())

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: streamed headers"


def test_embeddings_and_models_carry_trace_header(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    sdk = client(gateway)
    embed = sdk.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["x"], extra_headers={"x-portkey-trace-id": "t-e"}
    )
    models = sdk.models.with_raw_response.list(extra_headers={"x-portkey-trace-id": "t-m"})

    assert embed.headers["x-portkey-trace-id"] == "t-e"
    assert embed.headers["x-portkey-provider"] == "openai"
    assert models.headers["x-portkey-trace-id"] == "t-m"
    assert models.headers["x-portkey-provider"] == "openai"


# -- errors -----------------------------------------------------------------------------------


def test_upstream_401_is_authentication_error(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(
        Fault(
            status=401,
            json={
                "error": {
                    "message": "Incorrect API key provided: sk-test.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
    )

    with pytest.raises(openai.AuthenticationError) as info:
        client(gateway).chat.completions.create(model="gpt-4o", messages=messages("hi"))

    error = info.value
    assert error.status_code == 401
    assert isinstance(error.body, dict)
    assert error.body["message"] == "openai error: Incorrect API key provided: sk-test."
    assert error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    payload = error.response.json()
    assert payload["provider"] == "openai"
    assert payload["error"]["message"].startswith("openai error:")
    assert error.response.headers["x-portkey-provider"] == "openai"
    assert len(openai_emulator.requests) == 1


def test_refused_key_is_authentication_error(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """The emulator's own key check (no injected fault): the SDK placeholder key is refused."""
    sdk = openai.OpenAI(
        base_url=gateway.v1, api_key="OPENAI_API_KEY", default_headers=PROVIDER_HEADERS, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as info:
        sdk.chat.completions.create(model="gpt-4o", messages=messages("hi"))

    assert isinstance(info.value.body, dict)
    assert info.value.body["message"].startswith("openai error:")
    assert info.value.response.json()["provider"] == "openai"


def test_upstream_429_is_rate_limit_error(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(
        Fault(
            status=429,
            json={
                "error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": None}
            },
            headers={"retry-after-ms": "10", "x-ratelimit-remaining-requests": "0"},
        )
    )

    with pytest.raises(openai.RateLimitError) as info:
        client(gateway).chat.completions.create(model="gpt-4o", messages=messages("hi"))

    error = info.value
    assert error.status_code == 429
    assert error.response.json() == {
        "error": {
            "message": "openai error: Rate limit reached",
            "type": "requests",
            "param": None,
            "code": None,
        },
        "provider": "openai",
    }
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.response.headers["x-portkey-retry-attempt-count"] == "0"
    assert len(openai_emulator.requests) == 1  # no retry without a retry config


async def test_upstream_error_async(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(
        Fault(status=400, json={"error": {"message": "bad thing", "type": "invalid_request_error"}})
    )

    async with async_client(gateway) as aclient:
        with pytest.raises(openai.BadRequestError) as info:
            await aclient.chat.completions.create(model="gpt-4o", messages=messages("hi"))

    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "openai error: bad thing"
    assert info.value.response.json()["provider"] == "openai"


def test_missing_provider_is_gateway_error(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    sdk = openai.OpenAI(base_url=gateway.v1, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="gpt-4o", messages=messages("hi"))

    assert info.value.response.json() == {
        "status": "failure",
        "message": "Either x-portkey-config or x-portkey-provider header is required",
    }
    assert openai_emulator.requests == []


# -- broken streams and non-JSON upstream errors ----------------------------------------------


def test_stream_cut_by_provider_raises(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """The provider drops the connection mid-stream: the SDK raises instead of returning half an answer."""
    openai_emulator.inject(Fault(stream_events=3, cut=True))
    stream = client(gateway).chat.completions.create(
        model="gpt-4o", messages=messages("a rather long answer please"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "Echo: a"  # what arrived before the cut: role chunk, "Echo:", " a"


def test_stream_ended_early_raises(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    """The provider closes the stream cleanly but without ``[DONE]``: still an error for the client."""
    openai_emulator.inject(Fault(stream_events=2))
    stream = client(gateway).chat.completions.create(model="gpt-4o", messages=messages("x y z"), stream=True)

    with pytest.raises(openai.APIError):
        list(stream)


def test_upstream_503_text_body(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(status=503, text="upstream is down", content_type="text/plain"))

    with pytest.raises(openai.InternalServerError) as info:
        client(gateway).chat.completions.create(model="gpt-4o", messages=messages("hi"))

    assert info.value.status_code == 503
    payload = info.value.response.json()
    assert payload["provider"] == "openai"
    assert payload["error"]["message"].startswith("openai error:")
    assert "upstream is down" in payload["error"]["message"]
