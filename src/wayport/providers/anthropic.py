"""Anthropic's Messages API (``POST {base}/messages``) behind the OpenAI chat shape.

The translation lives in three modules other adapters reuse (Vertex AI and Bedrock serve
Anthropic models with the same body and stream): ``anthropic_request`` (OpenAI request ->
Messages body), ``anthropic_response`` (answer, usage, finish reasons, errors) and
``anthropic_stream`` (SSE events -> OpenAI chunks). This module adds URL and auth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest
from wayport.providers.anthropic_request import DEFAULT_MAX_TOKENS, build_anthropic_body
from wayport.providers.anthropic_response import anthropic_error, anthropic_to_openai, openai_usage
from wayport.providers.anthropic_stream import AnthropicStreamTranslator
from wayport.providers.base import Endpoint, StreamTranslator, Target, UpstreamRequest

__all__ = [
    "DEFAULT_ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "AnthropicAdapter",
    "AnthropicStreamTranslator",
    "anthropic_error",
    "anthropic_to_openai",
    "build_anthropic_body",
    "openai_usage",
]

BASE_URL = "https://api.anthropic.com/v1"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"


class AnthropicAdapter:
    """Chat completions over Anthropic's Messages API; auth is ``x-api-key`` and
    ``anthropic-version`` (config ``anthropic_version`` / ``x-portkey-anthropic-version``), plus
    ``anthropic-beta`` when ``anthropic_beta`` is set."""

    name = "anthropic"
    default_model: str | None = "claude-haiku-4-5"

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or BASE_URL).rstrip("/")

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint is Endpoint.CHAT

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        body = orjson.dumps(build_anthropic_body(params))
        url = (target.custom_host or self.base_url).rstrip("/") + "/messages"
        return UpstreamRequest("POST", url, self._headers(target, json_body=True), body)

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        base = (target.custom_host or self.base_url).rstrip("/")
        return base + path_and_query, self._headers(target, json_body=False)

    def _headers(self, target: Target, *, json_body: bool) -> dict[str, str]:
        if target.api_key is None:
            raise BadRequest(
                "anthropic needs an API key: 'api_key' in the config (or Authorization: Bearer <key>)"
            )
        options = target.options
        headers = {"content-type": "application/json"} if json_body else {}
        headers["x-api-key"] = target.api_key.value
        headers["anthropic-version"] = str(options.get("anthropic_version") or DEFAULT_ANTHROPIC_VERSION)
        beta = options.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = ",".join(beta) if isinstance(beta, list) else str(beta)
        return headers

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        return orjson.dumps(anthropic_to_openai(orjson.loads(body), provider=self.name, strict=strict))

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return AnthropicStreamTranslator(params, provider=self.name, strict=strict)

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        return anthropic_error(self.name, body)
