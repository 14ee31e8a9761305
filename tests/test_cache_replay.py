"""Cached answers replayed as JSON and as streams the openai SDK parses; streams recorded into entries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState

from wayport.cache import CorruptEntry, Entry, StreamRecorder, as_json, as_stream
from wayport.cache.replay import SPLIT_CHARS
from wayport.gateway.streaming import sse_error
from wayport.providers.openai_shapes import ChunkWriter, usage

USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def completion(message: dict[str, Any], finish_reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": USAGE,
        **extra,
    }


TOOL_MESSAGE = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
    ],
}


def entry_of(answer: dict[str, Any]) -> Entry:
    entry = Entry.from_response(orjson.dumps(answer))
    assert entry is not None
    return entry


def sdk_client(events: list[bytes]) -> openai.OpenAI:
    """An openai client whose every request is answered with ``events`` as an SSE body."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(events))

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return openai.OpenAI(api_key="sk-test", base_url="http://wayport.test/v1", http_client=http)


def sdk_chat(events: list[bytes]) -> Any:
    """The completion the openai SDK reassembles from ``events`` (its SSE parser and its state)."""
    stream = sdk_client(events).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in stream:
        state.handle_chunk(chunk)
    return state.get_final_completion()


def payloads(events: list[bytes]) -> list[dict[str, Any]]:
    assert events[-1] == b"data: [DONE]\n\n"
    for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    return [orjson.loads(e[6:]) for e in events[:-1]]


def record(events: list[bytes] | bytes, **kwargs: Any) -> Entry | None:
    recorder = StreamRecorder(**kwargs)
    for event in [events] if isinstance(events, bytes) else events:
        recorder.feed(event)
    return recorder.finish()


# -- JSON -> stream ------------------------------------------------------------------------------


def test_a_json_answer_replays_as_a_stream_the_sdk_reassembles() -> None:
    entry = entry_of(completion({"role": "assistant", "content": "Paris is the capital of France."}))
    final = sdk_chat(as_stream(entry, include_usage=False))
    assert final.id == "chatcmpl-abc" and final.model == "gpt-4o-mini"
    assert final.choices[0].message.content == "Paris is the capital of France."
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is None


def test_the_stream_has_openai_chunk_structure() -> None:
    entry = entry_of(completion({"role": "assistant", "content": "Hi"}, provider="openai"))
    chunks = payloads(as_stream(entry, include_usage=False))
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == "chatcmpl-abc"
        assert chunk["created"] == 1_700_000_000 and chunk["provider"] == "openai"
        assert chunk["system_fingerprint"] == "fp_1" and "usage" not in chunk


def test_usage_is_replayed_only_when_asked_for() -> None:
    entry = entry_of(completion({"role": "assistant", "content": "Hi"}))
    chunks = payloads(as_stream(entry, include_usage=True))
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE
    assert all(c["usage"] is None for c in chunks[:-1])
    final = sdk_chat(as_stream(entry, include_usage=True))
    assert final.usage is not None and final.usage.total_tokens == 19


def test_tool_calls_replay_with_index_id_and_name_then_arguments() -> None:
    entry = entry_of(completion(TOOL_MESSAGE, "tool_calls"))
    chunks = payloads(as_stream(entry, include_usage=False))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city":"Paris"}'}},
        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        {"index": 1, "function": {"arguments": '{"tz":"CET"}'}},
    ]
    final = sdk_chat(as_stream(entry, include_usage=False))
    message = final.choices[0].message
    assert message.content is None and final.choices[0].finish_reason == "tool_calls"
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Paris"}'),
        ("call_2", "get_time", '{"tz":"CET"}'),
    ]


def test_long_content_from_a_json_answer_is_cut_into_pieces() -> None:
    text = "".join(chr(0x41 + i % 26) for i in range(SPLIT_CHARS * 2 + 17))
    entry = entry_of(completion({"role": "assistant", "content": text}))
    chunks = payloads(as_stream(entry, include_usage=False))
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert [len(p) for p in pieces] == [SPLIT_CHARS, SPLIT_CHARS, 17]
    assert sdk_chat(as_stream(entry, include_usage=False)).choices[0].message.content == text


def test_several_choices_replay_each_with_its_index() -> None:
    answer = completion({"role": "assistant", "content": "one"})
    answer["choices"].append(
        {"index": 1, "message": {"role": "assistant", "content": "two"}, "finish_reason": "stop"}
    )
    final = sdk_chat(as_stream(entry_of(answer), include_usage=False))
    assert [(c.index, c.message.content) for c in final.choices] == [(0, "one"), (1, "two")]


