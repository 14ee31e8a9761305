"""Virtual keys: a slug (``openai-prod-k3x9q1``) standing for a provider and its credentials.

The credentials are encrypted by the :class:`~wayport.security.vault.Vault` with the row id as
associated data; everything else (Azure resource, AWS region, limits) is plain, non-secret JSON.
:class:`VirtualKeyStore` is the table; :class:`VirtualKeyCache` is what the data plane reads: every
active virtual key, decrypted once, held in memory and refreshed from what changed since the last
look, so a request never waits on the database.
"""

from __future__ import annotations

import builtins
import logging
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

import orjson
from sqlalchemy import Table, and_, or_, select, true, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.ids import SUFFIX_LENGTH, new_id, slugify, utcnow
from wayport.control.errors import FieldError
from wayport.providers.base import Secret
from wayport.security.roles import DEFAULT_WORKSPACE
from wayport.security.vault import Vault, VaultError
from wayport.store.changes import SqliteChangeProbe, poll
from wayport.store.schema import VirtualKeyRow

__all__ = [
    "ACTIVE",
    "ARCHIVED",
    "SECRET_NAMES",
    "SETTING_NAMES",
    "SlugTaken",
    "UnknownVirtualKey",
    "VirtualKey",
    "VirtualKeyCache",
    "VirtualKeyStore",
]

log = logging.getLogger("wayport.security")

ACTIVE = "active"
ARCHIVED = "archived"
# the credentials a virtual key may hold (the names of the provider options they become)
SECRET_NAMES: Final = frozenset(
    {
        "api_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "vertex_service_account_json",
        "azure_ad_token",
        "azure_entra_client_secret",
    }
)
# non-secret provider options a virtual key may carry
SETTING_NAMES: Final = frozenset(
    {
        "resource_name",
        "deployment_id",
        "api_version",
        "deployment_config",
        "azure_auth_mode",
        "azure_entra_client_id",
        "azure_entra_tenant_id",
        "aws_region",
        "aws_auth_type",
        "aws_role_arn",
        "aws_external_id",
        "vertex_project_id",
        "vertex_region",
    }
)
_SLUG_ATTEMPTS = 5
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{2,254}$")
SLUG_RULE = "3 to 255 lower-case letters, digits, '-' or '_', starting with a letter or digit"
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_UNSET: Any = object()

_TABLE = cast(Table, VirtualKeyRow.__table__)
_C = _TABLE.c


class UnknownVirtualKey(LookupError):
    """No virtual key has this slug (or it is archived, where that matters)."""


class SlugTaken(ValueError):
    """A slug asked for explicitly is in use, or was used by an archived key (never reused)."""


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A virtual key. ``secret`` holds the decrypted credentials (empty when read without them);
    ``settings`` holds provider options that are not secret."""

    id: str
    slug: str
    name: str
    workspace_id: str | None
    provider: str
    note: str | None
    settings: dict[str, Any]
    secret: dict[str, Secret]
    usage_limits: dict[str, Any] | None
    rate_limits: list[dict[str, Any]] | None
    status: str
    created_at: datetime
    updated_at: datetime
    key_id: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def public(self) -> dict[str, Any]:
        """Everything but the credentials (for audit logs and listings)."""
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "workspace_id": self.workspace_id,
            "provider": self.provider,
            "note": self.note,
            "settings": dict(self.settings),
            "usage_limits": self.usage_limits,
            "rate_limits": self.rate_limits,
            "status": self.status,
        }


def _new_slug(name: str) -> str:
    """``<slugified name>-<6 random characters>`` like Portkey's, e.g. ``openai-prod-k3x9q1``."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{slugify(name, 'key')}-{suffix}"


