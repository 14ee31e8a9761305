"""Access tokens from a Google service-account key (``vertex_service_account_json``).

The key signs a JWT (RS256) that asks its ``token_uri`` for an access token with the
``cloud-platform`` scope (the JWT-bearer grant, RFC 7523). A token is kept until five minutes
before it expires; concurrent requests for one key share one exchange. The exchange goes through
the SSRF-guarded client unless ``token_uri`` is Google's own, since the key, and so the URI, comes
with a client's config.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from wayport.errors import BadRequest, ProviderError

__all__ = ["GOOGLE_TOKEN_URI", "SERVICE_ACCOUNT", "ServiceAccount", "TokenSource"]

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
LIFETIME_S = 3600
REFRESH_MARGIN_S = 300
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ACCOUNTS = 1024
SERVICE_ACCOUNT = "vertex_service_account_json"  # the option that holds a key

# (url, form body) -> (status, body); ``guarded`` when the URL needs the SSRF check
Post = Callable[[str, bytes, bool], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: str
    token_uri: str
    private_key_id: str | None = None

    @classmethod
    def parse(cls, value: Any) -> ServiceAccount:
        """A service-account key as Google issues it (an object, or its JSON text); ``BadRequest``
        naming what is missing."""
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise BadRequest(f"vertex-ai: '{SERVICE_ACCOUNT}' is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequest(f"vertex-ai: '{SERVICE_ACCOUNT}' must be a service-account key (a JSON object)")
        missing = [name for name in ("client_email", "private_key") if not isinstance(value.get(name), str)]
        if missing:
            raise BadRequest(f"vertex-ai: '{SERVICE_ACCOUNT}' has no {' or '.join(missing)}")
        token_uri = value.get("token_uri")
        return cls(
            value["client_email"],
            value["private_key"],
            token_uri if isinstance(token_uri, str) and token_uri else GOOGLE_TOKEN_URI,
            value.get("private_key_id") if isinstance(value.get("private_key_id"), str) else None,
        )


class TokenSource:
    """Mints and keeps access tokens, one per service account."""

    def __init__(self, post: Post, clock: Callable[[], float] = time.time) -> None:
        self._post = post
        self._clock = clock
        self._tokens: dict[ServiceAccount, tuple[str, float]] = {}
        self._pending: dict[ServiceAccount, asyncio.Task[str]] = {}
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    async def token(self, account: ServiceAccount) -> str:
        held = self._tokens.get(account)
        if held is not None and held[1] - REFRESH_MARGIN_S > self._clock():
            return held[0]
        task = self._pending.get(account)
        if task is None:
            # a task of its own: a caller that goes away does not cancel the others' exchange
            task = asyncio.get_running_loop().create_task(self._refresh(account))
            self._pending[account] = task
            task.add_done_callback(lambda done: self._settled(account, done))
        return await asyncio.shield(task)

    async def _refresh(self, account: ServiceAccount) -> str:
        token, expires_at = await self._exchange(account)
        if len(self._tokens) >= MAX_ACCOUNTS:  # keys come with clients' configs: stay bounded
            self._tokens.clear()
            self._keys.clear()
        self._tokens[account] = (token, expires_at)
        return token

    def _settled(self, account: ServiceAccount, task: asyncio.Task[str]) -> None:
        self._pending.pop(account, None)
        if not task.cancelled():
            task.exception()  # read: whoever awaited it has it; nobody else must be told

    async def _exchange(self, account: ServiceAccount) -> tuple[str, float]:
        now = int(self._clock())
        body = urlencode({"grant_type": GRANT, "assertion": self._assertion(account, now)}).encode()
        status, answer = await self._post(account.token_uri, body, account.token_uri != GOOGLE_TOKEN_URI)
        try:
            data = orjson.loads(answer)
        except orjson.JSONDecodeError:
            data = None
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            reason = "an answer without an access token"
            if isinstance(data, dict) and data.get("error"):
                reason = f"{data['error']}: {data.get('error_description') or ''}".rstrip(": ")
            raise ProviderError(
                "vertex-ai",
                f"{account.token_uri} refused the service account's token request ({status}, {reason})",
                status=401 if status in (400, 401, 403) else 502,
                type_="authentication_error",
            )
        expires_in = data.get("expires_in")
        lifetime = expires_in if isinstance(expires_in, int | float) and expires_in > 0 else LIFETIME_S
        return data["access_token"], now + float(lifetime)

    def _assertion(self, account: ServiceAccount, now: int) -> str:
        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if account.private_key_id:
            header["kid"] = account.private_key_id
        claims = {"iss": account.client_email, "scope": SCOPE, "aud": account.token_uri, "iat": now,
                  "exp": now + LIFETIME_S}  # fmt: skip
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}".encode()
        signature = self._key(account).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(signature)}"

    def _key(self, account: ServiceAccount) -> rsa.RSAPrivateKey:
        key = self._keys.get(account.private_key)
        if key is None:
            try:
                loaded = serialization.load_pem_private_key(account.private_key.encode(), password=None)
            except (ValueError, TypeError):
                raise BadRequest(
                    f"vertex-ai: the private_key of '{SERVICE_ACCOUNT}' is not a PEM RSA key"
                ) from None
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise BadRequest(f"vertex-ai: the private_key of '{SERVICE_ACCOUNT}' is not an RSA key")
            key = self._keys[account.private_key] = loaded
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
