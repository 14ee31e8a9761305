"""OpenAI and the providers that speak its wire format: rows of one table, one adapter class.

A row names the provider, its public base URL, the model ``portkey-default`` stands for and the
request fields the provider rejects (dropped before sending).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from wayport.providers.base import (
    Endpoint,
    StreamTranslator,
    Target,
    UpstreamRequest,
    openai_style_error,
)

PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.COMPLETE: "/completions",
    Endpoint.EMBED: "/embeddings",
    Endpoint.MODELS: "/models",
}

# config/header option -> upstream header (OpenAI's organisation and project scoping, beta flags)
OPENAI_OPTION_HEADERS = {
    "openai_organization": "OpenAI-Organization",
    "openai_project": "OpenAI-Project",
    "openai_beta": "OpenAI-Beta",
}


@dataclass(frozen=True, slots=True)
class CompatibleSpec:
    name: str
    base_url: str
    default_model: str | None = None
    drop_params: frozenset[str] = frozenset()
    # Portkey adds a top-level "provider" field to every provider's answers but OpenAI's own.
    add_provider_field: bool = True


ROWS: tuple[CompatibleSpec, ...] = (
    CompatibleSpec("openai", "https://api.openai.com/v1", "gpt-4o-mini", add_provider_field=False),
    CompatibleSpec(
        "groq",
        "https://api.groq.com/openai/v1",
        "llama-3.1-8b-instant",
        drop_params=frozenset({"logprobs", "logit_bias", "top_logprobs"}),
    ),
    CompatibleSpec("together-ai", "https://api.together.xyz/v1", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    CompatibleSpec("deepseek", "https://api.deepseek.com/v1", "deepseek-chat"),
    CompatibleSpec("fireworks-ai", "https://api.fireworks.ai/inference/v1"),
    CompatibleSpec("openrouter", "https://openrouter.ai/api/v1", "openrouter/auto"),
    CompatibleSpec("perplexity-ai", "https://api.perplexity.ai", "sonar"),
    CompatibleSpec("x-ai", "https://api.x.ai/v1", "grok-3-mini"),
    CompatibleSpec("anyscale", "https://api.endpoints.anyscale.com/v1"),
    CompatibleSpec("deepinfra", "https://api.deepinfra.com/v1/openai"),
    CompatibleSpec("cerebras", "https://api.cerebras.ai/v1", "llama3.1-8b"),
    CompatibleSpec("sambanova", "https://api.sambanova.ai/v1"),
    CompatibleSpec("nebius", "https://api.studio.nebius.ai/v1"),
    CompatibleSpec("lambda", "https://api.lambdalabs.com/v1"),
    CompatibleSpec("hyperbolic", "https://api.hyperbolic.xyz/v1"),
    CompatibleSpec("novita-ai", "https://api.novita.ai/v3/openai"),
    CompatibleSpec("moonshot", "https://api.moonshot.cn/v1"),
    CompatibleSpec("siliconflow", "https://api.siliconflow.cn/v1"),
    CompatibleSpec("dashscope", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
    CompatibleSpec("featherless-ai", "https://api.featherless.ai/v1"),
    CompatibleSpec("upstage", "https://api.upstage.ai/v1/solar"),
)


class OpenAICompatibleAdapter:
    """Adapter for one row of the table. Bodies pass through untouched unless a field must go."""

    def __init__(self, spec: CompatibleSpec, base_url: str | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.base_url = (base_url or spec.base_url).rstrip("/")
        self.default_model = spec.default_model

    def supports(self, endpoint: Endpoint) -> bool:
        return True

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        drop = self.spec.drop_params
        if drop and not drop.isdisjoint(params):
            params = {k: v for k, v in params.items() if k not in drop}
            raw_body = None
        body = raw_body if raw_body is not None else orjson.dumps(params)
        url = (target.custom_host or self.base_url) + PATHS[endpoint]
        return UpstreamRequest("POST", url, self._headers(target, json_body=True), body)

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        return (target.custom_host or self.base_url) + path_and_query, self._headers(target, json_body=False)

    def _headers(self, target: Target, *, json_body: bool) -> dict[str, str]:
        headers = {"content-type": "application/json"} if json_body else {}
        if target.api_key is not None:
            headers["authorization"] = "Bearer " + target.api_key.value
        options = target.options
        if options:
            for option, header in OPENAI_OPTION_HEADERS.items():
                value = options.get(option)
                if value:
                    headers[header] = str(value)
        return headers

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        data = orjson.loads(body)  # also rejects a malformed answer (a 502, so fallback can act)
        if not isinstance(data, dict):
            raise ValueError("the answer is not a JSON object")
        if not self.spec.add_provider_field:
            return body
        data["provider"] = self.name
        return orjson.dumps(data)

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return None

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        return openai_style_error(self.name, body)
