"""Provider ``cohere``: OpenAI-shaped clients reach Cohere's v2 API through Wayport.

A real Wayport forwards to the Cohere emulator (``tests/emulators/cohere.py``), which checks the
native request and answers ``"Echo: <last user text>"`` in Cohere's JSON and SSE formats.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from tests.conftest import GatewayServer
from tests.emulators.cohere import API_KEY, PROMPT_OVERHEAD, THINKING, TOOL_PLAN, CohereEmulator, embed_vector
from tests.emulators.server import Fault
from tests.provider_harness import (
    config_headers,
    llamaindex_llm,
    openai_client,
    provider_gateway,
    sse_payloads,
)
from tests.provider_harness import raw_stream as stream_payloads
from wayport.errors import BadRequest, ProviderError
from wayport.providers.base import Endpoint, Secret, Target
from wayport.providers.cohere import (
    CohereAdapter,
    CohereStream,
    chat_request,
    chat_response,
    cohere_usage,
    embed_request,
    embed_response,
)

MODEL = "command-a-03-2025"
CONFIG: dict[str, Any] = {
    "provider": "cohere",
    "api_key": API_KEY,
    "override_params": {"model": MODEL, "max_tokens": 64},
}
QUESTION = "What is your name"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]
PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(scope="module")
def emulator() -> Iterator[CohereEmulator]:
    emulator = CohereEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def cohere_gateway(
    emulator: CohereEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    with provider_gateway(tmp_path_factory.mktemp("wayport-cohere"), "cohere", emulator.base_url) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(emulator: CohereEmulator) -> None:
    emulator.reset()


def headers(config: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    return config_headers(config or CONFIG, **extra)


def client(gateway: GatewayServer, config: dict[str, Any] | None = None, **extra: str) -> openai.OpenAI:
    return openai_client(gateway, config or CONFIG, **extra)


def llm(gateway: GatewayServer, **kwargs: Any) -> OpenAI:
    return llamaindex_llm(gateway, CONFIG, **kwargs)


def raw_stream(gateway: GatewayServer, body: dict[str, Any], **extra: str) -> list[Any]:
    return stream_payloads(gateway, headers(**extra), body)


def ask(text: str = QUESTION) -> list[Any]:
    return [{"role": "user", "content": text}]


# -- LlamaIndex, the configuration of the issue ----------------------------------------------------


def assert_native_chat(emulator: CohereEmulator, text: str, *, stream: bool) -> None:
    recorded = emulator.last
    assert (recorded.method, recorded.path) == ("POST", "/v2/chat")
    assert recorded.headers["Authorization"] == f"Bearer {API_KEY}"
    assert not [h for h in recorded.headers if h.lower().startswith("x-portkey-")]
    body = recorded.json()
    assert body["model"] == MODEL and body["max_tokens"] == 64
    assert body["messages"][-1] == {"role": "user", "content": text}
    assert body.get("stream", False) is stream


def test_llamaindex_chat(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    response = llm(cohere_gateway).chat([ChatMessage(role="user", content=QUESTION)])

    assert response.message.content == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=False)


def test_llamaindex_stream_chat(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    responses = list(llm(cohere_gateway).stream_chat([ChatMessage(role="user", content=QUESTION)]))

    deltas = [r.delta for r in responses if r.delta]
    assert len(deltas) >= 3
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=True)


def test_llamaindex_complete(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    assert llm(cohere_gateway).complete("Paul Graham is ").text == "Echo: Paul Graham is "
    assert_native_chat(emulator, "Paul Graham is ", stream=False)


def test_llamaindex_stream_complete(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    responses = list(llm(cohere_gateway).stream_complete("Paul Graham is "))

    assert responses[-1].text == "Echo: Paul Graham is "
    assert_native_chat(emulator, "Paul Graham is ", stream=True)


async def test_llamaindex_async_chat_and_stream(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    async with httpx.AsyncClient() as http:
        model = llm(cohere_gateway, async_http_client=http)
        response = await model.achat([ChatMessage(role="user", content=QUESTION)])
        streamed = [r async for r in await model.astream_chat([ChatMessage(role="user", content=QUESTION)])]

    assert response.message.content == f"Echo: {QUESTION}"
    assert streamed[-1].message.content == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=True)


def test_llamaindex_system_prompt_and_history(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    history = [
        ChatMessage(role="system", content="You are Wayport."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Echo: Hi"),
        ChatMessage(role="user", content=QUESTION),
    ]
    assert llm(cohere_gateway).chat(history).message.content == f"Echo: {QUESTION}"
    sent = emulator.last.json()["messages"]
    assert sent[:3] == [
        {"role": "system", "content": "You are Wayport."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Echo: Hi"},
    ]


# -- tools with the openai SDK ---------------------------------------------------------------------


def test_parallel_tool_calls_then_tool_results(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    sdk = client(cohere_gateway)
    first = sdk.chat.completions.create(model="x", messages=ask("Weather and time in Paris?"), tools=TOOLS)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"q": 0}, {"q": 1}]
    assert emulator.last.json()["tools"] == [
        {"type": "function", "function": {k: t["function"][k] for k in ("name", "description", "parameters")}}
        for t in TOOLS
    ]

    history: list[Any] = [
        *ask("Weather and time in Paris?"),
        choice.message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)),
    ]
    second = sdk.chat.completions.create(model="x", messages=history, tools=TOOLS)

    assert second.choices[0].message.content == "Echo: tool results"
    sent = emulator.last.json()["messages"]
    assert sent[1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in calls
        ],
    }
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "result 0"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "result 1"},
    ]


def test_streamed_parallel_tool_calls(cohere_gateway: GatewayServer) -> None:
    chunks = raw_stream(cohere_gateway, {"model": "x", "messages": ask("Weather?"), "tools": TOOLS})

    assert chunks[-1] == "[DONE]"
    events = chunks[:-1]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len({(e["id"], e["created"], e["model"]) for e in events}) == 1
    fragments = [tc for e in events for tc in e["choices"][0]["delta"].get("tool_calls", [])]
    firsts = [f for f in fragments if "id" in f]
    assert [(f["index"], f["function"]["name"], f["type"]) for f in firsts] == [
        (0, "get_weather", "function"),
        (1, "get_time", "function"),
    ]
    assert all("id" not in f and "name" not in f["function"] for f in fragments if f not in firsts)
    for index in (0, 1):
        arguments = "".join(f["function"].get("arguments", "") for f in fragments if f["index"] == index)
        assert orjson.loads(arguments) == {"q": index}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not any(e["choices"][0]["delta"].get("content") for e in events)  # the tool plan is no content


def test_streamed_tool_calls_through_the_sdk(cohere_gateway: GatewayServer) -> None:
    stream = client(cohere_gateway).chat.completions.create(
        model="x", messages=ask("Weather?"), tools=TOOLS, stream=True
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if call.function and call.function.name:
                names[call.index] = call.function.name
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    assert names == {0: "get_weather", 1: "get_time"}
    assert {i: orjson.loads(a) for i, a in arguments.items()} == {0: {"q": 0}, 1: {"q": 1}}


@pytest.mark.parametrize(
    ("choice", "native", "tools"),
    [
        ("required", "REQUIRED", ["get_weather", "get_time"]),
        ("none", "NONE", ["get_weather", "get_time"]),
        ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
    ],
)
def test_tool_choice(
    cohere_gateway: GatewayServer, emulator: CohereEmulator, choice: Any, native: str, tools: list[str]
) -> None:
    response = client(cohere_gateway).chat.completions.create(
        model="x", messages=ask("Weather?"), tools=TOOLS, tool_choice=choice
    )
    sent = emulator.last.json()
    assert sent["tool_choice"] == native
    assert [t["function"]["name"] for t in sent["tools"]] == tools
    calls = response.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ([] if native == "NONE" else tools)


def test_tool_choice_naming_an_unknown_tool_is_a_400(cohere_gateway: GatewayServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(cohere_gateway).chat.completions.create(
            model="x",
            messages=ask(),
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert "nope" in str(info.value)


# -- request mapping -------------------------------------------------------------------------------


def test_images_data_and_https_urls(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    response = client(cohere_gateway).chat.completions.create(
        model="x", messages=[{"role": "user", "content": content}]
    )
    assert response.choices[0].message.content == "Echo: What is in these?"
    assert emulator.last.json()["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


def test_sampling_fields_are_renamed(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    config = {"provider": "cohere", "api_key": API_KEY}
    client(cohere_gateway, config).chat.completions.create(
        model=MODEL,
        messages=[{"role": "developer", "content": "Be brief."}, *ask()],
        temperature=0.2,
        top_p=0.5,
        stop="\n\n",
        seed=7,
        max_completion_tokens=30,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        user="u-1",
        extra_body={"top_k": 40},
    )
    sent = emulator.last.json()
    assert sent == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, *ask()],
        "max_tokens": 30,
        "stop_sequences": ["\n\n"],
        "temperature": 0.2,
        "p": 0.5,
        "k": 40,
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
    }


@pytest.mark.parametrize(
    ("response_format", "native"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "json_schema": {"name": "e", "schema": {"type": "object"}}},
            {"type": "json_object", "json_schema": {"type": "object"}},
        ),
    ],
)
def test_response_format(
    cohere_gateway: GatewayServer, emulator: CohereEmulator, response_format: Any, native: Any
) -> None:
    response = client(cohere_gateway).chat.completions.create(
        model="x", messages=ask(), response_format=response_format
    )
    assert orjson.loads(response.choices[0].message.content or "") == {"echo": QUESTION}
    assert emulator.last.json()["response_format"] == native


# -- answers: usage, finish reasons, thinking ------------------------------------------------------


def test_usage_adds_up_and_prefers_tokens_over_billed_units(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    emulator.cached_tokens = 3
    response = client(cohere_gateway).chat.completions.create(model="x", messages=ask())
    usage = response.usage
    assert usage is not None
    billed_input = len(QUESTION.split())
    assert usage.prompt_tokens == billed_input + PROMPT_OVERHEAD  # `tokens`, not `billed_units`
    assert usage.completion_tokens == len(f"Echo: {QUESTION}".split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 3


def test_answer_shape(cohere_gateway: GatewayServer) -> None:
    body = httpx.post(
        cohere_gateway.v1 + "/chat/completions", json={"model": "x", "messages": ask()}, headers=headers()
    )
    data = body.json()
    assert data["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert data["object"] == "chat.completion"
    assert data["provider"] == "cohere"
    assert data["model"] == MODEL  # Cohere does not name it; the request's model is echoed
    assert body.headers["x-trace-id"] == "trace-emu"


@pytest.mark.parametrize(
    ("forced", "strict", "expected"),
    [
        (None, True, "stop"),
        (None, False, "COMPLETE"),
        ("MAX_TOKENS", True, "length"),
        ("MAX_TOKENS", False, "MAX_TOKENS"),
        ("STOP_SEQUENCE", True, "stop"),
    ],
)
def test_finish_reasons_strict_and_raw(
    cohere_gateway: GatewayServer, emulator: CohereEmulator, forced: str | None, strict: bool, expected: str
) -> None:
    emulator.finish_reason = forced
    extra = {} if strict else {"x-portkey-strict-open-ai-compliance": "false"}
    sdk = client(cohere_gateway, **extra)
    assert sdk.chat.completions.create(model="x", messages=ask()).choices[0].finish_reason == expected
    streamed = raw_stream(cohere_gateway, {"model": "x", "messages": ask()}, **extra)
    assert streamed[-2]["choices"][0]["finish_reason"] == expected


def test_the_real_max_tokens_cut_is_length(cohere_gateway: GatewayServer) -> None:
    config = {**CONFIG, "override_params": {"model": MODEL, "max_tokens": 2}}
    response = client(cohere_gateway, config).chat.completions.create(model="x", messages=ask())
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == "Echo: What"


@pytest.mark.parametrize(("forced", "status"), [("ERROR", 502), ("TIMEOUT", 504)])
def test_failed_generation_is_an_error_not_a_stop(
    cohere_gateway: GatewayServer, emulator: CohereEmulator, forced: str, status: int
) -> None:
    emulator.finish_reason = forced
    for extra in ({}, {"x-portkey-strict-open-ai-compliance": "false"}):
        with pytest.raises(openai.APIStatusError) as info:
            client(cohere_gateway, **extra).chat.completions.create(model="x", messages=ask())
        assert info.value.status_code == status
        assert f"cohere error: the generation ended with finish_reason {forced}" in str(info.value)


def test_thinking_and_tool_plan_become_content_blocks_when_not_strict(cohere_gateway: GatewayServer) -> None:
    body = {"model": "x", "messages": ask(), "thinking": {"type": "enabled", "token_budget": 100}}
    lax = {"x-portkey-strict-open-ai-compliance": "false"}
    data = httpx.post(cohere_gateway.v1 + "/chat/completions", json=body, headers=headers(**lax)).json()
    assert data["choices"][0]["message"]["content"] == f"Echo: {QUESTION}"
    assert data["choices"][0]["message"]["content_blocks"] == [
        {"type": "thinking", "thinking": THINKING},
        {"type": "text", "text": f"Echo: {QUESTION}"},
    ]
    strict = httpx.post(cohere_gateway.v1 + "/chat/completions", json=body, headers=headers()).json()
    assert "content_blocks" not in strict["choices"][0]["message"]

    chunks = raw_stream(cohere_gateway, {**body, "tools": TOOLS, "messages": ask("x")}, **lax)
    thoughts = "".join(
        b["delta"]["thinking"]
        for c in chunks[:-1]
        for b in c["choices"][0]["delta"].get("content_blocks", [])
    )
    assert thoughts == THINKING + TOOL_PLAN
    strict_chunks = raw_stream(cohere_gateway, {**body, "tools": TOOLS, "messages": ask("x")})
    assert not any("content_blocks" in c["choices"][0]["delta"] for c in strict_chunks[:-1])


# -- streams ---------------------------------------------------------------------------------------


def test_include_usage_gives_one_usage_chunk(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    emulator.cached_tokens = 2
    chunks = raw_stream(
        cohere_gateway, {"model": "x", "messages": ask(), "stream_options": {"include_usage": True}}
    )
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:-2])


def test_no_usage_without_include_usage(cohere_gateway: GatewayServer) -> None:
    chunks = raw_stream(cohere_gateway, {"model": "x", "messages": ask()})
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in c for c in chunks[:-1])


def test_optional_done_from_cohere_is_tolerated(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    emulator.send_done = True
    chunks = raw_stream(cohere_gateway, {"model": "x", "messages": ask()})
    assert chunks.count("[DONE]") == 1 and chunks[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == f"Echo: {QUESTION}"


def test_error_mid_stream_is_an_error_event(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    emulator.inject(Fault(stream_events=4, json={"message": "model overloaded"}))
    chunks = raw_stream(cohere_gateway, {"model": "x", "messages": ask()})
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["error"]["message"] == (
        "cohere error: the generation ended with finish_reason ERROR: model overloaded"
    )
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in chunks[:-2])

    emulator.inject(Fault(stream_events=4, json={"message": "model overloaded"}))
    with pytest.raises(openai.APIError, match="model overloaded"):
        for _ in client(cohere_gateway).chat.completions.create(model="x", messages=ask(), stream=True):
            pass


def test_stream_cut_is_an_error_event(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    emulator.inject(Fault(stream_events=4, cut=True))
    chunks = raw_stream(cohere_gateway, {"model": "x", "messages": ask()})
    assert chunks[-1] == "[DONE]"
    assert "error" in chunks[-2]


# -- errors ----------------------------------------------------------------------------------------


def test_rate_limit_keeps_status_message_and_retry_after(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    emulator.inject(
        Fault(status=429, json={"id": "r1", "message": "trial key rate limit"}, headers={"retry-after": "3"})
    )
    with pytest.raises(openai.RateLimitError) as info:
        client(cohere_gateway).chat.completions.create(model="x", messages=ask())
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.response.json()["error"]["message"] == "cohere error: trial key rate limit"
    assert info.value.response.json()["provider"] == "cohere"


def test_wrong_key_is_a_401(cohere_gateway: GatewayServer) -> None:
    with pytest.raises(openai.AuthenticationError, match="cohere error: invalid api token"):
        client(cohere_gateway, {**CONFIG, "api_key": "wrong"}).chat.completions.create(
            model="x", messages=ask()
        )


def test_missing_key_is_a_400_naming_the_field(cohere_gateway: GatewayServer) -> None:
    response = httpx.post(
        cohere_gateway.v1 + "/chat/completions",
        json={"model": "x", "messages": ask()},
        headers=headers({"provider": "cohere"}),
    )
    assert response.status_code == 400
    assert "api_key" in response.json()["message"]


def test_retry_on_503_then_success(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    emulator.inject(Fault(status=503, json={"id": "u", "message": "unavailable"}))
    config = {**CONFIG, "retry": {"attempts": 2}}
    response = client(cohere_gateway, config).chat.completions.create(model="x", messages=ask())
    assert response.choices[0].message.content == f"Echo: {QUESTION}"
    assert len(emulator.requests) == 2


# -- embeddings and passthrough --------------------------------------------------------------------


def test_embeddings_through_the_sdk(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    config = {"provider": "cohere", "api_key": API_KEY}
    response = client(cohere_gateway, config).embeddings.create(
        model="embed-v4.0", input=["hello", "good bye"]
    )

    sent = emulator.last.json()
    assert emulator.last.path == "/v2/embed"
    assert sent == {
        "model": "embed-v4.0",
        "texts": ["hello", "good bye"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert [d.index for d in response.data] == [0, 1]
    assert len(response.data[0].embedding) == 8  # the SDK asked for base64 and decoded it
    assert response.usage.prompt_tokens == response.usage.total_tokens == 3


def test_embedding_input_type_from_config_then_body(
    cohere_gateway: GatewayServer, emulator: CohereEmulator
) -> None:
    config = {"provider": "cohere", "api_key": API_KEY, "input_type": "search_query"}
    url = cohere_gateway.v1 + "/embeddings"
    httpx.post(url, json={"model": "embed-v4.0", "input": "q", "dimensions": 4}, headers=headers(config))
    assert emulator.last.json()["input_type"] == "search_query"
    assert emulator.last.json()["output_dimension"] == 4
    r = httpx.post(
        url,
        json={"model": "embed-v4.0", "input": "q", "input_type": "classification"},
        headers=headers(config),
    )
    assert emulator.last.json()["input_type"] == "classification"
    assert r.json()["data"][0]["embedding"] == embed_vector("q", 8)


def test_models_passthrough(cohere_gateway: GatewayServer, emulator: CohereEmulator) -> None:
    response = httpx.get(cohere_gateway.v1 + "/models", headers=headers())
    assert response.status_code == 200
    assert response.json()["models"][0]["name"] == MODEL
    assert emulator.last.path == "/v1/models"


def test_legacy_completions_are_not_offered(cohere_gateway: GatewayServer) -> None:
    response = httpx.post(
        cohere_gateway.v1 + "/completions", json={"model": "x", "prompt": "hi"}, headers=headers()
    )
    assert response.status_code == 400
    assert "not supported by cohere" in response.json()["message"]


# -- pure translation ------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), texts), min_size=1, max_size=8))
def test_any_text_conversation_keeps_roles_and_texts(turns: list[tuple[str, str]]) -> None:
    body = chat_request(
        {"model": MODEL, "messages": [{"role": r, "content": t} for r, t in turns]}, stream=False
    )
    assert [(m["role"], m["content"]) for m in body["messages"]] == turns


@given(st.lists(texts, min_size=1, max_size=5), st.integers(1, 7))
def test_stream_translation_does_not_depend_on_how_bytes_arrive(pieces: list[str], step: int) -> None:
    events = [("message-start", {"type": "message-start", "id": "m1"})]
    events += [
        (
            "content-delta",
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}},
        )
        for p in pieces
    ]
    events.append(("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}))
    wire = b"".join(f"event: {n}\r\ndata: ".encode() + orjson.dumps(e) + b"\r\n\r\n" for n, e in events)
    params = {"model": MODEL}
    translator = CohereStream(params, strict=True)
    out = (
        b"".join(translator.feed(wire[i : i + step]) for i in range(0, len(wire), step)) + translator.close()
    )
    chunks = sse_payloads(out.decode())
    assert chunks[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "".join(pieces)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in chunks[:-1]} == {"m1"}


def test_stream_without_message_end_is_an_error() -> None:
    translator = CohereStream({"model": MODEL}, strict=True)
    out = (
        translator.feed(b'event: message-start\ndata: {"type":"message-start","id":"m"}\n\n')
        + translator.close()
    )
    chunks = sse_payloads(out.decode())
    assert "message-end" in chunks[-2]["error"]["message"] and chunks[-1] == "[DONE]"


def test_usage_falls_back_to_billed_units() -> None:
    usage = cohere_usage({"billed_units": {"input_tokens": 5, "output_tokens": 7}})
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (5, 7, 12)
    assert cohere_usage(None)["total_tokens"] == 0


def test_assistant_text_before_tool_calls_is_the_tool_plan() -> None:
    message = {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
    }
    (native,) = chat_request({"model": MODEL, "messages": [message]}, stream=False)["messages"]
    assert native == {
        "role": "assistant",
        "tool_plan": "Let me look.",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
    }


def test_unsupported_parts_and_token_inputs_are_400s() -> None:
    with pytest.raises(BadRequest, match="input_audio"):
        chat_request(
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            stream=False,
        )
    with pytest.raises(BadRequest, match="token ids"):
        embed_request({"model": "embed-v4.0", "input": [[1, 2, 3]]}, {})


def test_error_finish_raises_in_the_translation() -> None:
    with pytest.raises(ProviderError) as info:
        chat_response(
            {"id": "x", "finish_reason": "ERROR", "message": {"content": []}}, {"model": MODEL}, False
        )
    assert info.value.status == 502


def test_encoded_embeddings_are_little_endian_float32() -> None:
    data = embed_response(
        {"embeddings": {"float": [[0.5, -1.0]]}, "meta": {"billed_units": {"input_tokens": 2}}},
        {"model": "embed-v4.0", "encoding_format": "base64"},
    )
    raw = base64.b64decode(data["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)


def test_custom_host_with_or_without_the_api_version() -> None:
    adapter = CohereAdapter()
    for host in ("http://h:1", "http://h:1/v2", "http://h:1/v1/"):
        target = Target("cohere", Secret("k"), {}, host)
        request = adapter.build_request(Endpoint.CHAT, target, {"model": "m", "messages": ask()}, None)
        assert request.url == "http://h:1/v2/chat"