def test_logprobs_and_reasoning_survive_the_replay() -> None:
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}
    answer = completion({"role": "assistant", "content": "Hi", "reasoning_content": "think"})
    answer["choices"][0]["logprobs"] = logprobs
    entry = entry_of(answer)
    recorded = record(as_stream(entry, include_usage=True))
    assert recorded is not None
    assert orjson.loads(as_json(recorded))["choices"] == answer["choices"]
    final = sdk_chat(as_stream(entry, include_usage=False))
    assert final.choices[0].logprobs.content[0].token == "Hi"


def test_a_text_completion_replays_as_a_completions_stream() -> None:
    answer = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1_700_000_000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": "Once upon a time", "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": USAGE,
    }
    entry = entry_of(answer)
    stream = sdk_client(as_stream(entry, include_usage=True)).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Tell", stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Once upon a time"
    assert chunks[-2].choices[0].finish_reason == "length" and chunks[-1].usage.total_tokens == 19
    recorded = record(as_stream(entry, include_usage=True))
    assert recorded is not None and recorded.kind == "text_completion"
    assert orjson.loads(as_json(recorded)) == answer


def test_embeddings_have_no_stream_form() -> None:
    entry = entry_of({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]})
    assert as_json(entry) == entry.body
    with pytest.raises(ValueError, match="cannot be replayed as a stream"):
        as_stream(entry, include_usage=False)


# -- stream -> entry -> JSON ---------------------------------------------------------------------


def provider_stream(include_usage: bool = True) -> list[bytes]:
    """A streamed tool-call answer as Wayport's translators write it (ChunkWriter)."""
    params = {"model": "claude-x", "stream_options": {"include_usage": include_usage}}
    writer = ChunkWriter(params, "anthropic")
    return [
        writer.chunk({"role": "assistant", "content": ""}),
        writer.chunk({"content": "Let me "}),
        writer.chunk({"content": "check."}),
        writer.chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather"}}
                ]
            }
        ),
        writer.chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        writer.chunk(
            {"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "f"}}]}
        ),
        writer.chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
        writer.chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        writer.chunk({}, "tool_calls"),
        writer.usage_chunk(usage(10, 5)),
        b"data: [DONE]\n\n",
    ]


def test_a_recorded_stream_becomes_the_complete_answer() -> None:
    entry = record(provider_stream())
    assert entry is not None and entry.streamed and entry.kind == "chat.completion"
    answer = orjson.loads(as_json(entry))
    assert answer["object"] == "chat.completion" and answer["provider"] == "anthropic"
    assert answer["model"] == "claude-x" and answer["id"].startswith("chatcmpl-")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "toolu_2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ],
    }
    assert answer["usage"]["total_tokens"] == 15
    assert "usage" not in answer["choices"][0]


def test_a_recorded_stream_replays_with_the_same_text_pieces() -> None:
    entry = record(provider_stream())
    assert entry is not None and entry.pieces == {0: {"content": [7, 6]}}
    chunks = payloads(as_stream(entry, include_usage=False))
    assert [c["choices"][0]["delta"].get("content") for c in chunks[:3]] == ["", "Let me ", "check."]
    original = sdk_chat(provider_stream())
    replayed = sdk_chat(as_stream(Entry.from_bytes(entry.to_bytes()), include_usage=True))
    assert replayed.choices[0].message == original.choices[0].message
    assert replayed.usage == original.usage


def test_the_recorder_reads_events_split_anywhere() -> None:
    events = provider_stream()
    whole = b"".join(events)
    byte_by_byte = record([whole[i : i + 1] for i in range(len(whole))])
    in_one_piece = record(whole)
    assert byte_by_byte is not None and byte_by_byte == in_one_piece == record(events)


def test_multibyte_text_split_across_feeds_is_kept_whole() -> None:
    writer = ChunkWriter({"model": "m"}, "openai")
    data = writer.chunk({"content": "héllo wörld ✓"}) + writer.chunk({}, "stop") + b"data: [DONE]\n\n"
    split = data.index("✓".encode()) + 1
    entry = record([data[:split], data[split:]])
    assert entry is not None
    assert orjson.loads(as_json(entry))["choices"][0]["message"]["content"] == "héllo wörld ✓"


def test_crlf_framed_streams_are_recorded() -> None:
    events = provider_stream()
    assert record(b"".join(events).replace(b"\n", b"\r\n")) == record(events)


def test_crlf_streams_split_between_cr_and_lf_are_recorded() -> None:
    events = provider_stream()
    data = b"".join(events).replace(b"\n", b"\r\n")
    assert record([data[i : i + 1] for i in range(len(data))]) == record(events)


def test_keep_alives_field_variants_and_a_missing_last_blank_line_are_tolerated() -> None:
    events = provider_stream()
    variants = [b": keep-alive\n\n", b"event: message\n" + events[0], b"data:" + events[1][6:], *events[2:-1]]
    assert record([*variants, b"data: [DONE]\n"]) == record(events)
    assert record([*variants, b"data: [DONE]"]) == record(events)


