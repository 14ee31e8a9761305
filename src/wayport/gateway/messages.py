"""The Anthropic-compatible ingress, ``POST /v1/messages``: Anthropic-format clients reach any
provider. To an Anthropic target the request goes as it is; to any other it is translated to an
OpenAI chat request, and the answer (JSON, stream or error) is translated back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest
from wayport.gateway.reply import JSON, Reply
from wayport.ingress.anthropic_messages import (
    OpenAIToMessagesStream,
    messages_to_openai,
    openai_error_to_messages,
    openai_to_messages,
)

NATIVE_PROVIDER = "anthropic"
NATIVE_PATH = "/messages"


def request_to_openai(body: Mapping[str, Any]) -> dict[str, Any]:
    if not body.get("model"):
        raise BadRequest("model: Field required (the Messages API needs a model)")
    try:
        return messages_to_openai(body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"Invalid Messages request: {exc}") from None


def reply_to_messages(reply: Reply, model: str) -> Reply:
    """Translate an OpenAI-shaped reply (or a gateway error) to the Messages API's shape."""
    if reply.stream is not None:
        if 200 <= reply.status < 300:
            reply.stream = _translated_stream(reply.stream, OpenAIToMessagesStream(model=model))
        return reply
    headers = [h for h in reply.headers if h[0] != b"content-type"] + [JSON]
    if 200 <= reply.status < 300:
        try:
            body = orjson.dumps(openai_to_messages(orjson.loads(reply.body), model=model))
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            return Reply(502, headers, openai_error_to_messages(502, _invalid(exc)))
        return Reply(reply.status, headers, body)
    body = openai_error_to_messages(reply.status, reply.body)
    return Reply(reply.status, headers, body, gateway_exception=reply.gateway_exception)


async def _translated_stream(
    stream: AsyncIterator[bytes], translator: OpenAIToMessagesStream
) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            out = translator.feed(chunk)
            if out:
                yield out
        rest = translator.close()
        if rest:
            yield rest
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _invalid(exc: Exception) -> bytes:
    return orjson.dumps(
        {"error": {"message": f"Invalid response from the provider: {exc!r}", "type": "api_error"}}
    )
