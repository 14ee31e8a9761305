"""Portkey's custom log (``POST /v1/logs``): a request made elsewhere, recorded as a Wayport log.

The body is ``{"request": {...}, "response": {...}, "metadata": {...}}`` or an array of them.
Headers are not kept (the record has no place for them, and they are where keys travel); bodies
follow the gateway's body logging mode; tokens come from the response's ``usage`` and the cost
from the pricer when the provider and model are known.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from wayport.control.errors import FieldError
from wayport.observability.pricing import Pricer, TokenUsage
from wayport.observability.record import BodyLogMode, LogRecord, body_for_log
from wayport.store.tenancy import workspace_for_new

__all__ = ["custom_log_to_record", "parse_custom_logs"]

# metadata keys that are fields of the record: Portkey's snake_case and camelCase spellings
_IDS = {
    "trace_id": ("trace_id", "traceId"),
    "span_id": ("span_id", "spanId"),
    "span_name": ("span_name", "spanName"),
    "parent_span_id": ("parent_span_id", "parentSpanId"),
}
_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral-ai",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "api.together.xyz": "together-ai",
    "api.deepseek.com": "deepseek",
    "openrouter.ai": "openrouter",
}
_ENDPOINTS = (
    ("/chat/completions", "chatComplete"),
    ("/completions", "complete"),
    ("/embeddings", "embed"),
    ("/messages", "messages"),
)


def parse_custom_logs(body: Any) -> list[dict[str, Any]]:
    """The custom logs of a request body (one object or an array), checked for shape."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise FieldError("body", "expected a custom log object or a non-empty array of them")
    prefix = isinstance(body, list)
    for index, item in enumerate(items):
        at = f"[{index}]." if prefix else ""
        if not isinstance(item, dict):
            raise FieldError(
                f"[{index}]" if prefix else "body", "must be an object with request and response"
            )
        for part in ("request", "response"):
            if not isinstance(item.get(part), dict):
                raise FieldError(f"{at}{part}", "is required and must be an object")
        if not isinstance(item["request"].get("url"), str) or not item["request"]["url"]:
            raise FieldError(f"{at}request.url", "is required (the URL the request was sent to)")
        if item.get("metadata") is not None and not isinstance(item["metadata"], dict):
            raise FieldError(f"{at}metadata", "must be an object")
        status = item["response"].get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise FieldError(f"{at}response.status", "must be an HTTP status code (100-599)")
        for key in ("response_time", "time"):
            millis = item["response"].get(key)
            if millis is not None and (
                isinstance(millis, bool) or not isinstance(millis, int | float) or millis < 0
            ):
                raise FieldError(f"{at}response.{key}", "must be a non-negative number of milliseconds")
    return items


def custom_log_to_record(
    item: Mapping[str, Any], *, pricer: Pricer | None = None, body_mode: BodyLogMode = BodyLogMode.TRUNCATED
) -> LogRecord:
    """One checked custom log (see :func:`parse_custom_logs`) as a record."""
    request: Mapping[str, Any] = item["request"]
    response: Mapping[str, Any] = item["response"]
    metadata = dict(item.get("metadata") or {})
    ids = {field: _pop_first(metadata, names) for field, names in _IDS.items()}
    if "_user" not in metadata and isinstance(metadata.get("user"), str):
        metadata["_user"] = metadata["user"]
    request_body = request.get("body")
    response_body = response.get("body")
    url = str(request["url"])
    provider = request.get("provider") if isinstance(request.get("provider"), str) else _provider_of(url)
    model_requested = _model_of(request_body)
    model_served = _model_of(response_body) or model_requested
    tokens = _tokens_of(response_body)
    status = int(response.get("status", 200))
    record = LogRecord(
        trace_id=ids["trace_id"] or str(uuid.uuid4()),
        span_id=ids["span_id"],
        span_name=ids["span_name"],
        parent_span_id=ids["parent_span_id"],
        provider=provider,
        model_requested=model_requested,
        model_served=model_served,
        endpoint=_endpoint_of(url),
        status=status,
        stream=bool(response.get("streamingMode", False)),
        latency_ms=int(response.get("response_time", response.get("time")) or 0),
        prompt_tokens=tokens.prompt,
        completion_tokens=tokens.completion,
        cached_tokens=tokens.cached,
        cache_write_tokens=tokens.cache_write,
        reasoning_tokens=tokens.reasoning,
        metadata=metadata,
        request_body=_body(request_body, body_mode),
        response_body=_body(response_body, body_mode),
        error=_error_of(response_body) if status >= 400 else None,
        workspace_id=workspace_for_new(None),
    )
    if pricer is not None and provider and model_served and isinstance(response_body, dict):
        usage = response_body.get("usage")
        cost = pricer.cost(provider, model_served, usage) if isinstance(usage, dict) else None
        if cost is not None:
            record.cost_micros = cost.micros
            record.cost_breakdown = dict(cost.breakdown)
            record.currency = cost.currency
    return record


def _pop_first(metadata: dict[str, Any], names: tuple[str, ...]) -> str | None:
    found: str | None = None
    for name in names:
        value = metadata.pop(name, None)
        if found is None and value is not None and str(value):
            found = str(value)
    return found


def _provider_of(url: str) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    if host.endswith(".openai.azure.com"):
        return "azure-openai"
    if host.startswith("bedrock-runtime.") and host.endswith(".amazonaws.com"):
        return "bedrock"
    return _HOSTS.get(host)


def _endpoint_of(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    for suffix, name in _ENDPOINTS:
        if path.endswith(suffix):
            return name
    return "custom"


def _model_of(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) and model else None


def _tokens_of(body: Any) -> TokenUsage:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return TokenUsage()
    try:
        return TokenUsage.from_usage(usage)
    except ValueError:
        return TokenUsage()


def _error_of(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return None if body is None else _body(body, BodyLogMode.TRUNCATED)


def _body(body: Any, mode: BodyLogMode) -> str | None:
    if body is None:
        return None
    data = (
        body.encode()
        if isinstance(body, str)
        else orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS, default=str)
    )
    return body_for_log(data, mode)
