"""Azure OpenAI: OpenAI's wire format behind Azure's URL shape and ``api-key`` header.

Deployment style ``{base}/openai/deployments/{deployment_id}/<path>?api-version=...`` when a
``deployment_id`` is set; otherwise the v1 style ``{base}/openai/v1/<path>`` where the body's
``model`` names the deployment. ``{base}`` is ``https://{resource_name}.openai.azure.com`` unless
``WAYPORT_BASE_URL_AZURE_OPENAI`` or ``custom_host`` replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from wayport.errors import BadRequest
from wayport.providers.base import Endpoint, StreamTranslator, Target, UpstreamRequest, openai_style_error
from wayport.providers.openai_compatible import PATHS

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter:
    name = "azure-openai"
    default_model: str | None = None

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None

    def supports(self, endpoint: Endpoint) -> bool:
        return True

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        body = raw_body if raw_body is not None else orjson.dumps(params)
        url = self._url(target, PATHS[endpoint])
        return UpstreamRequest("POST", url, self._headers(target, json_body=True), body)

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        return self._host(target) + "/openai" + path_and_query, self._headers(target, json_body=False)

    def _host(self, target: Target) -> str:
        if target.custom_host:
            return target.custom_host
        if self.base_url:
            return self.base_url
        resource = target.options.get("resource_name")
        if not resource:
            raise BadRequest(
                "azure-openai needs 'resource_name' in the config "
                "(or the x-portkey-azure-resource-name header)"
            )
        return f"https://{quote(str(resource), safe='')}.openai.azure.com"

    def _url(self, target: Target, path: str) -> str:
        options = target.options
        deployment = options.get("deployment_id")
        if not deployment:
            return f"{self._host(target)}/openai/v1{path}"
        version = options.get("api_version") or DEFAULT_API_VERSION
        return (
            f"{self._host(target)}/openai/deployments/{quote(str(deployment), safe='')}{path}"
            f"?api-version={quote(str(version), safe='')}"
        )

    def _headers(self, target: Target, *, json_body: bool) -> dict[str, str]:
        headers = {"content-type": "application/json"} if json_body else {}
        token = target.options.get("azure_ad_token")
        if token:
            headers["authorization"] = "Bearer " + str(token).removeprefix("Bearer ")
        elif target.api_key is not None:
            headers["api-key"] = target.api_key.value
        return headers

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        data = orjson.loads(body)
        if isinstance(data, dict):
            data["provider"] = self.name
            return orjson.dumps(data)
        return body

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return None

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        return openai_style_error(self.name, body)
