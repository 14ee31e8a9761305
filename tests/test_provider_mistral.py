"""Provider ``mistral-ai``: OpenAI's wire format with Mistral's differences, through Wayport.

The Mistral emulator (``tests/emulators/mistral.py``) rejects every field Mistral does not know and
every tool-call id that is not 9 alphanumerics, and puts usage on its last stream chunk unasked.
"""

from __future__ import annotations

import base64
import re
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
from tests.emulators.mistral import API_KEY, MistralEmulator
from tests.emulators.server import Fault
from tests.provider_harness import (
    config_headers,
    content_of,
    llamaindex_llm,
    openai_client,
    provider_gateway,
    sse_payloads,
)
from tests.provider_harness import raw_stream as stream_payloads
from wayport.errors import BadRequest
from wayport.providers.base import Endpoint
from wayport.providers.mistral import MistralAdapter, MistralStream, chat_request, mistral_tool_id

MODEL = "codestral-latest"
CONFIG: dict[str, Any] = {
    "provider": "mistral-ai",
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
LAX = {"x-portkey-strict-open-ai-compliance": "false"}
NINE = re.compile(r"[a-zA-Z0-9]{9}")


@pytest.fixture(scope="module")
def emulator() -> Iterator[MistralEmulator]:
    emulator = MistralEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def mistral_gateway(
    emulator: MistralEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    with provider_gateway(
        tmp_path_factory.mktemp("wayport-mistral"), "mistral-ai", emulator.base_url
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(emulator: MistralEmulator) -> None:
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


def assert_native_chat(emulator: MistralEmulator, text: str, *, stream: bool) -> None:
    recorded = emulator.last
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["Authorization"] == f"Bearer {API_KEY}"
    body = recorded.json()
    assert body["model"] == MODEL and body["max_tokens"] == 64
    assert body["messages"][-1] == {"role": "user", "content": text}
    assert bool(body.get("stream")) is stream
    assert "stream_options" not in body


def test_llamaindex_chat(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    assert llm(mistral_gateway).chat([ChatMessage(role="user", content=QUESTION)]).message.content == (
        f"Echo: {QUESTION}"
    )
    assert_native_chat(emulator, QUESTION, stream=False)


def test_llamaindex_stream_chat(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    responses = list(llm(mistral_gateway).stream_chat([ChatMessage(role="user", content=QUESTION)]))
    deltas = [r.delta for r in responses if r.delta]
    assert len(deltas) >= 3 and "".join(deltas) == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=True)


def test_llamaindex_complete(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    assert llm(mistral_gateway).complete("Paul Graham is ").text == "Echo: Paul Graham is "
    assert_native_chat(emulator, "Paul Graham is ", stream=False)


def test_llamaindex_stream_complete(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    assert list(llm(mistral_gateway).stream_complete("Paul Graham is "))[-1].text == "Echo: Paul Graham is "
    assert_native_chat(emulator, "Paul Graham is ", stream=True)


async def test_llamaindex_async(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    async with httpx.AsyncClient() as http:
        model = llm(mistral_gateway, async_http_client=http)
        response = await model.achat([ChatMessage(role="user", content=QUESTION)])
        streamed = [r async for r in await model.astream_complete("Paul Graham is ")]
    assert response.message.content == f"Echo: {QUESTION}"
    assert streamed[-1].text == "Echo: Paul Graham is "


# -- only what Mistral knows -----------------------------------------------------------------------


def test_openai_only_fields_are_renamed_or_dropped(
    mistral_gateway: GatewayServer, emulator: MistralEmulator
) -> None:
    config = {"provider": "mistral-ai", "api_key": API_KEY}
    response = client(mistral_gateway, config).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi", "name": "paul"},
            {"role": "assistant", "content": "Hello", "reasoning_content": "greet back"},
            *ask(),
        ],
        seed=7,
        max_completion_tokens=30,
        user="u-1",
        store=True,
        logprobs=True,
        service_tier="auto",
        temperature=0.3,
        stop=["\n"],
        response_format={"type": "json_object"},
        extra_body={"safe_prompt": True},
    )
    assert response.choices[0].message.content == f"Echo: {QUESTION}"
    assert emulator.last.json() == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            *ask(),
        ],
        "random_seed": 7,
        "max_tokens": 30,
        "temperature": 0.3,
        "stop": ["\n"],
        "response_format": {"type": "json_object"},
        "safe_prompt": True,
    }


def test_images_pass_as_image_url_parts(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    response = client(mistral_gateway).chat.completions.create(
        model="x", messages=[{"role": "user", "content": content}]
    )
    assert response.choices[0].message.content == "Echo: What is this?"
    assert emulator.last.json()["messages"][0]["content"] == content


# -- tools and tool-call ids -----------------------------------------------------------------------


def test_foreign_tool_call_ids_are_rewritten_consistently(
    mistral_gateway: GatewayServer, emulator: MistralEmulator
) -> None:
    history: list[Any] = [
        *ask("Weather?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                },
                {
                    "id": "toolu_01XyZ",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_01XyZ", "content": "noon"},
    ]
    sdk = client(mistral_gateway)
    response = sdk.chat.completions.create(model="x", messages=history, tools=TOOLS)
    assert response.choices[0].message.content == "Echo: tool results"
    sent = emulator.last.json()["messages"]
    ids = [c["id"] for c in sent[1]["tool_calls"]]
    assert all(NINE.fullmatch(i) for i in ids) and len(set(ids)) == 2
    assert [m["tool_call_id"] for m in sent[2:]] == ids
    assert [m["name"] for m in sent[2:]] == ["get_weather", "get_time"]

    sdk.chat.completions.create(model="x", messages=[*history, {"role": "user", "content": "And tomorrow?"}])
    assert [c["id"] for c in emulator.last.json()["messages"][1]["tool_calls"]] == ids  # the same next turn


def test_parallel_tool_calls_then_results(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    sdk = client(mistral_gateway)
    first = sdk.chat.completions.create(model="x", messages=ask("Weather and time?"), tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"q": 0}),
        ("get_time", {"q": 1}),
    ]
    history: list[Any] = [
        *ask("Weather and time?"),
        choice.message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": f"r{i}"} for i, c in enumerate(calls)),
    ]
    second = sdk.chat.completions.create(model="x", messages=history, tools=TOOLS, tool_choice="required")
    assert second.choices[0].message.content == "Echo: tool results"
    sent = emulator.last.json()
    assert sent["tool_choice"] == "any"
    assert [c["id"] for c in sent["messages"][1]["tool_calls"]] == [
        c.id for c in calls
    ]  # Mistral's own ids stay


def test_streamed_tool_calls(mistral_gateway: GatewayServer) -> None:
    chunks = raw_stream(mistral_gateway, {"model": "x", "messages": ask(), "tools": TOOLS})
    fragments = [tc for c in chunks[:-1] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [(f["index"], f["type"], f["function"]["name"]) for f in fragments] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


# -- answers and streams ---------------------------------------------------------------------------


def test_answers_carry_the_provider_and_usage_adds_up(
    mistral_gateway: GatewayServer, emulator: MistralEmulator
) -> None:
    r = httpx.post(
        mistral_gateway.v1 + "/chat/completions", json={"model": "x", "messages": ask()}, headers=headers()
    )
    data = r.json()
    assert data["provider"] == "mistral-ai"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] == 9
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert r.headers["x-ratelimit-remaining-req-minute"] == "59"
    assert r.headers["mistral-correlation-id"] == "corr-emu"


def test_stream_usage_only_when_asked(mistral_gateway: GatewayServer) -> None:
    plain = raw_stream(mistral_gateway, {"model": "x", "messages": ask()})
    assert plain[-1] == "[DONE]"
    assert not any("usage" in c for c in plain[:-1])  # Mistral's unasked usage is removed
    assert all(c["provider"] == "mistral-ai" for c in plain[:-1])
    assert content_of(plain) == f"Echo: {QUESTION}"

    asked = raw_stream(
        mistral_gateway, {"model": "x", "messages": ask(), "stream_options": {"include_usage": True}}
    )
    assert asked[-1] == "[DONE]"
    assert asked[-2]["choices"] == [] and asked[-2]["usage"]["total_tokens"] == 9
    assert asked[-3]["choices"][0]["finish_reason"] == "stop" and asked[-3]["usage"] is None
    assert all(c["usage"] is None for c in asked[:-2])


@pytest.mark.parametrize(
    ("forced", "strict", "expected"),
    [("model_length", True, "length"), ("model_length", False, "model_length"), ("error", False, "error")],
)
def test_finish_reasons(
    mistral_gateway: GatewayServer, emulator: MistralEmulator, forced: str, strict: bool, expected: str
) -> None:
    emulator.finish_reason = forced
    extra = {} if strict else LAX
    assert (
        client(mistral_gateway, **extra)
        .chat.completions.create(model="x", messages=ask())
        .choices[0]
        .finish_reason
        == expected
    )
    chunks = raw_stream(mistral_gateway, {"model": "x", "messages": ask()}, **extra)
    assert chunks[-2]["choices"][0]["finish_reason"] == expected


def test_error_finish_is_an_error_in_strict_mode(
    mistral_gateway: GatewayServer, emulator: MistralEmulator
) -> None:
    emulator.finish_reason = "error"
    with pytest.raises(openai.APIStatusError) as info:
        client(mistral_gateway).chat.completions.create(model="x", messages=ask())
    assert info.value.status_code == 502
    assert "mistral-ai error: the generation ended with finish_reason 'error'" in str(info.value)
    chunks = raw_stream(mistral_gateway, {"model": "x", "messages": ask()})
    assert "finish_reason 'error'" in chunks[-2]["error"]["message"] and chunks[-1] == "[DONE]"


def test_error_event_mid_stream(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    emulator.inject(
        Fault(stream_events=3, json={"object": "error", "message": "Service overloaded", "type": "x"})
    )
    chunks = raw_stream(mistral_gateway, {"model": "x", "messages": ask()})
    assert content_of(chunks[:-2]) == "Echo: What"
    assert chunks[-2]["error"]["message"] == "mistral-ai error: Service overloaded"
    assert chunks[-1] == "[DONE]"


def test_stream_cut_is_an_error_event(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    emulator.inject(Fault(stream_events=3, cut=True))
    chunks = raw_stream(mistral_gateway, {"model": "x", "messages": ask()})
    assert chunks[-1] == "[DONE]" and "error" in chunks[-2]


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {
            "object": "error",
            "message": {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "store"],
                        "msg": "Extra inputs are not permitted",
                    }
                ]
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
        {
            "detail": [
                {"type": "extra_forbidden", "loc": ["body", "store"], "msg": "Extra inputs are not permitted"}
            ]
        },
    ],
)
def test_422_with_an_object_message_is_readable(
    mistral_gateway: GatewayServer, emulator: MistralEmulator, body: Any
) -> None:
    emulator.inject(Fault(status=422, json=body))
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client(mistral_gateway).chat.completions.create(model="x", messages=ask())
    assert info.value.response.json()["error"]["message"] == (
        "mistral-ai error: body.store: Extra inputs are not permitted (extra_forbidden)"
    )


def test_tool_id_error_and_code_pass_through(
    mistral_gateway: GatewayServer, emulator: MistralEmulator
) -> None:
    message = "Tool call id was turn1_0 but must be a-z, A-Z, 0-9, with a length of 9."
    emulator.inject(
        Fault(
            status=400,
            json={
                "object": "error",
                "message": message,
                "type": "invalid_function_call",
                "param": None,
                "code": "3280",
            },
        )
    )
    with pytest.raises(openai.BadRequestError) as info:
        client(mistral_gateway).chat.completions.create(model="x", messages=ask())
    error = info.value.response.json()["error"]
    assert error == {
        "message": f"mistral-ai error: {message}",
        "type": "invalid_function_call",
        "param": None,
        "code": "3280",
    }


def test_wrong_key_and_rate_limit(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    with pytest.raises(openai.AuthenticationError, match="mistral-ai error: Unauthorized"):
        client(mistral_gateway, {**CONFIG, "api_key": "wrong"}).chat.completions.create(
            model="x", messages=ask()
        )
    emulator.inject(
        Fault(
            status=429,
            json={"message": "Requests rate limit exceeded"},
            headers={"retry-after": "2", "x-ratelimit-remaining-tokens-minute": "0"},
        )
    )
    with pytest.raises(openai.RateLimitError) as info:
        client(mistral_gateway).chat.completions.create(model="x", messages=ask())
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["x-ratelimit-remaining-tokens-minute"] == "0"


# -- embeddings, models, completions ---------------------------------------------------------------


def test_embeddings_drop_openai_fields_and_encode_base64(
    mistral_gateway: GatewayServer, emulator: MistralEmulator
) -> None:
    config = {"provider": "mistral-ai", "api_key": API_KEY}
    response = client(mistral_gateway, config).embeddings.create(
        model="mistral-embed", input=["a b", "c"], dimensions=4, user="u"
    )
    assert emulator.last.json() == {"model": "mistral-embed", "input": ["a b", "c"], "output_dimension": 4}
    assert len(response.data) == 2 and len(response.data[0].embedding) == 4  # the SDK decoded our base64
    assert response.usage.total_tokens == 3


def test_models_and_no_legacy_completions(mistral_gateway: GatewayServer, emulator: MistralEmulator) -> None:
    models = httpx.get(mistral_gateway.v1 + "/models", headers=headers())
    assert models.json()["data"][0]["id"] == MODEL
    completions = httpx.post(
        mistral_gateway.v1 + "/completions", json={"model": "x", "prompt": "a"}, headers=headers()
    )
    assert completions.status_code == 400


# -- pure translation ------------------------------------------------------------------------------


@given(st.text(max_size=60))
def test_any_id_becomes_nine_alphanumerics_deterministically(original: str) -> None:
    rewritten = mistral_tool_id(original)
    assert NINE.fullmatch(rewritten)
    assert mistral_tool_id(original) == rewritten
    assert mistral_tool_id(rewritten) == rewritten  # valid ids stay as they are


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), texts), min_size=1, max_size=8))
def test_any_text_conversation_keeps_roles_and_texts(turns: list[tuple[str, str]]) -> None:
    body = chat_request({"model": "m", "messages": [{"role": r, "content": t} for r, t in turns]})
    assert [(m["role"], m["content"]) for m in body["messages"]] == turns


@given(st.lists(texts, min_size=1, max_size=5), st.integers(1, 9), st.booleans())
def test_stream_translation_does_not_depend_on_how_bytes_arrive(
    pieces: list[str], step: int, asked: bool
) -> None:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [
        {**head, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces
    ]
    usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage})
    wire = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    params: dict[str, Any] = {"model": "m", "stream_options": {"include_usage": asked}}
    translator = MistralStream(params, strict=True)
    out = (
        b"".join(translator.feed(wire[i : i + step]) for i in range(0, len(wire), step)) + translator.close()
    )
    chunks = sse_payloads(out.decode())
    assert chunks[-1] == "[DONE]"
    assert content_of(chunks) == "".join(pieces)
    assert (chunks[-2].get("usage") or {}).get("total_tokens") == (5 if asked else None)


def test_reasoning_chunks_flatten_to_text_and_thinking_blocks() -> None:
    body = orjson.dumps(
        {
            "id": "x",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": [
                            {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                            {"type": "text", "text": "42"},
                        ],
                    },
                }
            ],
        }
    )
    adapter = MistralAdapter()
    lax = orjson.loads(adapter.translate_response(Endpoint.CHAT, body, {}, strict=False))["choices"][0][
        "message"
    ]
    assert lax["content"] == "42"
    assert lax["content_blocks"] == [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "42"}]
    strict = orjson.loads(adapter.translate_response(Endpoint.CHAT, body, {}, strict=True))["choices"][0][
        "message"
    ]
    assert strict == {"role": "assistant", "content": "42"}


def test_unknown_roles_are_a_400() -> None:
    with pytest.raises(BadRequest, match="function"):
        chat_request({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]})


def test_encoded_embeddings_are_float32() -> None:
    body = orjson.dumps(
        {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.25]}]}
    )
    data = orjson.loads(
        MistralAdapter().translate_response(Endpoint.EMBED, body, {"encoding_format": "base64"}, True)
    )
    assert struct.unpack("<f", base64.b64decode(data["data"][0]["embedding"])) == (0.25,)
