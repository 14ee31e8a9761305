"""Saved configs: a slug (``pc-<name>-<suffix>``) naming a versioned gateway config.

Every write validates the config with the data plane's own :class:`ConfigParser`, so a config that
saves is a config the gateway accepts; errors name the path (``path: targets,0,provider, ...``).
An update that changes the config adds a version; a delete archives (the slug is never reused).
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, and_, select, true, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wayport.catalog.config_secrets import needs_sealing, restore, seal, unseal
from wayport.catalog.db import bump_version, writing
from wayport.catalog.errors import Conflict, InvalidInput, NotFound
from wayport.catalog.ids import new_id, new_slug, utcnow
from wayport.errors import ConfigError
from wayport.gateway.config import ConfigParser
from wayport.security.vault import Vault, VaultError
from wayport.store.schema import ConfigRow, ConfigVersionRow
from wayport.store.tenancy import listing_workspace, visible, workspace_for_new

__all__ = ["ACTIVE", "ARCHIVED", "ConfigRepository", "ConfigVersion", "SavedConfig", "parse_config"]

ACTIVE = "active"
ARCHIVED = "archived"
STATUSES = (ACTIVE, ARCHIVED)
_SLUG_ATTEMPTS = 5
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{2,254}$")
SLUG_RULE = "3 to 255 lower-case letters, digits, '-' or '_', starting with a letter or digit"

log = logging.getLogger("wayport")
_CONFIGS = cast(Table, ConfigRow.__table__)
_VERSIONS = cast(Table, ConfigVersionRow.__table__)
_C = _CONFIGS.c
_V = _VERSIONS.c


@dataclass(frozen=True, slots=True)
class SavedConfig:
    """A saved config with the content of its current (newest) version."""

    id: str
    slug: str
    name: str
    workspace_id: str | None
    is_default: bool
    status: str
    config: dict[str, Any]
    version: int
    version_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One immutable version of a saved config."""

    id: str
    config_id: str
    version: int
    config: dict[str, Any]
    description: str | None
    created_at: datetime


