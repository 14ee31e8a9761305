"""Anthropic Messages answers and errors -> the OpenAI shapes (reference/providers.md §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import provider_error_body
from wayport.providers.base import openai_style_error
from wayport.providers.openai_shapes import chat_completion, usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # "resend to continue" (a server tool paused the turn): the answer so far is complete
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def finish_reason(stop_reason: Any, strict: bool) -> str:
    """Strict: OpenAI's four values (unknown -> ``stop``); otherwise Anthropic's raw reason."""
    if not stop_reason:
        return "stop"
    if not strict:
        return str(stop_reason)
    return FINISH_REASONS.get(str(stop_reason), "stop")


def openai_usage(native: Mapping[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage where ``prompt_tokens`` counts every input token.

    Anthropic reports input in three disjoint parts (uncached, written to cache, read from
    cache); their sum is the prompt. Portkey reports only the uncached part as prompt_tokens but
    adds the cache parts to total_tokens, so its total is not prompt + completion.
    """
    native = native or {}
    fresh = int(native.get("input_tokens") or 0)
    created = int(native.get("cache_creation_input_tokens") or 0)
    read = int(native.get("cache_read_input_tokens") or 0)
    details = native.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return usage(
        fresh + created + read,
        int(native.get("output_tokens") or 0),
        cached_tokens=read,
        cache_creation_tokens=created,
        reasoning_tokens=int(thinking) if thinking is not None else None,
    )


def tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
    }


def anthropic_to_openai(data: Mapping[str, Any], *, provider: str, strict: bool) -> dict[str, Any]:
    """An Anthropic ``message`` -> an OpenAI ``chat.completion`` with the ``provider`` field.

    Text blocks are joined into ``content``; ``tool_use`` blocks become ``tool_calls``. With
    ``strict=False`` the raw stop reason is kept and ``content_blocks`` carries every block but
    the tool calls (thinking with its signature included), as Portkey does.
    """
    if data.get("type") == "error":
        raise ValueError("an error body arrived with a success status")
    blocks = data["content"]
    if not isinstance(blocks, list):
        raise TypeError("'content' is not a list")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(tool_call(block))
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if not strict:
        message["content_blocks"] = [b for b in blocks if b.get("type") != "tool_use"]
    return chat_completion(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        message=message,
        finish_reason=finish_reason(data.get("stop_reason"), strict),
        usage=openai_usage(data.get("usage")),
        provider=provider,
    )


def anthropic_error(provider: str, body: bytes) -> bytes:
    """Anthropic's ``{"type":"error","error":{"type","message"}}`` (or Google's
    ``{"error":{"code","status","message"}}`` on Vertex AI) -> the OpenAI error shape."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        if "status" in error and "type" not in error:  # Google's shape
            return provider_error_body(
                provider, error["message"], error.get("status"), None, error.get("code")
            )
        return provider_error_body(provider, error["message"], error.get("type"))
    return openai_style_error(provider, body)
