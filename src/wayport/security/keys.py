"""Gateway API keys: created by an admin, shown once, stored as a keyed hash, checked from memory.

A token is ``wp-`` followed by 43 URL-safe characters (256 random bits). The store keeps only
HMAC-SHA256(hash key, token) and the first characters (``prefix``) so people can tell keys apart;
the hash key is a vault secret, so a copy of the database alone cannot even test guesses. The
:class:`KeyRing` holds every active key in memory, indexed by hash: authenticating a request is one
HMAC and one dict lookup, never a database read. It re-reads what changed every
``refresh_interval`` (half a second), so a revocation reaches every node within a second.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.ids import iso, new_id, utcnow
from wayport.security.roles import Principal, Role, parse_role, parse_scopes
from wayport.store.changes import SqliteChangeProbe, poll
from wayport.store.schema import ApiKeyRow

log = logging.getLogger("wayport.security")

TOKEN_PREFIX = "wp-"
PREFIX_LENGTH = 10
_KEYS = cast(Table, ApiKeyRow.__table__)
_K = _KEYS.c


class KeyError_(LookupError):
    """No such API key (or not visible to the caller)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the gateway knows it (never the token itself)."""

    id: str
    name: str
    owner: str | None
    workspace_id: str | None
    role: Role
    scopes: frozenset[str] | None
    key_hash: str
    prefix: str
    usage_limits: Any
    rate_limits: Any
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal.for_key(self.id, self.name, self.role, self.workspace_id, self.scopes)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self) -> dict[str, Any]:
        """What the API shows of a key: everything but its hash."""
        return {
            "id": self.id,
            "object": "api-key",
            "name": self.name,
            "owner": self.owner,
            "workspace_id": self.workspace_id,
            "role": self.role.value,
            "scopes": sorted(self.scopes) if self.scopes is not None else None,
            "prefix": self.prefix,
            "usage_limits": self.usage_limits,
            "rate_limits": self.rate_limits,
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "status": "revoked" if self.revoked_at else "active",
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(hash_key: bytes, token: str) -> str:
    return hmac.new(hash_key, token.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class KeyStore:
    """API keys in the store. Every change bumps ``updated_at``, which is what key rings follow."""

    def __init__(self, engine: AsyncEngine, hash_key: bytes) -> None:
        self._engine = engine
        self._hash_key = hash_key

    async def create(
        self,
        name: str,
        role: Role | str,
        *,
        workspace_id: str | None = None,
        owner: str | None = None,
        scopes: builtins.list[str] | None = None,
        expires_at: datetime | None = None,
        usage_limits: Any = None,
        rate_limits: Any = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token (returned this once; only its hash is kept)."""
        role = parse_role(role) if isinstance(role, str) else role
        parsed_scopes = parse_scopes(scopes)
        token = new_token()
        now = utcnow()
        values = {
            "id": new_id(),
            "name": name,
            "owner": owner,
            "workspace_id": workspace_id,
            "role": role.value,
            "scopes": sorted(parsed_scopes) if parsed_scopes is not None else None,
            "key_hash": hash_token(self._hash_key, token),
            "prefix": token[:PREFIX_LENGTH],
            "usage_limits": usage_limits,
            "rate_limits": rate_limits,
            "expires_at": expires_at,
            "revoked_at": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self._engine.begin() as connection:
            await connection.execute(insert(_KEYS).values(**values))
        return _key(values), token

    async def get(self, key_id: str) -> ApiKey | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(_KEYS).where(_K.id == key_id))).mappings().first()
        return _key(row) if row is not None else None

    async def list(
        self, *, workspace_id: str | None = None, include_revoked: bool = True
    ) -> builtins.list[ApiKey]:
        statement = select(_KEYS).order_by(_K.created_at.desc())
        if workspace_id is not None:
            statement = statement.where(_K.workspace_id == workspace_id)
        if not include_revoked:
            statement = statement.where(_K.revoked_at.is_(None))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_key(row) for row in rows]

    async def count(self) -> int:
        async with self._engine.connect() as connection:
            return int((await connection.execute(select(func.count()).select_from(_KEYS))).scalar_one())

    async def update(self, key_id: str, **changes: Any) -> ApiKey:
        """Change a key's name, owner, scopes, limits or expiry (never its token or role)."""
        allowed = {"name", "owner", "scopes", "usage_limits", "rate_limits", "expires_at"}
        values = {k: v for k, v in changes.items() if k in allowed}
        if "scopes" in values and values["scopes"] is not None:
            values["scopes"] = sorted(parse_scopes(values["scopes"]) or ())
        values["updated_at"] = utcnow()
        async with self._engine.begin() as connection:
            result = await connection.execute(update(_KEYS).where(_K.id == key_id).values(**values))
        if result.rowcount == 0:
            raise KeyError_(key_id)
        found = await self.get(key_id)
        assert found is not None
        return found

    async def revoke(self, key_id: str) -> ApiKey:
        now = utcnow()
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(_KEYS)
                .where(_K.id == key_id, _K.revoked_at.is_(None))
                .values(revoked_at=now, updated_at=now)
            )
        found = await self.get(key_id)
        if found is None:
            raise KeyError_(key_id)
        if result.rowcount == 0 and found.revoked_at is None:
            raise KeyError_(key_id)
        return found

    async def changed_since(self, watermark: datetime | None) -> builtins.list[ApiKey]:
        statement = select(_KEYS)
        if watermark is not None:
            statement = statement.where(_K.updated_at >= watermark)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_key(row) for row in rows]


class KeyRing:
    """Every active key in memory, by hash; follows the store every ``refresh_interval`` seconds."""

    def __init__(self, store: KeyStore, hash_key: bytes, refresh_interval: float = 0.5) -> None:
        self._store = store
        self._hash_key = hash_key
        self._by_hash: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        self._watermark: datetime | None = None
        self.refresh_interval = refresh_interval

    async def load(self) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        changed = await self._store.changed_since(self._watermark)
        for key in changed:
            if key.revoked_at is None:
                self._by_hash[key.key_hash] = key
                self._by_id[key.id] = key
            else:
                self._by_hash.pop(key.key_hash, None)
                self._by_id.pop(key.id, None)
            if self._watermark is None or key.updated_at > self._watermark:
                self._watermark = key.updated_at

    async def follow(self, probe: SqliteChangeProbe | None = None) -> None:
        """Refresh forever (a background task), skipping rounds in which ``probe`` saw no commit;
        a failing store is retried, never fatal."""
        await poll(self.refresh, self.refresh_interval, probe, "the API keys")

    def find(self, token: str) -> ApiKey | None:
        """The key of ``token`` when it exists and is not revoked (expiry is the caller's check)."""
        digest = hash_token(self._hash_key, token)
        key = self._by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        return key

    def by_id(self, key_id: str) -> ApiKey | None:
        """The active (not revoked) key with this id; expiry is the caller's check."""
        return self._by_id.get(key_id)

    def forget(self, key: ApiKey) -> None:
        """Drop a key at once on this node (revocation by this node's API)."""
        self._by_hash.pop(key.key_hash, None)
        self._by_id.pop(key.id, None)

    def __len__(self) -> int:
        return len(self._by_hash)


def _key(row: RowMapping | Mapping[str, Any]) -> ApiKey:
    scopes = row["scopes"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        workspace_id=row["workspace_id"],
        role=Role(row["role"]),
        scopes=frozenset(scopes) if scopes is not None else None,
        key_hash=row["key_hash"],
        prefix=row["prefix"],
        usage_limits=row["usage_limits"],
        rate_limits=row["rate_limits"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
