"""Gemini answers -> OpenAI shapes: ``generateContent`` responses, finish reasons, usage,
embeddings and google.rpc.Status errors (reference/providers.md §0.3, §0.4, §4, §12).

Shared by the Gemini API and Vertex AI adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from wayport.entropy import random_bytes
from wayport.errors import ProviderError, provider_error_body
from wayport.providers.base import openai_style_error
from wayport.providers.openai_shapes import chat_completion, embedding_list, new_id, text_inputs, usage

CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
        "NO_IMAGE",
    }
)
# The model failed to produce a usable answer; Portkey maps these to "stop", which hides the
# failure behind an empty message. Wayport answers with an error instead.
FAILED_REASONS = {
    "MALFORMED_FUNCTION_CALL": "the model generated a function call that is not valid",
    "UNEXPECTED_TOOL_CALL": "the model called a tool although no tool was enabled",
    "TOO_MANY_TOOL_CALLS": "the model made too many tool calls in a row",
}
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
BAD_REQUEST_INFO = "type.googleapis.com/google.rpc.BadRequest"


def finish_reason(raw: str | None, has_tool_calls: bool, strict: bool) -> str:
    """Gemini's ``finishReason`` for OpenAI: the raw value when not strict (as Portkey does),
    otherwise stop / length / tool_calls / content_filter. ``STOP`` with a ``functionCall``
    part is ``tool_calls``; Gemini has no reason of its own for it."""
    if not strict:
        return raw or "stop"
    if raw == "MAX_TOKENS":
        return "length"
    if raw in CONTENT_FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


def failure_message(candidate: Mapping[str, Any]) -> str | None:
    """The error text for a candidate that ended in one of ``FAILED_REASONS``, else ``None``."""
    reason = candidate.get("finishReason")
    described = FAILED_REASONS.get(reason) if isinstance(reason, str) else None
    if described is None:
        return None
    detail = candidate.get("finishMessage")
    return f"{described} ({reason})" + (f": {detail}" if detail else "")


def gemini_usage(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``usageMetadata`` in OpenAI terms, with total == prompt + completion (== Google's
    ``totalTokenCount``): thoughts count as completion tokens, tool-use prompt tokens as prompt
    tokens; ``promptTokenCount`` already includes the cached tokens."""
    if not meta:
        return None
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount")
    completion = int(meta.get("candidatesTokenCount") or 0) + int(thoughts or 0)
    return usage(
        prompt,
        completion,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=int(thoughts) if thoughts is not None else None,
    )


def new_call_id() -> str:
    return "call_" + random_bytes(12).hex()


def tool_call(part: Mapping[str, Any]) -> dict[str, Any]:
    """A ``functionCall`` part as an OpenAI tool call. Gemini's calls usually have no id, so one
    is made up; a thought signature rides along in Google's ``extra_content`` extension so that
    clients echoing the tool call back keep Gemini 3's multi-turn function calling working."""
    call = part["functionCall"]
    out: dict[str, Any] = {
        "id": call.get("id") or new_call_id(),
        "type": "function",
        "function": {"name": call["name"], "arguments": orjson.dumps(call.get("args") or {}).decode()},
    }
    signature = part.get("thoughtSignature")
    if signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _choice(candidate: Mapping[str, Any], position: int, strict: bool) -> dict[str, Any]:
    parts = (candidate.get("content") or {}).get("parts") or []
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts:
        if "functionCall" in part:
            calls.append(tool_call(part))
        elif "text" in part:
            (thoughts if part.get("thought") else texts).append(part["text"])
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": None if calls and not text else text}
    if calls:
        message["tool_calls"] = calls
    if thoughts and not strict:
        blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": "".join(thoughts)}]
        if text:
            blocks.append({"type": "text", "text": text})
        message["content_blocks"] = blocks
    return {
        "index": candidate.get("index", position),
        "message": message,
        "logprobs": _logprobs(candidate.get("logprobsResult")),
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls), strict),
    }


