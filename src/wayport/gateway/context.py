"""The request context: what one data-plane request carries from parsing to the log record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from wayport.gateway.config import ConfigPlan
from wayport.gateway.streaming import UsageSource
from wayport.observability.pricing import Cost
from wayport.providers.base import Endpoint, Secret


@dataclass(slots=True)
class Attempt:
    """One upstream call: which target, how it ended, and when (monotonic nanoseconds)."""

    provider: str
    target_path: str
    url: str
    started_ns: int
    ended_ns: int = 0
    status: int | None = None
    error: str | None = None
    retry_index: int = 0


@dataclass(slots=True)
class RequestContext:
    endpoint: Endpoint
    trace_id: str
    started_ns: int = field(default_factory=time.monotonic_ns)
    # The caller's gateway key (x-portkey-api-key); checked by the authenticator.
    gateway_key: Secret | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    span_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    plan: ConfigPlan | None = None
    stream: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    # filled in as the request proceeds
    last_target_path: str | None = None
    provider: str | None = None
    retry_count: int = 0
    cache_status: str = "DISABLED"
    status: int | None = None
    first_byte_ns: int | None = None
    finished_ns: int | None = None
    # what read the usage of the stream that answered (cost of a streamed request)
    usage_source: UsageSource | None = None
    # for the log record
    request_body: bytes | None = None
    skip_bodies: bool = False  # x-portkey-debug: false
    model: str | None = None
    model_served: str | None = None
    usage: dict[str, Any] | None = None
    cost: Cost | None = None
    cache_similarity: float | None = None
    # who is calling (set by the authenticator): a wayport.security Principal and ApiKey
    principal: Any = None
    api_key: Any = None
    # the virtual key of the target that was called (its limits and its log column)
    virtual_key: Any = None
    # budgets reserved and rate limits counted for the provider call in flight (security.enforcement)
    admission: Any = None
    # the workspace of the saved prompt a request renders (checked against the caller's)
    prompt_workspace: str | None = None
    prompt_ref: str | None = None

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-portkey-trace-id", self.trace_id.encode("latin-1")),
            (b"x-portkey-retry-attempt-count", str(self.retry_count).encode()),
            (b"x-portkey-cache-status", self.cache_status.encode()),
        ]
        if self.last_target_path is not None:
            headers.append((b"x-portkey-last-used-option-index", self.last_target_path.encode()))
        if self.provider is not None:
            headers.append((b"x-portkey-provider", self.provider.encode()))
        return headers
