"""Building blocks of the OpenAI shapes that every translating adapter produces or reads.

Translators build answers with these so that ids, usage arithmetic, SSE framing and the
``include_usage`` rule are the same for every provider.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from wayport.entropy import random_bytes

DONE = b"data: [DONE]\n\n"


def new_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{random_bytes(16).hex()}"


def now() -> int:
    return int(time.time())


def sse(payload: Mapping[str, Any]) -> bytes:
    """One ``data: {...}`` event, as OpenAI frames it."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def text_of(content: Any) -> str:
    """The text of a message's ``content``: a string, or the ``text`` parts of a parts list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ``("image/png", "AAAA")``; ``None`` for other URLs."""
    if not url.startswith("data:"):
        return None
    header, _, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64":
        data = base64.b64encode(data.encode()).decode()
    return media_type or "application/octet-stream", data


def text_inputs(params: Mapping[str, Any], provider: str) -> list[str]:
    """An embeddings request's ``input`` as a non-empty list of texts (token ids are refused)."""
    raw = params.get("input")
    items: list[Any] = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) for item in items):
        from wayport.errors import BadRequest

        raise BadRequest(f"{provider} embeddings take 'input' as a string or a non-empty list of strings")
    return items


def encode_vector(vector: Sequence[float], params: Mapping[str, Any]) -> list[float] | str:
    """A vector as the client asked for it: a list, or with ``encoding_format: base64`` (the openai
    SDK's default) little-endian float32 values in base64."""
    if params.get("encoding_format") != "base64":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_list(
    vectors: Sequence[Sequence[float]],
    params: Mapping[str, Any],
    *,
    provider: str,
    tokens: int,
    model: str | None = None,
) -> dict[str, Any]:
    """OpenAI's embeddings answer (``object: list``) for ``vectors`` in input order."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, params)}
            for i, v in enumerate(vectors)
        ],
        "model": model or str(params.get("model") or ""),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "provider": provider,
    }


def max_tokens_of(params: Mapping[str, Any]) -> int | None:
    """``max_completion_tokens`` (current) or ``max_tokens`` (legacy)."""
    value = params.get("max_completion_tokens", params.get("max_tokens"))
    return int(value) if value is not None else None


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def wants_usage(params: Mapping[str, Any]) -> bool:
    options = params.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int | None = None,
    cache_creation_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> dict[str, Any]:
    """OpenAI usage with ``total_tokens == prompt_tokens + completion_tokens`` always.

    ``prompt_tokens`` must already include cached and cache-creation tokens; they are reported
    again in ``prompt_tokens_details`` (cost needs them). ``reasoning_tokens`` are part of
    ``completion_tokens``.
    """
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    details: dict[str, int] = {"cached_tokens": cached_tokens or 0}
    if cache_creation_tokens:
        details["cache_creation_tokens"] = cache_creation_tokens
    out["prompt_tokens_details"] = details
    if reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return out


def chat_completion(
    *,
    id: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage: dict[str, Any] | None,
    provider: str,
    created: int | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` with one choice and Portkey's top-level ``provider`` field."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created or now(),
        "model": model,
        "provider": provider,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage,
    }


class ChunkWriter:
    """Writes the ``chat.completion.chunk`` events of one stream with a fixed id, model and time.

    Every chunk carries ``"usage": null`` when the client asked for ``include_usage``, and the
    usage chunk (``choices: []``) is written only then, as OpenAI does.
    """

    def __init__(self, params: Mapping[str, Any], provider: str, model: str | None = None) -> None:
        self.id = new_id()
        self.created = now()
        self.model = model or str(params.get("model") or "")
        self.provider = provider
        self.include_usage = wants_usage(params)
        self.usage: dict[str, Any] | None = None

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> bytes:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "provider": self.provider,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            payload["usage"] = None
        return sse(payload)

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        """The usage chunk when the client asked for it; the usage is kept either way."""
        self.usage = usage
        if not self.include_usage:
            return b""
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "provider": self.provider,
                "choices": [],
                "usage": usage,
            }
        )

    def error(self, message: str, type_: str | None = None, code: Any = None) -> bytes:
        """An error event (which OpenAI clients raise) followed by ``[DONE]``."""
        body = {
            "error": {
                "message": f"{self.provider} error: {message}",
                "type": type_,
                "param": None,
                "code": code,
            }
        }
        return sse(body) + DONE