def _check_names(kind: str, values: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in values:
        if name not in allowed:
            raise FieldError(name, f"not a known {kind}; known: {', '.join(sorted(allowed))}")


def _secret_text(secret: Mapping[str, str]) -> dict[str, str]:
    _check_names("credential", secret, SECRET_NAMES)
    for name, value in secret.items():
        if not isinstance(value, str) or not value:
            raise FieldError(name, "must be a non-empty string")
    return dict(secret)


class VirtualKeyStore:
    """Virtual keys in the store. ``check_provider`` says what is wrong with a provider id (``None``
    when it is known), like ``ProviderRegistry.problem``; every write checks it."""

    def __init__(
        self, engine: AsyncEngine, vault: Vault, check_provider: Callable[[str], str | None]
    ) -> None:
        self.engine = engine
        self.vault = vault
        self._check_provider = check_provider

    async def create(
        self,
        name: str,
        provider: str,
        secret: Mapping[str, str],
        *,
        settings: Mapping[str, Any] | None = None,
        note: str | None = None,
        workspace_id: str | None = None,
        usage_limits: dict[str, Any] | None = None,
        rate_limits: builtins.list[dict[str, Any]] | None = None,
        slug: str | None = None,
    ) -> VirtualKey:
        """A new active virtual key under a fresh slug (``<name>-<6 random>``), or under ``slug``
        (``SlugTaken`` when used before)."""
        if not name.strip():
            raise FieldError("name", "a virtual key needs a name")
        if slug is not None and not SLUG_PATTERN.match(slug):
            raise FieldError("slug", SLUG_RULE)
        problem = self._check_provider(provider)
        if problem is not None:
            raise FieldError("provider", problem)
        plain = _secret_text(secret)
        _check_names("setting", settings or {}, SETTING_NAMES)
        for attempt in range(_SLUG_ATTEMPTS):
            chosen = slug or _new_slug(name)
            row_id = new_id()
            blob, key_id = self.vault.encrypt(orjson.dumps(plain), row_id.encode())
            now = utcnow()
            values = {
                "id": row_id,
                "slug": chosen,
                "name": name,
                "workspace_id": workspace_id,
                "provider": provider,
                "note": note,
                "settings": dict(settings or {}),
                "secret": blob,
                "key_id": key_id,
                "usage_limits": usage_limits,
                "rate_limits": rate_limits,
                "status": ACTIVE,
                "created_at": now,
                "updated_at": now,
            }
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(_TABLE.insert().values(values))
            except IntegrityError:
                if slug is not None:
                    raise SlugTaken(
                        f"the slug '{slug}' is taken (slugs of deleted keys are not reused)"
                    ) from None
                if attempt == _SLUG_ATTEMPTS - 1:
                    raise
                continue
            return self._key(values, plain)
        raise AssertionError("unreachable")

    async def get(self, slug: str, *, reveal: bool = True) -> VirtualKey | None:
        """The virtual key, archived or not; its credentials only with ``reveal``."""
        rows = await self._select(_C.slug == slug)
        return self.decode(rows[0], reveal) if rows else None

    async def list(
        self, *, workspace_id: str | None = None, include_archived: bool = False, reveal: bool = False
    ) -> builtins.list[VirtualKey]:
        """Virtual keys newest first; only ``workspace_id``'s when given (rows without a workspace
        belong to the default one)."""
        conditions = []
        if workspace_id is not None:
            conditions.append(_workspace_is(workspace_id))
        if not include_archived:
            conditions.append(_C.status == ACTIVE)
        rows = await self._select(and_(true(), *conditions))
        return [self.decode(row, reveal) for row in rows]

    async def update(
        self,
        slug: str,
        *,
        name: str | None = None,
        note: str | None = _UNSET,
        secret: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        usage_limits: dict[str, Any] | None = _UNSET,
        rate_limits: builtins.list[dict[str, Any]] | None = _UNSET,
    ) -> VirtualKey:
        """Change an active virtual key. ``secret`` and ``settings`` are merged into what is stored
        (a setting set to ``None`` is removed); use :meth:`rotate_secret` to replace all credentials."""
        changes: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise FieldError("name", "a virtual key needs a name")
            changes["name"] = name
        if note is not _UNSET:
            changes["note"] = note
        if usage_limits is not _UNSET:
            changes["usage_limits"] = usage_limits
        if rate_limits is not _UNSET:
            changes["rate_limits"] = rate_limits
        if settings is not None:
            _check_names("setting", settings, SETTING_NAMES)
        new_secret = _secret_text(secret) if secret is not None else None
        return await self._write(slug, changes, settings, new_secret, replace_secret=False)

    async def rotate_secret(self, slug: str, secret: Mapping[str, str]) -> VirtualKey:
        """Replace every credential of an active virtual key (the slug, and so its users, stay)."""
        return await self._write(slug, {}, None, _secret_text(secret), replace_secret=True)

    async def archive(self, slug: str) -> VirtualKey:
        """Delete a virtual key: it stops resolving; the row stays so its slug is never reused."""
        return await self._write(slug, {"status": ARCHIVED}, None, None, replace_secret=False)

    async def _write(
        self,
        slug: str,
        changes: dict[str, Any],
        settings: Mapping[str, Any] | None,
        secret: dict[str, str] | None,
        *,
        replace_secret: bool,
    ) -> VirtualKey:
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                query = select(_TABLE).where(_C.slug == slug, _C.status == ACTIVE).with_for_update()
                row = (await connection.execute(query)).mappings().first()
                if row is None:
                    raise UnknownVirtualKey(slug)
                values = dict(row)
                if settings is not None:
                    merged = {**(row["settings"] or {}), **settings}
                    changes["settings"] = {k: v for k, v in merged.items() if v is not None}
                plain: dict[str, str] | None = None
                if secret is not None:
                    plain = secret if replace_secret else {**self._decrypt(row), **secret}
                    aad = row["id"].encode()
                    changes["secret"], changes["key_id"] = self.vault.encrypt(orjson.dumps(plain), aad)
                changes["updated_at"] = utcnow()
                await connection.execute(update(_TABLE).where(_C.id == row["id"]).values(changes))
                values.update(changes)
        if plain is None:
            return self.decode(values, reveal=False)
        return self._key(values, plain)

    async def _select(self, where: Any) -> builtins.list[RowMapping]:
        statement = select(_TABLE).where(where).order_by(_C.created_at.desc(), _C.id)
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement)).mappings().all())

    async def changed_since(self, moment: datetime | None) -> builtins.list[RowMapping]:
        """Rows updated after ``moment`` (all rows when ``None``), oldest change first."""
        statement = select(_TABLE).order_by(_C.updated_at, _C.id)
        if moment is not None:
            statement = statement.where(_C.updated_at > moment)
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement)).mappings().all())

    def _decrypt(self, row: Mapping[Any, Any]) -> dict[str, str]:
        plain = orjson.loads(self.vault.decrypt(row["secret"], row["key_id"], row["id"].encode()))
        return cast(dict[str, str], plain)

    def decode(self, row: Mapping[Any, Any], reveal: bool) -> VirtualKey:
        """A row as a :class:`VirtualKey`, its credentials decrypted only with ``reveal``."""
        return self._key(row, self._decrypt(row) if reveal else {})

    @staticmethod
    def _key(row: Mapping[Any, Any], plain: Mapping[str, str]) -> VirtualKey:
        return VirtualKey(
            id=row["id"],
            slug=row["slug"],
            name=row["name"],
            workspace_id=row["workspace_id"],
            provider=row["provider"],
            note=row["note"],
            settings=dict(row["settings"] or {}),
            secret={name: Secret(value) for name, value in plain.items()},
            usage_limits=row["usage_limits"],
            rate_limits=row["rate_limits"],
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            key_id=row["key_id"],
        )


