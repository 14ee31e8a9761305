"""AWS Bedrock: chat through Converse / ConverseStream, embeddings through Titan's InvokeModel.

Authentication is SigV4 (service ``bedrock``) with ``aws_access_key_id`` / ``aws_secret_access_key``
(+ ``aws_session_token``) and ``aws_region``, or a Bedrock API key sent as ``Authorization: Bearer``.
The host is ``https://bedrock-runtime.{region}.amazonaws.com`` unless ``custom_host`` or
``WAYPORT_BASE_URL_BEDROCK`` replaces it; the signature is computed for the host actually called.

The model id travels as one path segment with ``:`` left raw and ``/`` (ARNs) as ``%2F``; SigV4
must cover the path exactly as the upstream client writes it on the request line. The signer
encodes the sent path once more, so a path sent with ``%3A`` signs as ``%253A``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from wayport.errors import BadRequest, provider_error_body
from wayport.providers.aws_sigv4 import AwsCredentials, sign_headers
from wayport.providers.base import (
    Endpoint,
    FanOut,
    StreamTranslator,
    Target,
    UpstreamRequest,
    openai_style_error,
)
from wayport.providers.bedrock_converse import PROVIDER, chat_response, converse_request
from wayport.providers.bedrock_stream import ConverseStreamTranslator
from wayport.providers.openai_shapes import encode_vector, text_inputs

SIGNING_SERVICE = "bedrock"
# Characters that stay raw in a path segment: yarl leaves them alone, so what is signed is sent.
SEGMENT_SAFE = ":@!$&'()*+,;="

NO_CREDENTIALS = (
    "bedrock needs AWS credentials: 'aws_access_key_id' and 'aws_secret_access_key' in the config "
    "(or the x-portkey-aws-access-key-id and x-portkey-aws-secret-access-key headers), "
    "or a Bedrock API key as 'api_key' (or Authorization: Bearer)"
)
NO_REGION = "bedrock needs 'aws_region' in the config (or the x-portkey-aws-region header)"
NO_MODEL = "bedrock needs a model id: set 'model' in the body or override_params.model in the config"

_REGION = re.compile(r"[a-z0-9-]{1,32}")
_HOST_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")


class BedrockAdapter:
    """Adapter for Bedrock runtime: Converse chat (JSON and event stream) and Titan embeddings."""

    name = PROVIDER
    default_model: str | None = None

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in (Endpoint.CHAT, Endpoint.EMBED)

    # -- requests --------------------------------------------------------------------------

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest | FanOut:
        model = params.get("model")
        if not model or not isinstance(model, str):
            raise BadRequest(NO_MODEL)
        if endpoint == Endpoint.EMBED:
            return self._embed_request(target, model, params)
        if endpoint != Endpoint.CHAT:
            raise BadRequest(f"bedrock does not support {endpoint.value}")
        operation = "converse-stream" if params.get("stream") is True else "converse"
        body = orjson.dumps(converse_request(params))
        return self._request(target, "POST", f"/model/{model_segment(model)}/{operation}", body)

    def _embed_request(
        self, target: Target, model: str, params: Mapping[str, Any]
    ) -> UpstreamRequest | FanOut:
        if "titan-embed" not in model:
            raise BadRequest(f"bedrock embeddings support Amazon Titan embedding models, not {model!r}")
        path = f"/model/{model_segment(model)}/invoke"
        requests = tuple(
            self._request(target, "POST", path, orjson.dumps(titan_body(text, params)))
            for text in embedding_inputs(params)
        )
        if len(requests) == 1:
            return requests[0]
        # Titan embeds one input per call: N calls, sent concurrently by the gateway, combined here.
        return FanOut(requests, lambda bodies: orjson.dumps(combine_embeddings(bodies, params)))

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        credentials, bearer, region = self._auth(target)
        path, _, query = path_and_query.partition("?")
        url = self._base(target, region) + wire_path(path) + (f"?{query}" if query else "")
        if bearer is not None:
            return url, {"authorization": f"Bearer {bearer}"}
        assert credentials is not None and region is not None
        return url, sign_headers(method, url, {}, body or b"", credentials, region, SIGNING_SERVICE)

    def _request(self, target: Target, method: str, path: str, body: bytes) -> UpstreamRequest:
        credentials, bearer, region = self._auth(target)
        url = self._base(target, region) + path
        headers = {"content-type": "application/json"}
        if bearer is not None:
            headers["authorization"] = f"Bearer {bearer}"
            return UpstreamRequest(method, url, headers, body)
        assert credentials is not None and region is not None
        return UpstreamRequest(
            method, url, sign_headers(method, url, headers, body, credentials, region, SIGNING_SERVICE), body
        )

    def _auth(self, target: Target) -> tuple[AwsCredentials | None, str | None, str | None]:
        """(credentials, bearer key, region): SigV4 when the AWS key pair is set, else the API key."""
        options = target.options
        auth_type = str(options.get("aws_auth_type") or "").lower().replace("_", "")
        key_id = options.get("aws_access_key_id")
        secret = options.get("aws_secret_access_key")
        region = self._region(target)
        if auth_type == "apikey" or (auth_type == "" and not (key_id or secret)):
            if target.api_key is None:
                raise BadRequest(NO_CREDENTIALS)
            return None, target.api_key.value, region
        if auth_type not in ("", "accesskey"):
            raise BadRequest(
                f"bedrock does not support aws_auth_type {auth_type!r} in this version; "
                "use access keys ('accessKey') or a Bedrock API key ('apiKey')"
            )
        if not key_id or not secret:
            missing = "aws_secret_access_key" if key_id else "aws_access_key_id"
            header = "x-portkey-" + missing.replace("_", "-")
            raise BadRequest(f"bedrock needs '{missing}' in the config (or the {header} header)")
        if region is None:
            raise BadRequest(NO_REGION)
        token = options.get("aws_session_token")
        return AwsCredentials(str(key_id), str(secret), str(token) if token else None), None, region

    def _region(self, target: Target) -> str | None:
        region = target.options.get("aws_region")
        if region:
            region = str(region).strip()
            if not _REGION.fullmatch(region):
                raise BadRequest(f"aws_region {region!r} is not an AWS region name (e.g. us-east-1)")
            return region
        # A custom host of the usual shape names its region.
        host = urlsplit(target.custom_host or self.base_url or "").hostname or ""
        match = _HOST_REGION.fullmatch(host)
        return match.group(1) if match else None

    def _base(self, target: Target, region: str | None) -> str:
        if target.custom_host:
            return target.custom_host.rstrip("/")
        if self.base_url:
            return self.base_url
        if region is None:
            raise BadRequest(NO_REGION)
        return f"https://bedrock-runtime.{region}.amazonaws.com"

    # -- answers ---------------------------------------------------------------------------

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        if endpoint == Endpoint.EMBED:
            return orjson.dumps(combine_embeddings([body], params))
        return orjson.dumps(chat_response(orjson.loads(body), params, strict))

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return ConverseStreamTranslator(params, strict)

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        """rest-json errors: ``x-amzn-ErrorType`` (before its ``:``) and ``message`` / ``Message``."""
        error_type = headers.get("x-amzn-errortype", "").split(":", 1)[0] or None
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            if error_type is None:
                return openai_style_error(PROVIDER, body)
            data = {}
        if error_type is None and isinstance(data.get("__type"), str):
            error_type = data["__type"].rsplit("#", 1)[-1].split(":", 1)[0] or None
        message = data.get("message") or data.get("Message")
        if not isinstance(message, str) or not message:
            message = error_type or f"upstream status {status}"
        return provider_error_body(PROVIDER, message, error_type)


def model_segment(model: str) -> str:
    """The model id as one path segment: ``:`` raw, ``/`` (in ARNs) as ``%2F``."""
    _no_dot_segment(model)
    return quote(model, safe=SEGMENT_SAFE)


def wire_path(path: str) -> str:
    """A client-given path in the form the HTTP client sends unchanged, so its signature holds."""
    segments = [unquote(segment) for segment in path.split("/")]
    for segment in segments:
        _no_dot_segment(segment)
    return "/".join(quote(segment, safe=SEGMENT_SAFE) for segment in segments)


def _no_dot_segment(segment: str) -> None:
    # The HTTP client resolves "." and ".." path segments (even percent-encoded), so the URL sent
    # would differ from the one signed; no Bedrock model or path has them.
    if segment in (".", ".."):
        raise BadRequest(f"'{segment}' is not a valid bedrock model id or path segment")


# -- Titan embeddings ------------------------------------------------------------------------


def embedding_inputs(params: Mapping[str, Any]) -> list[str]:
    return text_inputs(params, "bedrock Titan")


def titan_body(text: str, params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"inputText": text}
    if params.get("dimensions") is not None:
        body["dimensions"] = params["dimensions"]
    return body


def combine_embeddings(bodies: list[bytes], params: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI embeddings list for the answers in input order; usage is the sum of
    ``inputTextTokenCount``. A body may be Titan's own answer or one already translated."""
    data: list[dict[str, Any]] = []
    tokens = 0
    for body in bodies:
        answer = orjson.loads(body)
        if "data" in answer:  # already an OpenAI list of one
            data.extend(answer["data"])
            tokens += int(answer["usage"]["prompt_tokens"])
            continue
        vector = answer.get("embedding")
        if vector is None:
            vector = answer["embeddingsByType"]["float"]
        data.append({"object": "embedding", "index": 0, "embedding": encode_vector(vector, params)})
        tokens += int(answer.get("inputTextTokenCount") or 0)
    for index, item in enumerate(data):
        item["index"] = index
    return {
        "object": "list",
        "data": data,
        "model": str(params.get("model") or ""),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "provider": PROVIDER,
    }
