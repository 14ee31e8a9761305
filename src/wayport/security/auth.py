"""Authentication of gateway callers: the one place where a gateway API key is checked.

Data-plane requests carry the key in ``x-portkey-api-key`` (what the portkey-ai SDK and
``createHeaders`` send) or, when that header is absent, as ``Authorization: Bearer wp-...``;
control-plane requests the same way. Keys are found in memory (:class:`~wayport.security.keys.KeyRing`),
never in the database. A gateway started with ``--no-auth`` acts for everyone as the local operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from wayport.errors import GatewayError
from wayport.gateway.context import RequestContext
from wayport.gateway.headers import RequestHeaders
from wayport.security.keys import TOKEN_PREFIX, ApiKey, KeyRing
from wayport.security.roles import LOCAL_OPERATOR, Principal

MISSING_KEY = (
    "Missing gateway API key: send it in the x-portkey-api-key header "
    "(or Authorization: Bearer wp-...); an admin creates keys with `wayport keys create`"
)
INVALID_KEY = "Invalid gateway API key: it is unknown or was revoked"


class Authenticator(Protocol):
    async def authenticate(self, ctx: RequestContext, headers: RequestHeaders) -> None:
        """Raise a ``GatewayError`` (401/403) to refuse the request; may annotate ``ctx``."""
        ...


class AllowAll:
    """The authenticator of a gateway without keys (``--no-auth``): everyone is the local operator."""

    async def authenticate(self, ctx: RequestContext, headers: RequestHeaders) -> None:
        ctx.principal = LOCAL_OPERATOR


class KeyAuthenticator:
    """Checks gateway API keys against the in-memory key ring."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def authenticate(self, ctx: RequestContext, headers: RequestHeaders) -> None:
        token = headers.portkey.get("api-key", "").strip()
        if not token:
            bearer = headers.bearer()
            if bearer is not None and bearer.startswith(TOKEN_PREFIX):
                # the gateway key, not a provider key: it must never travel upstream
                token, headers.authorization = bearer, None
        key = self.verify(token)
        principal = key.principal
        if not principal.can("completions"):
            raise GatewayError(
                f"this API key ({key.name}, role {key.role}) lacks the scope 'completions'", status=403
            )
        ctx.principal = principal
        ctx.api_key = key

    def verify(self, token: str) -> ApiKey:
        """The active key of ``token``; 401 otherwise."""
        if not token:
            raise GatewayError(MISSING_KEY, status=401)
        key = self.ring.find(token)
        if key is None:
            raise GatewayError(INVALID_KEY, status=401)
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise GatewayError(
                f"This gateway API key ({key.name}) expired at {key.expires_at:%Y-%m-%d %H:%M} UTC",
                status=401,
            )
        return key

    def control_principal(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> Principal:
        """The principal of a control-plane request, from ``x-portkey-api-key`` or the bearer token."""
        token = ""
        bearer = ""
        for name, value in raw_headers:
            if name == b"x-portkey-api-key":
                token = value.decode("latin-1").strip()
            elif name == b"authorization":
                text = value.decode("latin-1").strip()
                bearer = text[7:].strip() if text[:7].lower() == "bearer " else text
        return self.verify(token or bearer).principal