def _logprobs(result: Any) -> dict[str, Any] | None:
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content = []
    for i, token in enumerate(chosen):
        top = tops[i].get("candidates", []) if i < len(tops) else []
        content.append(
            {
                "token": token.get("token", ""),
                "logprob": token.get("logProbability", 0.0),
                "bytes": None,
                "top_logprobs": [
                    {"token": t.get("token", ""), "logprob": t.get("logProbability", 0.0), "bytes": None}
                    for t in top
                ],
            }
        )
    return {"content": content}


def generate_content_to_openai(
    data: Mapping[str, Any], params: Mapping[str, Any], *, provider: str, strict: bool
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` as a ``chat.completion``. Raises ``ProviderError`` when a
    candidate ended in a failure reason (``MALFORMED_FUNCTION_CALL`` ...)."""
    candidates = data.get("candidates") or []
    for candidate in candidates:
        failed = failure_message(candidate)
        if failed:
            raise ProviderError(provider, failed, status=502, type_=candidate["finishReason"])
    if candidates:
        choices = [_choice(c, i, strict) for i, c in enumerate(candidates)]
        choices.sort(key=lambda c: c["index"])
    else:
        block = (data.get("promptFeedback") or {}).get("blockReason")
        if not block:
            raise ValueError("the response has neither candidates nor promptFeedback.blockReason")
        reason = "content_filter" if strict else str(block)
        choices = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": reason,
            }
        ]
    answer = chat_completion(
        id=data.get("responseId") or new_id(),
        model=data.get("modelVersion") or str(params.get("model") or ""),
        message={},
        finish_reason=None,
        usage=gemini_usage(data.get("usageMetadata")) or usage(0, 0),
        provider=provider,
    )
    answer["choices"] = choices
    return answer


# -- embeddings -----------------------------------------------------------------------------


def embedding_inputs(params: Mapping[str, Any]) -> list[str]:
    """The ``input`` of an embeddings request as a list of texts (Google takes no token ids)."""
    return text_inputs(params, "google")


def embeddings_list(
    vectors: Sequence[Sequence[float]], params: Mapping[str, Any], *, provider: str, tokens: int
) -> dict[str, Any]:
    """OpenAI's embeddings list (Google reports no token usage: ``tokens`` is what is known)."""
    return embedding_list(vectors, params, provider=provider, tokens=tokens)


# -- errors ---------------------------------------------------------------------------------


def google_error(provider: str, body: bytes) -> bytes:
    """A google.rpc.Status error (``{"error": {code, message, status, details}}``, possibly wrapped
    in a JSON array as Vertex streams do) in the OpenAI shape: ``type`` = status, ``code`` = the
    numeric code (as Portkey), ``param`` = the first field violation. A 429's ``RetryInfo`` delay
    is kept in the message, since Google sends no ``retry-after`` header."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return openai_style_error(provider, body)
    message: str = error["message"]
    raw_details = error.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    delay = retry_delay(details)
    if delay and "retry" not in message.lower():
        message = f"{message} (retry after {delay})"
    return provider_error_body(provider, message, error.get("status"), _field(details), error.get("code"))


def retry_after_seconds(body: bytes) -> float | None:
    """Google's ``RetryInfo.retryDelay`` of an error body in seconds, or ``None``. Google sends no
    ``retry-after`` header; this is the value a gateway could put there for the retry logic."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    delay = retry_delay(details) if isinstance(details, list) else None
    if delay is None or not delay.endswith("s"):
        return None
    try:
        return float(delay[:-1])
    except ValueError:
        return None


def retry_delay(details: Sequence[Any]) -> str | None:
    """``RetryInfo.retryDelay`` (a duration such as ``"36s"``) from an error's details."""
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO and detail.get("retryDelay"):
            return str(detail["retryDelay"])
    return None


def _field(details: Sequence[Any]) -> str | None:
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == BAD_REQUEST_INFO:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and violation.get("field"):
                    return str(violation["field"])
    return None
