"""Serving a cached answer: as the JSON body, or as the SSE stream a streaming client expects.

The stream has OpenAI's structure: a role chunk, text deltas (cut where the provider cut them
when the entry was recorded from a stream, else in pieces of ``SPLIT_CHARS``), for each tool call
a delta with its index, id and name and then one with its arguments, a finish chunk, the usage
chunk (``choices: []``) only when the client asked for ``include_usage``, and ``[DONE]``. Every
chunk repeats the answer's id, created time and model, and carries ``"usage": null`` when usage
was asked for, as OpenAI's chunks do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from wayport.cache.entry import CHAT, TEXT, Entry

DONE = b"data: [DONE]\n\n"
SPLIT_CHARS = 500
# Parts of a chat message with their own place in the stream (the rest follow as they are).
_MESSAGE_FIELDS = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})
_TOP_FIELDS = frozenset({"id", "object", "created", "model", "choices", "usage"})
_CHOICE_FIELDS = frozenset({"index", "message", "text", "logprobs", "finish_reason"})


def as_json(entry: Entry) -> bytes:
    """The cached answer as the body of a non-stream response."""
    return entry.body


def as_stream(entry: Entry, include_usage: bool) -> list[bytes]:
    """The cached answer as SSE events (``data: {...}\\n\\n`` each, ``data: [DONE]\\n\\n`` last).

    Raises ``ValueError`` for an answer that has no stream form (embeddings, images).
    """
    if entry.kind not in (CHAT, TEXT):
        raise ValueError(f"a cached '{entry.kind}' answer cannot be replayed as a stream")
    data = orjson.loads(entry.body)
    pieces = entry.pieces or {}
    base: dict[str, Any] = {
        "id": data.get("id"),
        "object": "chat.completion.chunk" if entry.kind == CHAT else TEXT,
        "created": data.get("created"),
        "model": data.get("model"),
    }
    for name, value in data.items():
        if name not in _TOP_FIELDS:
            base[name] = value
    if include_usage:
        base["usage"] = None
    events: list[bytes] = []
    for choice in data.get("choices") or ():
        cuts = pieces.get(choice.get("index", 0), {})
        payloads = _chat_choice(choice, cuts) if entry.kind == CHAT else _text_choice(choice, cuts)
        events.extend(_sse({**base, "choices": [payload]}) for payload in payloads)
    usage = data.get("usage")
    if include_usage and usage is not None:
        events.append(_sse({**base, "choices": [], "usage": usage}))
    events.append(DONE)
    return events


def _chat_choice(choice: Mapping[str, Any], cuts: Mapping[str, list[int]]) -> Iterator[dict[str, Any]]:
    index = choice.get("index", 0)
    message: Mapping[str, Any] = choice.get("message") or {}
    logprobs = choice.get("logprobs")

    def chunk(delta: dict[str, Any], finish: Any = None, lp: Any = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}

    content = message.get("content")
    yield chunk(
        {"role": message.get("role") or "assistant", "content": "" if isinstance(content, str) else None}
    )
    for name, value in message.items():  # reasoning and other text fields come before the content
        if name not in _MESSAGE_FIELDS and isinstance(value, str):
            for part in _cut(value, cuts.get(name)):
                yield chunk({name: part})
    if isinstance(content, str):
        for part in _cut(content, cuts.get("content")):
            yield chunk({"content": part}, lp=logprobs)
            logprobs = None
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        for part in _cut(refusal, cuts.get("refusal")):
            yield chunk({"refusal": part})
    for position, call in enumerate(message.get("tool_calls") or ()):
        for delta in _tool_call_deltas(position, call):
            yield chunk({"tool_calls": [delta]})
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        yield chunk({"function_call": {"name": legacy.get("name"), "arguments": ""}})
        if legacy.get("arguments"):
            yield chunk({"function_call": {"arguments": legacy["arguments"]}})
    for name, value in message.items():
        if name not in _MESSAGE_FIELDS and value is not None and not isinstance(value, str):
            yield chunk({name: value})
    last = chunk({}, choice.get("finish_reason"), logprobs)
    last.update((k, v) for k, v in choice.items() if k not in _CHOICE_FIELDS)
    yield last


def _tool_call_deltas(position: int, call: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(call, dict):
        return
    function = call.get("function")
    if not isinstance(function, dict):
        yield {"index": position, **call}  # a non-function tool call goes as it is
        return
    head = {"index": position, "id": call.get("id"), "type": call.get("type") or "function"}
    head["function"] = {"name": function.get("name"), "arguments": ""}
    yield head
    arguments = function.get("arguments")
    if arguments:
        yield {"index": position, "function": {"arguments": arguments}}


def _text_choice(choice: Mapping[str, Any], cuts: Mapping[str, list[int]]) -> Iterator[dict[str, Any]]:
    index = choice.get("index", 0)
    logprobs = choice.get("logprobs")
    text = choice.get("text")
    for part in _cut(text if isinstance(text, str) else "", cuts.get("text")):
        yield {"text": part, "index": index, "logprobs": logprobs, "finish_reason": None}
        logprobs = None
    last = {"text": "", "index": index, "logprobs": logprobs, "finish_reason": choice.get("finish_reason")}
    last.update((k, v) for k, v in choice.items() if k not in _CHOICE_FIELDS)
    yield last


def _cut(text: str, lengths: list[int] | None) -> Iterator[str]:
    """``text`` in the recorded pieces when they add up to it, else in ``SPLIT_CHARS`` pieces."""
    if lengths and sum(lengths) == len(text):
        start = 0
        for length in lengths:
            yield text[start : start + length]
            start += length
        return
    for start in range(0, len(text), SPLIT_CHARS):
        yield text[start : start + SPLIT_CHARS]


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
