"""Error types, each mapped to its wire envelope in one place (``body``).

Gateway errors use Portkey's envelope ``{"status": "failure", "message": ...}``; errors that concern
a provider use the OpenAI error shape with a top-level ``provider`` field, as Portkey does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson


class GatewayError(Exception):
    """An error Wayport itself raises; ``status`` is the HTTP status the client receives."""

    status: int = 500
    # Gateway exceptions stop a fallback chain (reference/portkey.md §4.1).
    stops_fallback: bool = True
    # extra response headers (lower-case names), e.g. ``retry-after`` on a 429
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[str] | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.errors = errors
        if headers:
            self.headers = tuple(headers)

    def body(self) -> bytes:
        payload: dict[str, Any] = {"status": "failure", "message": self.message}
        if self.errors is not None:
            payload["errors"] = self.errors
        return orjson.dumps(payload)


class BadRequest(GatewayError):
    status = 400


class ConfigError(BadRequest):
    """The ``x-portkey-config`` value (or a saved config) does not validate."""


class PayloadTooLarge(GatewayError):
    status = 413


class NotFound(GatewayError):
    status = 404


class ProviderError(GatewayError):
    """Something went wrong between Wayport and a provider; rendered in the OpenAI error shape."""

    status = 502
    stops_fallback = False

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int = 502,
        type_: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.provider = provider
        self.type = type_
        self.code = code

    def body(self) -> bytes:
        return provider_error_body(self.provider, self.message, self.type, None, self.code)


class UpstreamTimeout(GatewayError):
    """The provider did not answer within ``request_timeout``: 408 with Portkey's ``timeout_error`` body."""

    status = 408
    stops_fallback = False

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"Request exceeded the timeout sent in the request: {timeout_ms}ms")

    def body(self) -> bytes:
        return orjson.dumps(
            {"error": {"message": self.message, "type": "timeout_error", "param": None, "code": None}}
        )


def provider_error_body(
    provider: str, message: str, type_: Any = None, param: Any = None, code: Any = None
) -> bytes:
    return orjson.dumps(
        {
            "error": {"message": f"{provider} error: {message}", "type": type_, "param": param, "code": code},
            "provider": provider,
        }
    )
