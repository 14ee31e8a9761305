"""Reading the request headers once: the ``x-portkey-*`` family, auth and body headers.

The ASGI server hands headers lower-cased; one pass over them fills a small dict keyed by the
part after ``x-portkey-``. Everything else is read from that dict on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from wayport.errors import BadRequest

PREFIX = b"x-portkey-"
PREFIX_LEN = len(PREFIX)

# Sent by the portkey-ai SDK when a config or virtual key carries the credentials (portkey.md §2.5).
PLACEHOLDER_KEYS = frozenset({"OPENAI_API_KEY", ""})

# x-portkey-* headers that are not provider options.
NON_OPTION_HEADERS = frozenset(
    {
        "config",
        "provider",
        "api-key",
        "virtual-key",
        "trace-id",
        "metadata",
        "custom-host",
        "forward-headers",
        "request-timeout",
        "strict-open-ai-compliance",
        "span-id",
        "parent-span-id",
        "span-name",
        "cache-force-refresh",
        "cache-namespace",
        "debug",
        "package-version",
        "runtime",
        "runtime-version",
        "mode",
        "retry-count",
        "cache",
        "default-input-guardrails",
        "default-output-guardrails",
        "audio-file-duration",
    }
)
# Azure's three URL fields drop the "azure_" prefix in the options, as in the config object.
AZURE_RENAMES = {
    "azure_resource_name": "resource_name",
    "azure_deployment_id": "deployment_id",
    "azure_api_version": "api_version",
}


@dataclass(slots=True)
class RequestHeaders:
    portkey: dict[str, str] = field(default_factory=dict)
    authorization: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    # Anthropic-style clients (the anthropic SDK, Claude Code) send these without the prefix.
    x_api_key: str | None = None
    anthropic: dict[str, str] | None = None
    raw: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: list[tuple[bytes, bytes]]) -> RequestHeaders:
        out = cls(raw=raw)
        portkey = out.portkey
        for name, value in raw:
            if name.startswith(PREFIX):
                # JSON values (metadata, config) are UTF-8 in practice.
                portkey[name[PREFIX_LEN:].decode("latin-1")] = value.decode("utf-8", "replace")
            elif name == b"authorization":
                out.authorization = value.decode("latin-1")
            elif name == b"content-type":
                out.content_type = value.decode("latin-1")
            elif name == b"x-api-key":
                out.x_api_key = value.decode("latin-1")
            elif name == b"anthropic-version" or name == b"anthropic-beta":
                if out.anthropic is None:
                    out.anthropic = {}
                out.anthropic[name.decode().replace("-", "_")] = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    out.content_length = int(value)
                except ValueError:
                    raise BadRequest("The Content-Length header is not a number") from None
        return out

    def bearer(self) -> str | None:
        """The provider key from ``Authorization: Bearer`` (or ``x-api-key``), ignoring the SDK's
        placeholder."""
        value = self.authorization
        if value is None:
            key = self.x_api_key
            return key.strip() or None if key is not None else None
        token = value[7:] if value[:7].lower() == "bearer " else value
        token = token.strip()
        return None if token in PLACEHOLDER_KEYS else token

    def metadata(self) -> dict[str, Any]:
        raw = self.portkey.get("metadata")
        if not raw:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest('x-portkey-metadata must be a JSON object, e.g. {"_user": "u1"}') from None
        if not isinstance(data, dict):
            raise BadRequest('x-portkey-metadata must be a JSON object, e.g. {"_user": "u1"}')
        return data

    def request_timeout(self) -> int | None:
        raw = self.portkey.get("request-timeout")
        if not raw:
            return None
        try:
            value = int(float(raw))
        except ValueError:
            raise BadRequest(
                f"x-portkey-request-timeout must be a number of milliseconds, got {raw!r}"
            ) from None
        if value <= 0:
            raise BadRequest("x-portkey-request-timeout must be a positive number of milliseconds")
        return value

    def forward_headers(self) -> tuple[str, ...] | None:
        raw = self.portkey.get("forward-headers")
        if raw is None:
            return None
        names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
        if "x-portkey-forward-headers" in names:
            raise BadRequest("forward_headers must not contain the 'x-portkey-forward-headers' header")
        return names

    def strict_override(self) -> bool | None:
        """``x-portkey-strict-open-ai-compliance: false`` turns strict mode off for every target."""
        raw = self.portkey.get("strict-open-ai-compliance")
        if raw is None:
            return None
        return raw.strip().lower() != "false"

    def provider_options(self) -> dict[str, Any]:
        """Provider settings sent as headers (``x-portkey-azure-resource-name`` -> ``resource_name``)."""
        options: dict[str, Any] = dict(self.anthropic) if self.anthropic else {}
        for key, value in self.portkey.items():
            if key in NON_OPTION_HEADERS:
                continue
            name = key.replace("-", "_")
            options[AZURE_RENAMES.get(name, name)] = value
        account = options.get("vertex_service_account_json")
        if isinstance(account, str):
            try:
                options["vertex_service_account_json"] = orjson.loads(account)
            except orjson.JSONDecodeError:
                raise BadRequest("x-portkey-vertex-service-account-json is not valid JSON") from None
        return options

    def values_of(self, names: tuple[str, ...]) -> dict[str, str]:
        """The client's own headers listed in ``forward_headers``, to copy upstream verbatim."""
        wanted = {n.encode("latin-1") for n in names}
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw if k in wanted}
