"""Console sessions: a signed cookie naming the API key a person signed in with, and CSRF tokens.

The cookie holds ``<key id>.<expiry>.<signature>`` (HMAC-SHA256 under a vault secret), never the
key itself; it is HttpOnly, SameSite=Strict and lives 12 hours. Every request re-checks the key in
the key ring, so revoking a key ends its console sessions too. Each form carries a CSRF token
derived from the session; a POST without the right one is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

COOKIE = "wayport_session"
LIFETIME_S = 12 * 3600
# the session of a console served without auth (--no-auth): everyone is the local operator
LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int
    value: str


class SessionSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._secret, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, key_id: str, now: float | None = None) -> Session:
        expires = int((time.time() if now is None else now) + LIFETIME_S)
        payload = f"{key_id}.{expires}"
        return Session(key_id, expires, f"{payload}.{self._sign(payload)}")

    def read(self, value: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value, when its signature holds and it has not expired."""
        if not value or value.count(".") != 2:
            return None
        key_id, expires, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{key_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return Session(key_id, int(expires), value)

    def csrf(self, session: Session) -> str:
        return self._sign("csrf:" + session.value)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf(session))