def parse_config(value: Any) -> dict[str, Any]:
    """A config given as an object or as JSON text, as a dict (not yet validated)."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidInput("Invalid config passed. You need to pass a valid json") from None
    if not isinstance(value, dict):
        raise InvalidInput("Invalid config passed. The config must be a JSON object")
    return value


class ConfigRepository:
    """Saved configs in the store. ``check_provider`` and ``check_host`` are the data plane's
    (see :class:`wayport.gateway.config.ConfigParser`); every write is validated with them."""

    def __init__(
        self,
        engine: AsyncEngine,
        vault: Vault,
        check_provider: Callable[[str], str | None],
        check_host: Callable[[str], str],
    ) -> None:
        self._engine = engine
        self._vault = vault  # seals the credentials a config holds (``config_secrets``)
        self._unreadable: set[str] = set()  # versions whose credentials did not open
        self._parser = ConfigParser(check_provider, check_host, cache_size=1)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def validate(self, value: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
        """``value`` (object or JSON text) as a config the gateway accepts; ``InvalidInput`` naming
        every bad path otherwise. A ``[REDACTED]`` credential takes the one ``current`` (the
        version it replaces) holds at that place (``wayport.catalog.config_secrets``)."""
        config = restore(parse_config(value), current)
        try:
            self._parser.parse(config)
        except ConfigError as exc:
            raise InvalidInput(exc.message, exc.errors or []) from None
        return config

    async def create(
        self,
        name: str,
        config: Any,
        *,
        workspace_id: str | None = None,
        is_default: bool = False,
        description: str | None = None,
        slug: str | None = None,
    ) -> SavedConfig:
        """Save a new config (version 1) under a fresh slug, or under ``slug`` when given (a
        config kept in git keeps its slug; ``Conflict`` when it is taken)."""
        content = self.validate(config)
        if not name.strip():
            raise InvalidInput("Invalid request body", ["path: name, message: a config needs a name"])
        if slug is not None and not SLUG_PATTERN.match(slug):
            raise InvalidInput("Invalid request body", [f"path: slug, message: {SLUG_RULE}"])
        for attempt in range(_SLUG_ATTEMPTS):
            chosen = slug or new_slug("pc", name, "config")
            try:
                async with writing(self._engine) as connection:
                    config_id = new_id()
                    now = utcnow()
                    await connection.execute(
                        _CONFIGS.insert().values(
                            id=config_id,
                            slug=chosen,
                            name=name,
                            workspace_id=workspace_for_new(workspace_id),
                            is_default=is_default,
                            status=ACTIVE,
                            current_version=1,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    await self._insert_version(connection, config_id, 1, content, description)
                    if is_default:
                        await self._clear_other_defaults(
                            connection, config_id, workspace_for_new(workspace_id)
                        )
                    return (await self._fetch(connection, _C.id == config_id))[0]
            except IntegrityError:
                if slug is not None:
                    raise Conflict(f"A config with slug '{slug}' exists already", [slug]) from None
                if attempt == _SLUG_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def apply(
        self, slug: str, name: str, config: Any, *, workspace_id: str | None = None
    ) -> tuple[SavedConfig, bool]:
        """Make ``slug`` hold ``config`` (for ``wayport configs apply FILE``): creates it, or adds a
        version when the content differs (an archived config is restored). Returns the config and
        whether anything changed."""
        current = await self.get(slug)
        content = self.validate(config, current.config if current is not None else None)
        if current is None:
            return await self.create(name, content, workspace_id=workspace_id, slug=slug), True
        if current.config == content and current.name == name and current.status == ACTIVE:
            return current, False
        changed = None if current.config == content else content
        return await self.update(slug, name=name, config=changed, status=ACTIVE), True

    async def get(self, slug: str) -> SavedConfig | None:
        """The config and its current version, archived or not; ``None`` for an unknown slug."""
        rows = await self._select(_C.slug == slug)
        return rows[0] if rows else None

    async def list(
        self, *, workspace_id: str | None = None, include_archived: bool = False
    ) -> builtins.list[SavedConfig]:
        """Configs newest first, only those of ``workspace_id`` when given."""
        conditions = []
        workspace_id = listing_workspace(workspace_id)
        if workspace_id is not None:
            conditions.append(_C.workspace_id == workspace_id)
        if not include_archived:
            conditions.append(_C.status == ACTIVE)
        return await self._select(and_(true(), *conditions))

    async def active(self) -> builtins.list[SavedConfig]:
        """Every active config with its current content (what the resolver loads at start)."""
        return await self._select(_C.status == ACTIVE)

    async def update(
        self,
        slug: str,
        *,
        name: str | None = None,
        config: Any = None,
        status: str | None = None,
        is_default: bool | None = None,
        description: str | None = None,
    ) -> SavedConfig:
        """Change a config; a new ``config`` adds a version (the others change the config in place)."""
        content = None
        if config is not None:
            current = await self.get(slug)
            content = self.validate(config, current.config if current is not None else None)
        if status is not None and status not in STATUSES:
            raise InvalidInput(
                "Invalid request body", [f"path: status, message: must be one of: {', '.join(STATUSES)}"]
            )
        changes: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise InvalidInput("Invalid request body", ["path: name, message: a config needs a name"])
            changes["name"] = name
        if status is not None:
            changes["status"] = status
        if is_default is not None:
            changes["is_default"] = is_default
        async with writing(self._engine) as connection:
            if content is not None:
                bumped = await bump_version(connection, _CONFIGS, _C.slug == slug, **changes)
                if bumped is None:
                    raise _unknown(slug)
                config_id, version = bumped
                await self._insert_version(connection, config_id, version, content, description)
            else:
                changes["updated_at"] = utcnow()
                statement = (
                    update(_CONFIGS)
                    .where(_C.slug == slug, visible(_C.workspace_id))
                    .values(changes)
                    .returning(_C.id)
                )
                row = (await connection.execute(statement)).first()
                if row is None:
                    raise _unknown(slug)
                config_id = row[0]
            if is_default:
                workspace = (
                    await connection.execute(select(_C.workspace_id).where(_C.id == config_id))
                ).scalar()
                await self._clear_other_defaults(connection, config_id, workspace)
            # read inside the transaction: the row is still locked, so this is what this write made
            return (await self._fetch(connection, _C.id == config_id))[0]

    async def delete(self, slug: str) -> SavedConfig:
        """Archive a config: it stops resolving, its history stays, its slug is not reused."""
        return await self.update(slug, status=ARCHIVED, is_default=False)

    async def versions(self, slug: str) -> builtins.list[ConfigVersion]:
        """Every version of a config, newest first."""
        statement = (
            select(_VERSIONS)
            .join(_CONFIGS, _C.id == _V.config_id)
            .where(_C.slug == slug, visible(_C.workspace_id))
            .order_by(_V.version.desc())
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        if not rows and await self.get(slug) is None:
            raise _unknown(slug)
        return [
            ConfigVersion(
                id=row["id"],
                config_id=row["config_id"],
                version=row["version"],
                config=self._opened(row["config"], row["config_id"]),
                description=row["description"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def _select(self, where: Any) -> builtins.list[SavedConfig]:
        async with self._engine.connect() as connection:
            return await self._fetch(connection, and_(where, visible(_C.workspace_id)))

    async def _fetch(self, connection: AsyncConnection, where: Any) -> builtins.list[SavedConfig]:
        statement = (
            select(_CONFIGS, _V.id.label("version_id"), _V.config)
            .join(_VERSIONS, and_(_V.config_id == _C.id, _V.version == _C.current_version))
            .where(where)
            .order_by(_C.created_at.desc(), _C.id)
        )
        rows = (await connection.execute(statement)).mappings().all()
        found = []
        for row in rows:
            try:
                found.append(_saved(row, unseal(row["config"], self._vault, row["id"])))
            except VaultError as exc:  # one unreadable config must not take the others down
                if row["version_id"] not in self._unreadable:  # said once, not at every reload
                    self._unreadable.add(row["version_id"])
                    log.error("saved config %s is left out: %s", row["slug"], exc)
        return found

    def _opened(self, stored: dict[str, Any], config_id: str) -> dict[str, Any]:
        """``stored`` unsealed, or as stored when it does not open (its credentials are redacted
        wherever it is shown)."""
        try:
            return unseal(stored, self._vault, config_id)
        except VaultError:
            return stored

    async def _insert_version(
        self,
        connection: AsyncConnection,
        config_id: str,
        version: int,
        content: Mapping[str, Any],
        description: str | None,
    ) -> None:
        await connection.execute(
            _VERSIONS.insert().values(
                id=new_id(),
                config_id=config_id,
                version=version,
                config=seal(dict(content), self._vault, config_id),
                description=description,
                created_at=utcnow(),
            )
        )

    @staticmethod
    async def _clear_other_defaults(
        connection: AsyncConnection, config_id: str, workspace_id: str | None
    ) -> None:
        same_workspace = (
            _C.workspace_id.is_(None) if workspace_id is None else _C.workspace_id == workspace_id
        )
        await connection.execute(
            update(_CONFIGS).where(same_workspace, _C.id != config_id, _C.is_default).values(is_default=False)
        )


async def seal_stored(engine: AsyncEngine, vault: Vault) -> int:
    """Seal the credentials of config versions written before sealing (or under an earlier master
    key); one transaction per version. Returns how many versions changed."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(_V.id, _V.config_id, _V.config))).all()
    changed = 0
    for version_id, config_id, stored in rows:
        if not needs_sealing(stored, vault.key_id):
            continue
        resealed = seal(unseal(stored, vault, config_id), vault, config_id)
        async with writing(engine) as connection:
            await connection.execute(update(_VERSIONS).where(_V.id == version_id).values(config=resealed))
        changed += 1
    return changed


def _unknown(slug: str) -> NotFound:
    return NotFound(f"Config not found: {slug}", [slug])


def _saved(row: RowMapping, config: dict[str, Any]) -> SavedConfig:
    return SavedConfig(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        workspace_id=row["workspace_id"],
        is_default=bool(row["is_default"]),
        status=row["status"],
        config=config,
        version=row["current_version"],
        version_id=row["version_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