def _workspace_is(workspace_id: str) -> Any:
    if workspace_id == DEFAULT_WORKSPACE:
        return or_(_C.workspace_id == workspace_id, _C.workspace_id.is_(None))
    return _C.workspace_id == workspace_id


class VirtualKeyCache:
    """Every active virtual key by slug, decrypted, in memory: the data plane's lookup.

    :meth:`load` reads them all at start; :meth:`refresh` (every poll interval, and after each
    write through the API on this node) reads the rows whose ``updated_at`` is past the newest one
    seen, minus ``overlap``: a transaction that committed late with an earlier timestamp, or a node
    whose clock lags by less than ``overlap``, is still seen. Rows already held at the same
    ``updated_at`` are skipped, so the overlap costs a query, not decryption.
    """

    def __init__(self, store: VirtualKeyStore, overlap: timedelta = timedelta(seconds=5)) -> None:
        self._store = store
        self._overlap = overlap
        self._keys: dict[str, VirtualKey] = {}
        self._seen: dict[str, datetime] = {}
        self._watermark: datetime | None = None

    def get(self, slug: str) -> VirtualKey | None:
        """The active virtual key ``slug``; ``None`` for unknown or archived slugs."""
        return self._keys.get(slug)

    def __len__(self) -> int:
        return len(self._keys)

    async def load(self) -> None:
        """Read every virtual key (at start-up)."""
        self._keys.clear()
        self._seen.clear()
        self._watermark = None
        await self.refresh()

    async def refresh(self) -> int:
        """Apply what changed since the last look; returns how many virtual keys changed."""
        since = None if self._watermark is None else self._watermark - self._overlap
        rows = await self._store.changed_since(since)
        changed = 0
        for row in rows:
            slug, updated = row["slug"], row["updated_at"]
            if self._watermark is None or updated > self._watermark:
                self._watermark = updated
            if self._seen.get(slug) == updated:
                continue
            self._seen[slug] = updated
            changed += 1
            if row["status"] != ACTIVE:
                self._keys.pop(slug, None)
                continue
            try:
                self._keys[slug] = self._store.decode(row, reveal=True)
            except VaultError as exc:
                # one unreadable row must not stop the gateway; the key stays unusable until fixed
                self._keys.pop(slug, None)
                log.error("virtual key %s cannot be decrypted: %s", slug, exc)
        return changed

    async def follow(self, interval: float, probe: SqliteChangeProbe | None = None) -> None:
        """Refresh every ``interval`` seconds until cancelled (run it as a task), skipping rounds
        in which ``probe`` saw no commit."""
        await poll(self.refresh, interval, probe, "the virtual keys")