def test_an_error_event_means_nothing_is_cached() -> None:
    events = provider_stream()[:3] + [sse_error("The provider closed the stream before it was complete")]
    assert record(events) is None


def test_a_stream_without_done_is_not_cached() -> None:
    assert record(provider_stream()[:-1]) is None


def test_a_failed_status_or_a_foreign_stream_is_not_cached() -> None:
    assert record(provider_stream(), status=500) is None
    anthropic = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    assert record([anthropic, b"data: [DONE]\n\n"]) is None
    assert record([b"data: not json\n\n", b"data: [DONE]\n\n"]) is None
    assert record([b"data: [DONE]\n\n"]) is None


def test_a_stream_larger_than_the_limit_is_abandoned() -> None:
    recorder = StreamRecorder(max_bytes=100)
    for event in provider_stream():
        recorder.feed(event)
    assert recorder.finish() is None and recorder.failed is not None and "larger" in recorder.failed


def test_recording_keeps_only_headers_that_describe_the_answer() -> None:
    headers = [
        (b"x-ratelimit-remaining-requests", b"9"),
        (b"openai-organization", b"org"),
        (b"x-request-id", b"r"),
    ]
    entry = record(provider_stream(), headers=headers)
    assert entry is not None and entry.headers == ((b"openai-organization", b"org"),)


# -- entries ------------------------------------------------------------------------------------


def test_errors_are_never_entries() -> None:
    ok = orjson.dumps(completion({"role": "assistant", "content": "x"}))
    assert Entry.from_response(ok, status=429) is None
    assert Entry.from_response(ok, status=500) is None
    assert Entry.from_response(b'{"error": {"message": "quota"}}', status=200) is None
    assert Entry.from_response(b"<html>", status=200) is None
    assert Entry.from_response(b"[]", status=200) is None
    assert Entry.from_response(orjson.dumps({**completion({}), "choices": []})) is None
    assert Entry.from_response(b'{"type": "message", "content": []}') is None


def test_embeddings_and_images_are_entries() -> None:
    embeddings = Entry.from_response(b'{"object":"list","data":[{"embedding":[0.5]}],"model":"e"}')
    images = Entry.from_response(b'{"created":1,"data":[{"url":"https://x"}]}', status=200)
    assert embeddings is not None and embeddings.kind == "list"
    assert images is not None and images.kind == "image"


def test_an_entry_round_trips_through_bytes() -> None:
    entry = Entry(b'{"a":1}', "chat.completion", 201, ((b"x-a", b"b"),), {0: {"content": [1, 2]}}, True, 5.5)
    again = Entry.from_bytes(entry.to_bytes())
    assert again == entry and again.pieces == entry.pieces
    for bad in (b"", b"WPC1", b"XXXX\x00\x00\x00\x02{}", b"WPC1\x00\x00\x00\x05{oops"):
        with pytest.raises(CorruptEntry):
            Entry.from_bytes(bad)


# -- any split of text and arguments -------------------------------------------------------------


def splits(text: str, cuts: list[int]) -> Iterator[str]:
    start = 0
    for cut in sorted({c % (len(text) + 1) for c in cuts}):
        yield text[start:cut]
        start = cut
    yield text[start:]


@settings(max_examples=60, deadline=None)
@given(
    content=st.text(min_size=0, max_size=60),
    arguments=st.text(min_size=0, max_size=40),
    cuts=st.lists(st.integers(0, 100), max_size=6),
    include_usage=st.booleans(),
)
def test_any_recorded_stream_replays_to_the_same_message(
    content: str, arguments: str, cuts: list[int], include_usage: bool
) -> None:
    writer = ChunkWriter({"model": "m", "stream_options": {"include_usage": include_usage}}, "openai")
    events = [writer.chunk({"role": "assistant", "content": ""})]
    events += [writer.chunk({"content": part}) for part in splits(content, cuts) if part]
    events.append(
        writer.chunk(
            {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f"}}]}
        )
    )
    events += [
        writer.chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
        for part in splits(arguments, cuts)
    ]
    events += [writer.chunk({}, "tool_calls"), writer.usage_chunk(usage(3, 4)), b"data: [DONE]\n\n"]
    entry = record(events)
    assert entry is not None
    original = sdk_chat(events)
    replayed = sdk_chat(as_stream(entry, include_usage=include_usage))
    # A tool-call answer's empty content is null in the stored answer, as OpenAI writes it.
    assert replayed.choices[0].message.content == (original.choices[0].message.content or None)
    assert replayed.choices[0].message.tool_calls == original.choices[0].message.tool_calls
    assert replayed.usage == original.usage
    json_message = orjson.loads(as_json(entry))["choices"][0]["message"]
    assert json_message["tool_calls"][0]["function"] == {"name": "f", "arguments": arguments}
