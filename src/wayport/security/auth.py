"""Authentication of gateway callers: the one place where ``x-portkey-api-key`` is checked.

Gateway keys, roles and budgets arrive with the keys issue; until then every caller is allowed
and the key (if any) only travels in the request context.
"""

from __future__ import annotations

from typing import Protocol

from wayport.gateway.context import RequestContext
from wayport.gateway.headers import RequestHeaders


class Authenticator(Protocol):
    async def authenticate(self, ctx: RequestContext, headers: RequestHeaders) -> None:
        """Raise a ``GatewayError`` (401/403) to refuse the request; may annotate ``ctx``."""
        ...


class AllowAll:
    """The authenticator of a gateway without keys: everyone may call it."""

    async def authenticate(self, ctx: RequestContext, headers: RequestHeaders) -> None:
        return None
