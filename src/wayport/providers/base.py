"""What a provider adapter is: one wire format, pure translation, no I/O.

An adapter turns an OpenAI-shaped request into the provider's native HTTP request and turns the
provider's answer (JSON, stream or error) back into the OpenAI shape. It never imports the
server, the store or the cache; the gateway performs the HTTP call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import orjson

from wayport.errors import provider_error_body


class Endpoint(StrEnum):
    """The data-plane operations, named as Portkey names them internally."""

    CHAT = "chatComplete"
    COMPLETE = "complete"
    EMBED = "embed"
    MODELS = "models"
    PROXY = "proxy"


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential whose ``repr`` and ``str`` never show the value."""

    value: str

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Target:
    """The provider side of one leaf of the routing tree, as an adapter needs it."""

    provider: str
    api_key: Secret | None
    # provider-specific settings from the config or headers (resource_name, aws_region, ...)
    options: Mapping[str, Any]
    # base URL replacing the provider's own (``custom_host``), already SSRF-checked
    custom_host: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class FanOut:
    """Several upstream calls for one request (e.g. Bedrock Titan embeds one input per call).

    The gateway sends them concurrently; when all succeed, ``combine`` receives their bodies in
    order, each already through ``translate_response``, and returns the OpenAI-shaped answer.
    The first failure is the answer otherwise.
    """

    requests: tuple[UpstreamRequest, ...]
    combine: Callable[[list[bytes]], bytes]


class StreamTranslator(Protocol):
    """Turns upstream stream bytes into OpenAI-shaped SSE bytes, chunk by chunk as they arrive."""

    def feed(self, data: bytes) -> bytes: ...

    @property
    def usage(self) -> Mapping[str, Any] | None:
        """The stream's OpenAI-shaped usage once known (the gateway reads it for the cost, whether
        or not the client asked for the usage chunk)."""
        ...

    def close(self) -> bytes:
        """Called at upstream EOF; returns what is left to send (always ending with ``data: [DONE]``)."""
        ...


class ProviderAdapter(Protocol):
    """One provider's wire format. Implementations are pure: no network, no global state."""

    name: str
    #: the model that ``portkey-default`` (or a missing model) stands for, if any
    default_model: str | None

    def supports(self, endpoint: Endpoint) -> bool: ...

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest | FanOut:
        """Build the native request. ``raw_body`` is the client's body when ``params`` equals it
        unchanged, so adapters that need no translation forward the bytes without re-serialising.
        ``params`` has ``stream`` set when the client asked for a stream. Raise ``BadRequest``
        naming the missing setting when the target lacks one (e.g. Azure's ``resource_name``)."""
        ...

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        """URL and auth headers for a passthrough call to ``<base URL><path_and_query>`` carrying
        ``body`` as it is (adapters that sign requests sign it)."""
        ...

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        """Translate a successful non-streaming body to the OpenAI shape. ``params`` is the
        request as sent (after ``override_params``); ``strict`` is Portkey's strict compliance."""
        ...

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        """A translator for a streamed success, or ``None`` when the stream is already OpenAI SSE.
        A translator emits the usage chunk only when ``params`` has
        ``stream_options.include_usage``."""
        ...

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        """Translate an upstream error body to the OpenAI error shape with the ``provider`` field.
        ``headers`` are the upstream response headers (lower-case names)."""
        ...


@runtime_checkable
class RetryHints(Protocol):
    """An adapter whose provider says when to retry in the body of a 429 instead of a header."""

    def retry_after_s(self, body: bytes) -> float | None:
        """Seconds to wait before retrying, from a 429's body; ``None`` when it says nothing."""
        ...


def openai_style_error(provider: str, body: bytes) -> bytes:
    """Normalise the error shapes OpenAI-like APIs return (``{"error": {...}}``, ``{"error": "..."}``,
    ``{"message": ...}``, ``{"detail": ...}``) to the OpenAI shape with the provider prefix."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return provider_error_body(provider, f"Invalid response received from {provider}: {_snippet(body)}")
    error = data.get("error", data)
    if isinstance(error, dict):
        message = error.get("message", error.get("detail"))
        if message is None:
            message = orjson.dumps(error).decode()
        elif not isinstance(message, str):
            message = orjson.dumps(message).decode()
        return provider_error_body(
            provider, message, error.get("type"), error.get("param"), error.get("code")
        )
    return provider_error_body(provider, str(error))


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    if not text:
        return "empty body"
    return text + ("…" if len(body) > limit else "")
