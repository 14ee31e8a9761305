"""The Anthropic Messages ingress translations (``POST /v1/messages``), checked against the
``anthropic`` SDK's own models and its own client over a mock transport."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from wayport.errors import BadRequest
from wayport.ingress import (
    OpenAIToMessagesStream,
    messages_to_openai,
    openai_error_to_messages,
    openai_to_messages,
)
from wayport.providers.anthropic import AnthropicStreamTranslator, build_anthropic_body

EVENT = TypeAdapter(RawMessageStreamEvent)
PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


# -- request ----------------------------------------------------------------------------------


def test_a_full_request_translates_field_by_field() -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "tools": [WEATHER],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    out = messages_to_openai(body)

    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather in a city",
            },
        }
    ]
    assert (out["tool_choice"], out["parallel_tool_calls"]) == ("required", False)
    assert out["stop"] == ["END"]
    assert (out["model"], out["max_tokens"], out["temperature"], out["top_p"], out["top_k"]) == (
        "claude-sonnet-4-6",
        300,
        0.5,
        0.9,
        40,
    )
    assert out["user"] == "u-1"
    assert (out["stream"], out["stream_options"]) == (True, {"include_usage": True})


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [WEATHER]}
    out = messages_to_openai({**body, "tool_choice": choice})
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_tool_results_come_before_the_user_text_and_keep_their_images() -> None:
    out = messages_to_openai(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "see results"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "a",
                            "content": [
                                {"type": "text", "text": "chart:"},
                                {
                                    "type": "image",
                                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                                },
                            ],
                        },
                        {"type": "tool_result", "tool_use_id": "b", "is_error": True},
                    ],
                }
            ],
        }
    )
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "a", "content": "chart:"},
        {"role": "tool", "tool_call_id": "b", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see results"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
    ]


def test_documents_become_file_or_text_parts() -> None:
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    text = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
    out = messages_to_openai({"model": "m", "messages": [{"role": "user", "content": [pdf, text]}]})
    assert out["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        },
        {"type": "text", "text": "notes"},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "messages": [{"role": "system", "content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        },
    ],
)
def test_untranslatable_requests_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        messages_to_openai(body)


TEXT = st.text(min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    system=st.one_of(st.none(), TEXT),
    turns=st.lists(
        st.tuples(st.sampled_from(["user", "assistant"]), TEXT, st.booleans()), min_size=1, max_size=10
    ),
)
def test_text_turns_survive_the_round_trip(system: str | None, turns: list[tuple[str, str, bool]]) -> None:
    messages = [
        {"role": role, "content": [{"type": "text", "text": text}] if as_blocks else text}
        for role, text, as_blocks in turns
    ]
    body: dict[str, Any] = {"model": "claude", "max_tokens": 10, "messages": messages}
    if system is not None:
        body["system"] = system
    out = messages_to_openai(body)

    expected = ([("system", system)] if system else []) + [(role, text) for role, text, _ in turns]
    assert [(m["role"], m["content"]) for m in out["messages"]] == expected

    # and back to Anthropic through the provider translation: roles and texts are those sent
    back = build_anthropic_body(out)
    assert [b["text"] for b in back.get("system", [])] == ([system] if system else [])
    flat = [
        (m["role"], t)
        for m in back["messages"]
        for t in ([m["content"]] if isinstance(m["content"], str) else [b["text"] for b in m["content"]])
    ]
    assert flat == [(role, text) for role, text, _ in turns]


# -- response ---------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


def test_an_answer_with_text_and_tool_calls() -> None:
    message = {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "not json"}},
        ],
    }
    usage = {
        "prompt_tokens": 130,
        "completion_tokens": 7,
        "total_tokens": 137,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 20},
    }
    out = openai_to_messages(completion(message, "tool_calls", usage), model="claude-sonnet-4-6")

    parsed = Message.model_validate(out)
    assert parsed.model == "claude-sonnet-4-6"
    assert out["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
    ]
    assert (out["stop_reason"], out["stop_sequence"]) == ("tool_use", None)
    assert out["usage"] == {
        "input_tokens": 10,
        "output_tokens": 7,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 100,
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("end_turn", "end_turn"),
        ("stop_sequence", "stop_sequence"),
        ("eos", "end_turn"),
    ],
)
def test_stop_reasons(finish: str, reason: str) -> None:
    out = openai_to_messages(completion({"role": "assistant", "content": "x"}, finish), model="m")
    assert out["stop_reason"] == reason
    assert Message.model_validate(out).usage.input_tokens == 0


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (412, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_errors_get_anthropic_types_by_status(status: int, type_: str) -> None:
    body = orjson.dumps({"error": {"message": "openai error: nope", "type": "server_error", "code": None}})
    assert orjson.loads(openai_error_to_messages(status, body)) == {
        "type": "error",
        "error": {"type": type_, "message": "openai error: nope"},
    }


def test_errors_keep_an_anthropic_type_and_read_gateway_envelopes() -> None:
    upstream = orjson.dumps({"error": {"message": "anthropic error: Overloaded", "type": "overloaded_error"}})
    assert orjson.loads(openai_error_to_messages(500, upstream))["error"]["type"] == "overloaded_error"
    gateway = orjson.dumps({"status": "failure", "message": "Invalid config passed"})
    assert orjson.loads(openai_error_to_messages(400, gateway))["error"] == {
        "type": "invalid_request_error",
        "message": "Invalid config passed",
    }
    assert orjson.loads(openai_error_to_messages(503, b"upstream down"))["error"] == {
        "type": "overloaded_error",
        "message": "upstream down",
    }


# -- stream -----------------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": None,
    }


def openai_sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def tool_call_chunks() -> list[dict[str, Any]]:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me"}),
        chunk({"content": " check."}),
        call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"city":'}),
        call(0, function={"arguments": '"Paris"}'}),
        call(1, id="call_b", type="function", function={"name": "get_time", "arguments": "{}"}),
        chunk({}, "tool_calls"),
        {
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        },
    ]


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        out.append((name_line[7:], orjson.loads(data_line[6:])))
    return out


def test_stream_events_are_valid_for_the_sdk_one_by_one() -> None:
    translator = OpenAIToMessagesStream(model="claude-sonnet-4-6")
    events = parse_events(translator.feed(openai_sse(tool_call_chunks())) + translator.close())

    for name, payload in events:
        assert name == payload["type"]
        EVENT.validate_python(payload)
    assert [n for n, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [p for n, p in events if n == "content_block_start"]
    assert [(p["index"], p["content_block"]["type"]) for p in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
    ]
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"]) == (12, 9)


def sdk_client(handler: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="k", http_client=httpx2.Client(transport=httpx2.MockTransport(handler)), max_retries=0
    )


def test_the_sdk_accumulates_the_translated_stream() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        translator = OpenAIToMessagesStream(model="claude-sonnet-4-6")
        raw = openai_sse(tool_call_chunks())
        # fed in small pieces, as a network delivers it
        body = b"".join(translator.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)) + translator.close()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with sdk_client(handler).messages.stream(**request) as stream:
        message = stream.get_final_message()

    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me check."
    assert message.content[1].input == {"city": "Paris"}
    assert (message.content[2].id, message.content[2].input) == ("call_b", {})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 9)


def test_the_sdk_reads_translated_answers_and_errors() -> None:
    answer = completion(
        {"role": "assistant", "content": "Hello"}, "stop", {"prompt_tokens": 3, "completion_tokens": 1}
    )

    def ok(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=openai_to_messages(answer, model="claude-x"))

    def limited(request: httpx2.Request) -> httpx2.Response:
        body = orjson.dumps({"error": {"message": "openai error: slow down", "type": "requests"}})
        return httpx2.Response(429, content=openai_error_to_messages(429, body))

    request = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    message = sdk_client(ok).messages.create(**request)
    assert (message.content[0].text, message.stop_reason, message.usage.output_tokens) == (
        "Hello",
        "end_turn",
        1,
    )
    with pytest.raises(anthropic.RateLimitError, match="slow down") as caught:
        sdk_client(limited).messages.create(**request)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "openai error: slow down"},
    }


def test_an_openai_error_chunk_becomes_an_error_event() -> None:
    translator = OpenAIToMessagesStream(model="m")
    error = {"error": {"message": "anthropic error: Overloaded", "type": "overloaded_error"}}
    raw = openai_sse([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), error])
    events = parse_events(translator.feed(raw) + translator.close())

    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "anthropic error: Overloaded"}},
    )
    assert "message_stop" not in [n for n, _ in events]


def test_a_stream_that_stops_early_ends_with_an_error_event() -> None:
    translator = OpenAIToMessagesStream(model="m")
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in tool_call_chunks()[:3])
    events = parse_events(translator.feed(raw) + translator.close())
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"


def test_a_finish_without_done_still_completes() -> None:
    translator = OpenAIToMessagesStream(model="m")
    raw = b"".join(
        b"data: " + orjson.dumps(c) + b"\n\n" for c in [chunk({"content": "Hi"}), chunk({}, "length")]
    )
    events = parse_events(translator.feed(raw) + translator.close())
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_anthropic_to_openai_to_anthropic_stream() -> None:
    """Both stream translations in a row (the ingress routed to the anthropic provider)."""
    from tests.emulators.anthropic import answer, stream_events

    message = answer(
        {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "one two"}]}
    )
    native = b"".join(
        f"event: {n}\ndata: ".encode() + orjson.dumps(p) + b"\n\n" for n, p in stream_events(message)
    )
    params = {"model": "claude", "stream": True, "stream_options": {"include_usage": True}}
    to_openai = AnthropicStreamTranslator(params, provider="anthropic", strict=True)
    openai_bytes = to_openai.feed(native) + to_openai.close()
    back = OpenAIToMessagesStream(model="claude")
    events = parse_events(back.feed(openai_bytes) + back.close())

    for _, payload in events:
        EVENT.validate_python(payload)
    text = "".join(p["delta"]["text"] for n, p in events if n == "content_block_delta")
    assert text == "Echo: one two"
    assert events[-2][1]["usage"]["output_tokens"] == message["usage"]["output_tokens"]
