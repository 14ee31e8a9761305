"""Google's Gemini API (AI Studio, ``generativelanguage.googleapis.com``), reference/providers.md §4.

Chat goes to ``{base}/models/{model}:generateContent`` or ``:streamGenerateContent?alt=sse``;
embeddings to ``:batchEmbedContents`` whatever the number of inputs. The key travels in the
``x-goog-api-key`` header, never in the URL (Portkey puts it in the query string, where access
logs and proxies keep it). The translations live in ``gemini_request``, ``gemini_response`` and
``gemini_stream``, which Vertex AI shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from wayport.errors import BadRequest
from wayport.providers.base import Endpoint, StreamTranslator, Target, UpstreamRequest
from wayport.providers.gemini_request import generate_content_body
from wayport.providers.gemini_response import (
    embedding_inputs,
    embeddings_list,
    generate_content_to_openai,
    google_error,
    retry_after_seconds,
)
from wayport.providers.gemini_stream import GeminiStreamTranslator

PUBLIC_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
# A current generally available model; Portkey's default (gemini-1.5-pro) has been retired.
DEFAULT_MODEL = "gemini-2.5-flash"
SUPPORTED = frozenset({Endpoint.CHAT, Endpoint.EMBED, Endpoint.PROXY})


def model_path(params: Mapping[str, Any], provider: str) -> str:
    """The model id as it goes into a URL path (``models/`` prefix accepted, ``@`` kept)."""
    model = str(params.get("model") or "").removeprefix("models/")
    if not model:
        raise BadRequest(f"{provider} needs a model: set 'model' in the request or override_params")
    return quote(model, safe="@")


def chat_method(params: Mapping[str, Any]) -> str:
    return ":streamGenerateContent?alt=sse" if params.get("stream") is True else ":generateContent"


class GoogleAdapter:
    """The Gemini API: OpenAI chat and embeddings translated to ``generateContent`` and
    ``batchEmbedContents``, answers and errors translated back."""

    name = "google"
    default_model: str | None = DEFAULT_MODEL

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or PUBLIC_BASE_URL).rstrip("/")

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in SUPPORTED

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        model = model_path(params, self.name)
        base = self._base(target)
        if endpoint is Endpoint.EMBED:
            url = f"{base}/models/{model}:batchEmbedContents"
            body: dict[str, Any] = batch_embed_body(params, model)
        else:
            url = f"{base}/models/{model}{chat_method(params)}"
            body = generate_content_body(params)
        return UpstreamRequest("POST", url, self._headers(target, json_body=True), orjson.dumps(body))

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        return self._base(target) + path_and_query, self._headers(target, json_body=False)

    def _base(self, target: Target) -> str:
        return target.custom_host.rstrip("/") if target.custom_host else self.base_url

    def _headers(self, target: Target, *, json_body: bool) -> dict[str, str]:
        if target.api_key is None:
            raise BadRequest(
                "google needs an API key: set 'api_key' in the config or send it as Authorization: Bearer"
            )
        headers = {"x-goog-api-key": target.api_key.value}
        if json_body:
            headers["content-type"] = "application/json"
        return headers

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        data = orjson.loads(body)
        if endpoint is Endpoint.EMBED:
            vectors = [e["values"] for e in data["embeddings"]]
            # the Gemini API reports no token counts for embeddings: 0 (Portkey says -1)
            return orjson.dumps(embeddings_list(vectors, params, provider=self.name, tokens=0))
        return orjson.dumps(generate_content_to_openai(data, params, provider=self.name, strict=strict))

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return GeminiStreamTranslator(params, provider=self.name, strict=strict)

    def retry_after_s(self, body: bytes) -> float | None:
        return retry_after_seconds(body)  # Google puts RetryInfo in the body, never a retry-after header

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        return google_error(self.name, body)


def batch_embed_body(params: Mapping[str, Any], model: str) -> dict[str, Any]:
    """One ``batchEmbedContents`` request per input text, in order (joining the texts into one
    ``content`` would give one embedding for all of them)."""
    common: dict[str, Any] = {}
    if params.get("dimensions") is not None:
        common["outputDimensionality"] = params["dimensions"]
    if params.get("task_type"):
        common["taskType"] = params["task_type"]
    return {
        "requests": [
            {"model": f"models/{model}", "content": {"parts": [{"text": text}]}, **common}
            for text in embedding_inputs(params)
        ]
    }
