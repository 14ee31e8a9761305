"""Vertex AI (reference/providers.md §5): Gemini and Anthropic models in a Google Cloud project.

URL: ``{host}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}``
where ``{host}`` is ``https://{region}-aiplatform.googleapis.com`` (``global`` ->
``https://aiplatform.googleapis.com``; ``us``/``eu`` -> ``https://aiplatform.{us|eu}.rep.googleapis.com``),
replaced by ``custom_host`` or ``WAYPORT_BASE_URL_VERTEX_AI``. Gemini models take the Gemini
body (``:generateContent`` / ``:streamGenerateContent?alt=sse``); models whose id starts with
``claude`` (or ``anthropic.``) go to ``publishers/anthropic`` with the Anthropic Messages body
(``:rawPredict`` / ``:streamRawPredict``, no ``model``, ``anthropic_version: vertex-2023-10-16``).
Embeddings use ``:predict``. Auth is an OAuth2 access token as ``Authorization: Bearer``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from wayport.errors import BadRequest
from wayport.providers.anthropic import (
    AnthropicStreamTranslator,
    anthropic_error,
    anthropic_to_openai,
    build_anthropic_body,
)
from wayport.providers.base import Endpoint, FanOut, StreamTranslator, Target, UpstreamRequest
from wayport.providers.gemini_request import generate_content_body
from wayport.providers.gemini_response import (
    embedding_inputs,
    embeddings_list,
    generate_content_to_openai,
    google_error,
    retry_after_seconds,
)
from wayport.providers.gemini_stream import GeminiStreamTranslator
from wayport.providers.google import DEFAULT_MODEL, chat_method

PROVIDER = "vertex-ai"
ANTHROPIC_VERSION = "vertex-2023-10-16"
SUPPORTED = frozenset({Endpoint.CHAT, Endpoint.EMBED, Endpoint.PROXY})
# A region becomes part of a host name: only the characters real regions use.
REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Instances per :predict call: Gemini embedding models take one, the text-embedding models 250.
GEMINI_EMBED_BATCH = 1
TEXT_EMBED_BATCH = 250

MISSING_TOKEN = (
    "vertex-ai needs an OAuth2 access token: set 'api_key' (or a service-account key as "
    "'vertex_service_account_json') in the config, or send Authorization: Bearer <token> "
    "(e.g. from `gcloud auth print-access-token`)"
)


def publisher_and_model(params: Mapping[str, Any]) -> tuple[str, str]:
    """``("anthropic", "claude-...")`` for Claude models, else ``("google", model)``."""
    model = str(params.get("model") or "")
    if not model:
        raise BadRequest("vertex-ai needs a model: set 'model' in the request or override_params")
    if model.startswith("anthropic."):
        return "anthropic", model.removeprefix("anthropic.")
    if model.startswith("claude"):
        return "anthropic", model
    return "google", model.removeprefix("google.").removeprefix("models/")


class VertexAIAdapter:
    """Vertex AI's publisher models: Gemini (``generateContent``), Anthropic (``rawPredict``)
    and text embeddings (``predict``), with the project and region from the config."""

    name = PROVIDER
    default_model: str | None = DEFAULT_MODEL

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in SUPPORTED

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest | FanOut:
        headers = self._headers(target, json_body=True)
        publisher, model = publisher_and_model(params)
        url = f"{self._location_url(target)}/publishers/{publisher}/models/{quote(model, safe='@')}"
        stream = params.get("stream") is True
        if endpoint is Endpoint.EMBED:
            if publisher != "google":
                raise BadRequest(f"vertex-ai: {model} has no embeddings; use a Google embedding model")
            return _embed_requests(url + ":predict", headers, params, model)
        if publisher == "anthropic":
            body = build_anthropic_body(params, include_model=False)
            body["anthropic_version"] = ANTHROPIC_VERSION
            url += ":streamRawPredict" if stream else ":rawPredict"
            beta = target.options.get("anthropic_beta")
            if beta:
                headers["anthropic-beta"] = ",".join(beta) if isinstance(beta, list) else str(beta)
        else:
            body = generate_content_body(params)
            url += chat_method(params)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        """Paths are relative to ``{host}/v1/projects/{project}/locations/{region}``."""
        return self._location_url(target) + path_and_query, self._headers(target, json_body=False)

    def _location_url(self, target: Target) -> str:
        options = target.options
        project = options.get("vertex_project_id")
        region = options.get("vertex_region")
        missing = [
            f"'{field}' (header {header})"
            for field, header, value in (
                ("vertex_project_id", "x-portkey-vertex-project-id", project),
                ("vertex_region", "x-portkey-vertex-region", region),
            )
            if not value
        ]
        if missing:
            raise BadRequest(f"vertex-ai needs {' and '.join(missing)} in the config")
        region = str(region)
        if not REGION.match(region):
            raise BadRequest(f"vertex-ai: '{region}' is not a valid vertex_region (e.g. us-central1, global)")
        return f"{self._host(target, region)}/v1/projects/{quote(str(project), safe='')}/locations/{region}"

    def _host(self, target: Target, region: str) -> str:
        if target.custom_host:
            return target.custom_host.rstrip("/")
        if self.base_url:
            return self.base_url
        if region == "global":
            return "https://aiplatform.googleapis.com"
        if region in ("us", "eu"):
            return f"https://aiplatform.{region}.rep.googleapis.com"
        return f"https://{region}-aiplatform.googleapis.com"

    def _headers(self, target: Target, *, json_body: bool) -> dict[str, str]:
        if target.api_key is None:  # a service-account key was made a token by the gateway already
            raise BadRequest(MISSING_TOKEN)
        token = target.api_key.value
        headers = {"authorization": token if token.startswith("Bearer ") else "Bearer " + token}
        if json_body:
            headers["content-type"] = "application/json"
        return headers

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        if endpoint is Endpoint.EMBED:
            return predictions_to_openai([body], params)
        data = orjson.loads(body)
        if publisher_and_model(params)[0] == "anthropic":
            return orjson.dumps(anthropic_to_openai(data, provider=self.name, strict=strict))
        return orjson.dumps(generate_content_to_openai(data, params, provider=self.name, strict=strict))

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        if publisher_and_model(params)[0] == "anthropic":
            return AnthropicStreamTranslator(params, provider=self.name, strict=strict)
        return GeminiStreamTranslator(params, provider=self.name, strict=strict)

    def retry_after_s(self, body: bytes) -> float | None:
        return retry_after_seconds(body)  # Google puts RetryInfo in the body, never a retry-after header

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        # Claude models answer Anthropic-shaped errors; quota and auth errors are Google-shaped.
        if body.lstrip().startswith(b"{") and b'"type"' in body:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict) and data.get("type") == "error":
                return anthropic_error(self.name, body)
        return google_error(self.name, body)


def _embed_requests(
    url: str, headers: dict[str, str], params: Mapping[str, Any], model: str
) -> UpstreamRequest | FanOut:
    """``:predict`` calls for the inputs, split into the batches the model accepts."""
    parameters: dict[str, Any] = {}
    if params.get("dimensions") is not None:
        parameters["outputDimensionality"] = params["dimensions"]
    task_type = params.get("task_type")
    instances = [
        {"content": text, **({"task_type": task_type} if task_type else {})}
        for text in embedding_inputs(params)
    ]
    size = GEMINI_EMBED_BATCH if model.startswith("gemini-") else TEXT_EMBED_BATCH
    requests = []
    for start in range(0, len(instances), size):
        body: dict[str, Any] = {"instances": instances[start : start + size]}
        if parameters:
            body["parameters"] = parameters
        requests.append(UpstreamRequest("POST", url, dict(headers), orjson.dumps(body)))
    if len(requests) == 1:
        return requests[0]
    combine: Callable[[list[bytes]], bytes] = lambda bodies: predictions_to_openai(bodies, params)  # noqa: E731
    return FanOut(tuple(requests), combine)


def predictions_to_openai(bodies: list[bytes], params: Mapping[str, Any]) -> bytes:
    """The ``predictions`` of one or more ``:predict`` answers (in order) as OpenAI embeddings;
    usage is the sum of ``statistics.token_count``. A body already translated (the gateway runs
    ``translate_response`` on each call of a fan-out before combining) is merged as it is."""
    data: list[dict[str, Any]] = []
    tokens = 0
    for body in bodies:
        answer = orjson.loads(body)
        if "data" in answer:
            data.extend(answer["data"])
            tokens += int(answer["usage"]["prompt_tokens"])
            continue
        vectors = []
        for prediction in answer["predictions"]:
            embeddings = prediction["embeddings"]
            vectors.append(embeddings["values"])
            tokens += int((embeddings.get("statistics") or {}).get("token_count") or 0)
        data.extend(embeddings_list(vectors, params, provider=PROVIDER, tokens=0)["data"])
    for index, item in enumerate(data):
        item["index"] = index
    answer = embeddings_list([], params, provider=PROVIDER, tokens=tokens)
    answer["data"] = data
    return orjson.dumps(answer)
