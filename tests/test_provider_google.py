"""The Gemini API (provider ``google``) through Wayport, against the Gemini emulator.

Clients speak OpenAI (LlamaIndex, the openai SDK, plain HTTP); the emulator speaks Gemini and
rejects what the real API rejects (schema keywords, non-alternating turns, function responses
that answer nothing, a missing thought signature). The pure translation functions are tested
at the end, with hypothesis where it fits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import orjson
import portkey_ai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from tests.conftest import GatewayServer
from tests.emulators.gemini import API_KEY, SIGNATURE, THOUGHT, GeminiEmulator, retry_info, status_error
from tests.emulators.openai import embed
from tests.emulators.server import Fault, Recorded
from tests.provider_harness import sse_payloads
from wayport.errors import BadRequest
from wayport.gateway.retry import RetryRunner
from wayport.providers.gemini_request import SCHEMA_KEYS, SKIP_SIGNATURE, clean_schema, generate_content_body
from wayport.providers.gemini_response import finish_reason, gemini_usage, google_error, retry_after_seconds
from wayport.providers.gemini_stream import GeminiStreamTranslator
from wayport.settings import Settings

MODEL = "gemini-1.5-flash-latest"
CONFIG: dict[str, Any] = {
    "provider": "google",
    "api_key": API_KEY,
    "override_params": {"model": MODEL, "max_tokens": 64},
}
QUESTION = "What is your name"
PROMPT = "Paul Graham is "
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string", "format": "uri"},
                "unit": {"type": ["string", "null"], "enum": ["C", "F"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def gemini() -> Iterator[GeminiEmulator]:
    emulator = GeminiEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def google_gateway(
    gemini: GeminiEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = Settings(
        auth=False,
        data_dir=tmp_path_factory.mktemp("wayport-google"),
        base_urls={"google": gemini.base_url},
        trusted_hosts=("127.0.0.1", "localhost"),
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.05)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(gemini: GeminiEmulator) -> None:
    gemini.reset()


def config_headers(config: dict[str, Any] | None = None, *, strict: bool = True) -> dict[str, str]:
    headers: dict[str, str] = portkey_ai.createHeaders(config=config or CONFIG)
    if not strict:
        headers["x-portkey-strict-open-ai-compliance"] = "false"
    return headers


def client(
    gateway: GatewayServer, *, strict: bool = True, config: dict[str, Any] | None = None
) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.v1,
        api_key="unused",
        default_headers=config_headers(config, strict=strict),
        max_retries=0,
    )


def make_llm(gateway: GatewayServer, **kwargs: Any) -> OpenAI:
    return OpenAI(
        model="gpt-4o",
        api_key="unused",
        api_base=gateway.v1,
        default_headers=config_headers(),
        max_retries=0,
        **kwargs,
    )


def error_message(exc: openai.APIStatusError) -> str:
    assert isinstance(exc.body, dict)
    return str(exc.body["message"])


def assert_gemini_request(recorded: Recorded, user_text: str, *, stream: bool) -> None:
    """The emulator got the overridden model and max tokens, the key in the header only."""
    method = "streamGenerateContent" if stream else "generateContent"
    assert recorded.path == f"/v1beta/models/{MODEL}:{method}"
    assert recorded.query == ("alt=sse" if stream else "")
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    assert headers["x-goog-api-key"] == API_KEY
    assert "authorization" not in headers
    assert not [name for name in headers if name.startswith("x-portkey-")]
    body = recorded.json()
    assert body["generationConfig"]["maxOutputTokens"] == 64
    assert body["contents"][-1] == {"role": "user", "parts": [{"text": user_text}]}


# -- LlamaIndex, the issue's configuration -----------------------------------------------------


def test_llamaindex_chat(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = make_llm(google_gateway).chat([ChatMessage(role="user", content=QUESTION)])

    assert response.message.content == f"Echo: {QUESTION}"
    assert_gemini_request(gemini.last, QUESTION, stream=False)


def test_llamaindex_stream_chat(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    responses = list(make_llm(google_gateway).stream_chat([ChatMessage(role="user", content=QUESTION)]))

    deltas = [r.delta or "" for r in responses]
    assert len([d for d in deltas if d]) >= 3
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert_gemini_request(gemini.last, QUESTION, stream=True)


def test_llamaindex_complete(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = make_llm(google_gateway).complete(PROMPT)

    assert response.text == f"Echo: {PROMPT}"
    assert_gemini_request(gemini.last, PROMPT, stream=False)


def test_llamaindex_stream_complete(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    responses = list(make_llm(google_gateway).stream_complete(PROMPT))

    assert "".join(r.delta or "" for r in responses) == f"Echo: {PROMPT}"
    assert_gemini_request(gemini.last, PROMPT, stream=True)


@pytest.fixture
async def allm(google_gateway: GatewayServer) -> AsyncIterator[OpenAI]:
    async with httpx.AsyncClient() as http:
        yield make_llm(google_gateway, async_http_client=http)


async def test_llamaindex_astream_chat(allm: OpenAI, gemini: GeminiEmulator) -> None:
    responses = [r async for r in await allm.astream_chat([ChatMessage(role="user", content=QUESTION)])]

    assert "".join(r.delta or "" for r in responses) == f"Echo: {QUESTION}"
    assert_gemini_request(gemini.last, QUESTION, stream=True)


def test_llamaindex_system_prompt_and_history(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    history = [
        ChatMessage(role="system", content="You are Wayport."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Echo: Hi"),
        ChatMessage(role="user", content=QUESTION),
    ]
    response = make_llm(google_gateway).chat(history)

    assert response.message.content == f"Echo: {QUESTION}"
    body = gemini.last.json()
    assert body["systemInstruction"] == {"parts": [{"text": "You are Wayport."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


# -- tools with the openai SDK --------------------------------------------------------------------


def test_parallel_tool_calls(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "weather and time?"}], tools=[WEATHER, TIME]
    )

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"q": 0}, {"q": 1}]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert calls[0].model_dump()["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    declarations = gemini.last.json()["tools"][0]["functionDeclarations"]
    assert declarations[0]["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "nullable": True, "enum": ["C", "F"]},
        },
        "required": ["city", "unit"],
    }
    assert declarations[1] == {"name": "get_time"}  # no arguments: no (empty, rejected) parameters


def test_tool_results_follow_up_turn(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    sdk = client(google_gateway)
    question = {"role": "user", "content": "weather and time?"}
    first = sdk.chat.completions.create(model="gpt-4o", messages=[question], tools=[WEATHER, TIME])
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    calls = first.choices[0].message.tool_calls or []
    results = [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": '{"time": "noon"}'},
    ]

    second = sdk.chat.completions.create(
        model="gpt-4o", messages=[question, assistant, *results], tools=[WEATHER, TIME]
    )

    assert (
        second.choices[0].message.content == 'Results: get_weather={"output":"18C"}, get_time={"time":"noon"}'
    )
    assert second.choices[0].finish_reason == "stop"
    contents = gemini.last.json()["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    model_parts = contents[1]["parts"]
    assert model_parts[0]["thoughtSignature"] == SIGNATURE  # echoed from extra_content
    assert "thoughtSignature" not in model_parts[1]
    assert [p["functionResponse"]["name"] for p in contents[2]["parts"]] == ["get_weather", "get_time"]


def test_tool_history_without_signature_gets_googles_skip_value(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    calls = [
        {
            "id": "a1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "a2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    messages = [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "a2", "content": "noon"},
        {"role": "tool", "tool_call_id": "a1", "content": "18C"},
    ]
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER]
    )

    assert (
        response.choices[0].message.content
        == 'Results: get_time={"output":"noon"}, get_weather={"output":"18C"}'
    )
    parts = gemini.last.json()["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == SKIP_SIGNATURE
    assert parts[1] == {"functionCall": {"name": "get_time", "args": {}}}


def test_streamed_parallel_tool_calls(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    stream = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER, TIME], stream=True
    )
    chunks = list(stream)

    fragments = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(f.index, f.function.name) for f in fragments] == [(0, "get_weather"), (1, "get_time")]
    assert all(f.id and f.type == "function" for f in fragments)
    assert [f.function.arguments for f in fragments] == ['{"q":0}', '{"q":1}']
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len({c.id for c in chunks}) == 1


def test_tool_choice_names_one_function(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "time?"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )

    assert [c.function.name for c in response.choices[0].message.tool_calls or []] == ["get_time"]
    assert gemini.last.json()["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }


def test_tool_choice_none_answers_in_text(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER], tool_choice="none"
    )

    assert response.choices[0].message.content == "Echo: hi"
    assert gemini.last.json()["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


# -- images, response_format, generation settings ----------------------------------------------------


def test_images_as_inline_data_and_file_uri(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.gif?size=2"}},
    ]
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": content}]
    )

    assert response.choices[0].message.content == "Echo: Compare"
    assert gemini.last.json()["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/gif", "fileUri": "https://example.com/cat.gif?size=2"}},
    ]


def test_json_object_mode(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
    )

    assert orjson.loads(response.choices[0].message.content or "") == {"echo": "Echo: hi"}
    assert gemini.last.json()["generationConfig"]["responseMimeType"] == "application/json"


def test_json_schema_with_refs_and_optionals(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    schema = {
        "$defs": {
            "Pet": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {
            "pet": {"$ref": "#/$defs/Pet"},
            "age": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            "kind": {"const": "dog"},
        },
        "required": ["pet", "age", "kind"],
        "additionalProperties": False,
    }
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema, "strict": True},
        },
    )

    assert orjson.loads(response.choices[0].message.content or "") == {"echo": "Echo: hi"}
    assert gemini.last.json()["generationConfig"]["responseSchema"] == {
        "type": "object",
        "properties": {
            "pet": {"type": "object", "properties": {"name": {"type": "string"}}},
            "age": {"type": "integer", "default": None, "nullable": True},
            "kind": {"enum": ["dog"]},
        },
        "required": ["pet", "age", "kind"],
    }


def test_generation_settings_and_candidates(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = client(
        google_gateway, config={"provider": "google", "api_key": API_KEY}
    ).chat.completions.create(
        model=MODEL,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        temperature=0.3,
        top_p=0.9,
        stop=["zzz"],
        seed=7,
        n=2,
        max_completion_tokens=50,
        presence_penalty=0.5,
        user="u-1",
        extra_body={"top_k": 20},
    )

    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.message.content == "Echo: hi" for c in response.choices)
    body = gemini.last.json()
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 20,
        "seed": 7,
        "presencePenalty": 0.5,
        "maxOutputTokens": 50,
        "stopSequences": ["zzz"],
        "candidateCount": 2,
    }


def test_max_tokens_is_length(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    )

    # override_params (max_tokens 64) wins over the request, as in Portkey
    assert gemini.last.json()["generationConfig"]["maxOutputTokens"] == 64
    assert response.choices[0].finish_reason == "stop"
    short = client(google_gateway, config={"provider": "google", "api_key": API_KEY}).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    )
    assert short.choices[0].message.content == "Echo: one"
    assert short.choices[0].finish_reason == "length"


# -- usage and finish reasons ----------------------------------------------------------------------


def test_usage_adds_up_with_cached_and_thinking_tokens(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    gemini.cached_tokens = 5
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi there"}], reasoning_effort="low"
    )

    assert gemini.last.json()["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens == 2 + 5  # the words of the prompt, cached tokens included
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == len(THOUGHT.split())
    assert usage.completion_tokens == 3 + len(THOUGHT.split())  # "Echo: hi there" and the thoughts


def test_non_strict_passes_raw_reasons_and_thinking_blocks(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    extra = {"thinking": {"type": "enabled", "budget_tokens": 100}}
    raw = client(google_gateway, strict=False).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_body=extra
    )
    strict = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_body=extra
    )
    tools = client(google_gateway, strict=False).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER]
    )

    assert raw.choices[0].finish_reason == "STOP"
    assert raw.choices[0].message.model_dump()["content_blocks"] == [
        {"type": "thinking", "thinking": THOUGHT},
        {"type": "text", "text": "Echo: hi"},
    ]
    assert raw.choices[0].message.content == "Echo: hi"  # thoughts stay out of the content
    assert strict.choices[0].finish_reason == "stop"
    assert "content_blocks" not in strict.choices[0].message.model_dump()
    assert tools.choices[0].finish_reason == "STOP"


def test_blocked_prompt_is_content_filter(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 4},
    }
    gemini.inject(Fault(json=blocked), Fault(json=blocked))
    response = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "bad"}]
    )
    raw = client(google_gateway, strict=False).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "bad"}]
    )

    assert response.choices[0].finish_reason == "content_filter"
    assert response.choices[0].message.content == ""
    assert response.usage is not None and response.usage.total_tokens == 4
    assert raw.choices[0].finish_reason == "PROHIBITED_CONTENT"


def test_malformed_function_call_is_an_error(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    malformed = {
        "candidates": [
            {"content": {"parts": [], "role": "model"}, "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}
        ],
        "modelVersion": MODEL,
    }
    gemini.inject(Fault(json=malformed))
    with pytest.raises(openai.InternalServerError) as raised:
        client(google_gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER]
        )

    assert raised.value.status_code == 502
    assert "MALFORMED_FUNCTION_CALL" in raised.value.message
    assert raised.value.type == "MALFORMED_FUNCTION_CALL"


# -- streams ---------------------------------------------------------------------------------------


def post_stream(gateway: GatewayServer, body: dict[str, Any], *, strict: bool = True) -> list[Any]:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        headers=config_headers(strict=strict),
        json={"model": "gpt-4o", "stream": True, **body},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_payloads(response.text)


def test_stream_usage_chunk_only_when_asked(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    messages = [{"role": "user", "content": "hi there"}]
    with_usage = post_stream(
        google_gateway, {"messages": messages, "stream_options": {"include_usage": True}}
    )
    without = post_stream(google_gateway, {"messages": messages})

    assert with_usage[-1] == "[DONE]" and without[-1] == "[DONE]"
    usage_chunk = with_usage[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] == 2 + 3
    assert all(c["usage"] is None for c in with_usage[:-2])
    assert with_usage[-3]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in without[:-1])
    assert without[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["model"] for c in without[:-1]} == {MODEL}


def test_upstream_error_mid_stream(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    gemini.inject(
        Fault(json=status_error(500, "INTERNAL", "An internal error has occurred."), stream_events=2)
    )
    events = post_stream(google_gateway, {"messages": [{"role": "user", "content": "one two three"}]})

    assert [e["choices"][0]["delta"].get("content") for e in events[:3]] == ["", "Echo:", " one"]
    assert events[3]["error"] == {
        "message": "google error: An internal error has occurred.",
        "type": "INTERNAL",
        "param": None,
        "code": 500,
    }
    assert events[4:] == ["[DONE]"]


def test_error_mid_stream_raises_in_the_sdk(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    gemini.inject(Fault(json=status_error(503, "UNAVAILABLE", "The model is overloaded."), stream_events=1))
    stream = client(google_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        list(stream)


def test_stream_cut_before_the_finish_reason_is_an_error(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    gemini.inject(Fault(stream_events=2, cut=True))
    events = post_stream(google_gateway, {"messages": [{"role": "user", "content": "one two three"}]})

    assert events[-1] == "[DONE]"
    assert "error" in events[-2]
    assert not any(e.get("choices", [{}])[0].get("finish_reason") for e in events[:-1] if "choices" in e)


def test_malformed_function_call_mid_stream(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    event = {
        "candidates": [{"content": {"parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}]
    }
    gemini.inject(Fault(json=event, stream_events=1))
    events = post_stream(google_gateway, {"messages": [{"role": "user", "content": "one two three"}]})

    assert events[-2]["error"]["type"] == "MALFORMED_FUNCTION_CALL"
    assert events[-1] == "[DONE]"


# -- errors ------------------------------------------------------------------------------------------


def test_invalid_key_keeps_googles_status_and_message(google_gateway: GatewayServer) -> None:
    sdk = client(google_gateway, config={**CONFIG, "api_key": "AIza-wrong"})
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    assert raised.value.status_code == 400
    assert error_message(raised.value) == "google error: API key not valid. Please pass a valid API key."
    assert raised.value.type == "INVALID_ARGUMENT"


def test_rate_limit_keeps_the_retry_delay(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    body = status_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [retry_info("36s")])
    gemini.inject(Fault(status=429, json=body))
    with pytest.raises(openai.RateLimitError) as raised:
        client(google_gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )

    assert error_message(raised.value) == "google error: Resource has been exhausted. (retry after 36s)"
    assert raised.value.type == "RESOURCE_EXHAUSTED"
    assert raised.value.code == 429
    # Google says when in the body only: the headers clients and retry policies read say it too
    headers = raised.value.response.headers
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("36000", "36")


def test_a_retry_policy_waits_for_googles_retry_delay(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    body = status_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [retry_info("0.6s")])
    gemini.inject(Fault(status=429, json=body))
    retrying = {**CONFIG, "retry": {"attempts": 1, "use_retry_after_headers": True}}
    started = time.monotonic()
    answer = client(google_gateway, config=retrying).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    waited = time.monotonic() - started
    assert answer.choices[0].message.content and len(gemini.requests) == 2
    assert waited >= 0.6  # not the test gateway's backoff of at most 0.05 s


def test_schema_rejected_upstream_reports_the_field(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    violation = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "contents[0].parts[0]", "description": "bad"}],
    }
    gemini.inject(Fault(status=400, json=status_error(400, "INVALID_ARGUMENT", "bad part", [violation])))
    response = httpx.post(
        google_gateway.v1 + "/chat/completions",
        headers=config_headers(),
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "google error: bad part",
            "type": "INVALID_ARGUMENT",
            "param": "contents[0].parts[0]",
            "code": 400,
        },
        "provider": "google",
    }


def test_missing_key_is_a_gateway_400(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = httpx.post(
        google_gateway.v1 + "/chat/completions",
        headers={"x-portkey-provider": "google"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 400
    assert "api_key" in response.json()["message"]
    assert gemini.requests == []


def test_tool_result_without_its_call_is_rejected_before_sending(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    with pytest.raises(openai.BadRequestError, match="tool_call_id 'nope'"):
        client(google_gateway).chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "nope", "content": "x"},
            ],
        )
    assert gemini.requests == []


def test_provider_header_and_bearer_key(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = httpx.post(
        google_gateway.v1 + "/chat/completions",
        headers={"x-portkey-provider": "google", "Authorization": f"Bearer {API_KEY}"},
        json={"model": "models/gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 200
    assert response.json()["provider"] == "google"
    assert response.json()["id"] == "resp-emu1"
    assert gemini.last.path == "/v1beta/models/gemini-2.0-flash:generateContent"


# -- embeddings ------------------------------------------------------------------------------------


def test_embeddings_batch_in_order_with_base64(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    config = {"provider": "google", "api_key": API_KEY}
    result = client(google_gateway, config=config).embeddings.create(
        model="text-embedding-004", input=["alpha", "beta"], dimensions=4
    )

    assert [d.embedding for d in result.data] == [
        pytest.approx(embed("alpha", 4), abs=1e-6),
        pytest.approx(embed("beta", 4), abs=1e-6),
    ]
    assert result.usage.prompt_tokens == 0 and result.usage.total_tokens == 0
    assert gemini.last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert gemini.last.json() == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": t}]},
                "outputDimensionality": 4,
            }
            for t in ("alpha", "beta")
        ]
    }


def test_embeddings_of_one_string_as_floats(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = httpx.post(
        google_gateway.v1 + "/embeddings",
        headers=config_headers({"provider": "google", "api_key": API_KEY}),
        json={"model": "gemini-embedding-001", "input": "alpha", "encoding_format": "float"},
    )

    assert response.status_code == 200
    assert response.json()["data"] == [{"object": "embedding", "index": 0, "embedding": embed("alpha", 8)}]


def test_embeddings_of_token_ids_are_rejected(google_gateway: GatewayServer, gemini: GeminiEmulator) -> None:
    response = httpx.post(
        google_gateway.v1 + "/embeddings",
        headers=config_headers({"provider": "google", "api_key": API_KEY}),
        json={"model": "text-embedding-004", "input": [[1, 2, 3]]},
    )

    assert response.status_code == 400
    assert gemini.requests == []


# -- pure translation functions ------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), texts), min_size=1, max_size=12))
def test_any_text_conversation_translates_with_every_text_in_order(turns: list[tuple[str, str]]) -> None:
    body = generate_content_body({"messages": [{"role": r, "content": t} for r, t in turns]})

    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))  # alternating turns
    assert roles[0] == ("user" if turns[0][0] == "user" else "model")
    sent = [p["text"] for c in body["contents"] for p in c["parts"]]
    assert sent == [t for _, t in turns]


json_types = st.sampled_from(["string", "number", "integer", "boolean", "object", "array", "null"])
schemas = st.recursive(
    st.fixed_dictionaries(
        {"type": st.one_of(json_types, st.lists(json_types, min_size=1, max_size=3, unique=True))},
        optional={
            "description": texts,
            "format": st.sampled_from(["uri", "date-time", "email", "int64"]),
            "additionalProperties": st.booleans(),
            "$schema": st.just("http://json-schema.org/draft-07/schema#"),
            "const": texts,
            "exclusiveMinimum": st.integers(),
            "examples": st.lists(texts, max_size=2),
        },
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(texts, inner, max_size=3)},
            optional={"required": st.lists(texts, max_size=3), "additionalProperties": st.booleans()},
        ),
        st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"oneOf": st.lists(inner, min_size=1, max_size=3)}),
    ),
    max_leaves=8,
)


def _only_gemini_keywords(schema: Any) -> bool:
    if not isinstance(schema, dict) or not set(schema) <= SCHEMA_KEYS:
        return False
    if schema.get("type") == "null" or isinstance(schema.get("type"), list):
        return False
    children = [*(schema.get("properties") or {}).values(), *(schema.get("anyOf") or [])]
    if "items" in schema:
        children.append(schema["items"])
    required = set(schema.get("required") or ())
    if not required <= set(schema.get("properties") or {}):
        return False
    return all(_only_gemini_keywords(c) for c in children)


@settings(max_examples=200)
@given(schemas)
def test_any_schema_is_reduced_to_the_keywords_gemini_accepts(schema: dict[str, Any]) -> None:
    assert _only_gemini_keywords(clean_schema(schema))


def test_clean_schema_rewrites_unions_refs_and_formats() -> None:
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": ["string", "integer"], "format": "uuid", "minimum": 1},
            "node": {"$ref": "#/$defs/Node"},
            "tag": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "level": {"type": "integer", "enum": [1, 2], "description": "Level"},
        },
        "required": ["when", "gone"],
    }
    cleaned = clean_schema(schema)

    assert cleaned["properties"]["when"] == {"type": "string", "format": "date-time"}
    assert cleaned["properties"]["id"] == {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]}
    assert cleaned["properties"]["tag"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert cleaned["properties"]["level"] == {"type": "integer", "description": "Level (one of: 1, 2)"}
    node = cleaned["properties"]["node"]
    for _ in range(8):  # a recursive reference is inlined a few levels deep, then cut off
        node = node["properties"]["next"]
    assert node == {"type": "object"}
    assert cleaned["required"] == ["when"]


@pytest.mark.parametrize(
    ("raw", "tools", "strict", "expected"),
    [
        ("STOP", False, True, "stop"),
        ("STOP", True, True, "tool_calls"),
        ("MAX_TOKENS", True, True, "length"),
        ("SAFETY", False, True, "content_filter"),
        ("RECITATION", False, True, "content_filter"),
        ("OTHER", False, True, "stop"),
        ("STOP", True, False, "STOP"),
        ("RECITATION", False, False, "RECITATION"),
        (None, False, True, "stop"),
    ],
)
def test_finish_reason_table(raw: str | None, tools: bool, strict: bool, expected: str) -> None:
    assert finish_reason(raw, tools, strict) == expected


def test_usage_matches_googles_total() -> None:
    meta = {
        "promptTokenCount": 30,
        "cachedContentTokenCount": 10,
        "toolUsePromptTokenCount": 4,
        "candidatesTokenCount": 12,
        "thoughtsTokenCount": 50,
        "totalTokenCount": 96,
    }
    usage = gemini_usage(meta)

    assert usage is not None
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (34, 62, 96)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 10
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 50}


def test_error_wrapped_in_an_array_and_non_json_errors() -> None:
    wrapped = orjson.dumps(
        [status_error(429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later.")]
    )

    assert orjson.loads(google_error("vertex-ai", wrapped))["error"] == {
        "message": "vertex-ai error: Resource exhausted. Please try again later.",
        "type": "RESOURCE_EXHAUSTED",
        "param": None,
        "code": 429,
    }
    html = orjson.loads(google_error("google", b"<html>Bad Gateway</html>"))
    assert html["error"]["message"].startswith("google error: Invalid response received from google")


def test_stream_translation_does_not_depend_on_how_bytes_are_split() -> None:
    events = [
        {
            "candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0}],
            "modelVersion": "g",
        },
        {
            "candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4},
        },
    ]
    wire = b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events)
    params = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}

    def run(pieces: list[bytes]) -> list[Any]:
        translator = GeminiStreamTranslator(params, provider="google", strict=True)
        out = b"".join(translator.feed(p) for p in pieces) + translator.close()
        return [
            {k: v for k, v in e.items() if k not in ("id", "created")} if isinstance(e, dict) else e
            for e in sse_payloads(out.decode())
        ]

    whole = run([wire])
    assert run([wire[i : i + 1] for i in range(len(wire))]) == whole
    assert [e["choices"][0]["delta"].get("content") for e in whole[:3]] == ["", "Hel", "lo"]
    assert whole[4]["usage"]["total_tokens"] == 4 and whole[-1] == "[DONE]"


def test_tool_message_needs_an_earlier_call() -> None:
    with pytest.raises(BadRequest, match="answers no earlier assistant tool call"):
        generate_content_body({"messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]})


def test_retry_delay_in_seconds() -> None:
    limited = orjson.dumps(status_error(429, "RESOURCE_EXHAUSTED", "slow down", [retry_info("1.5s")]))

    assert retry_after_seconds(limited) == 1.5
    assert retry_after_seconds(orjson.dumps([orjson.loads(limited)])) == 1.5
    assert retry_after_seconds(orjson.dumps(status_error(429, "RESOURCE_EXHAUSTED", "x"))) is None
    assert retry_after_seconds(b"<html>") is None


def test_other_paths_pass_through_with_the_key_header(
    google_gateway: GatewayServer, gemini: GeminiEmulator
) -> None:
    response = httpx.post(
        google_gateway.v1 + "/models/gemini-2.0-flash:countTokens",
        headers={"x-portkey-provider": "google", "Authorization": f"Bearer {API_KEY}"},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )

    assert gemini.last.path == "/v1beta/models/gemini-2.0-flash:countTokens"
    headers = {k.lower(): v for k, v in gemini.last.headers.items()}
    assert headers["x-goog-api-key"] == API_KEY
    assert "authorization" not in headers
    assert response.status_code == 404  # the emulator has no countTokens: Google's answer comes back as is
    assert response.json()["error"]["status"] == "NOT_FOUND"
