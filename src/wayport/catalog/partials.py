"""Prompt partials: reusable template pieces, versioned and published like prompts.

A template includes one as ``{{>key}}``, where ``key`` is the partial's slug (``pl-...``), id or
name, optionally with ``@N`` (a version) or ``@latest``; without a suffix the published (default)
version is used, so publishing a partial updates every template that includes it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wayport.catalog.configs import ACTIVE, ARCHIVED, STATUSES
from wayport.catalog.db import bump_version, writing
from wayport.catalog.errors import Conflict, InvalidInput, NotFound
from wayport.catalog.ids import Reference, new_id, new_slug, parse_reference, utcnow
from wayport.catalog.mustache import check_syntax
from wayport.store.schema import PromptPartialRow, PromptPartialVersionRow
from wayport.store.tenancy import listing_workspace, visible, workspace_for_new

__all__ = ["Partial", "PartialRepository", "PartialVersion"]

_PARTIALS = cast(Table, PromptPartialRow.__table__)
_VERSIONS = cast(Table, PromptPartialVersionRow.__table__)
_P = _PARTIALS.c
_V = _VERSIONS.c


@dataclass(frozen=True, slots=True)
class Partial:
    """A partial; ``current_version`` is the newest, ``default_version`` the published one."""

    id: str
    slug: str
    name: str
    collection_id: str | None
    workspace_id: str | None
    status: str
    current_version: int
    default_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PartialVersion:
    """One immutable version of a partial."""

    id: str
    partial_id: str
    version: int
    string: str
    description: str | None
    created_at: datetime


class PartialRepository:
    """Partials in the store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        name: str,
        string: str,
        *,
        workspace_id: str | None = None,
        collection_id: str | None = None,
        description: str | None = None,
    ) -> tuple[Partial, PartialVersion]:
        """A new partial, version 1 published. Names are unique among active partials."""
        check_syntax(string)
        if not name.strip():
            raise InvalidInput("Invalid request body", ["path: name, message: a partial needs a name"])
        if await self._by_name(name) is not None:
            raise Conflict(f"A partial named '{name}' exists already", [name])
        partial_id, now = new_id(), utcnow()
        async with writing(self._engine) as connection:
            await connection.execute(
                _PARTIALS.insert().values(
                    id=partial_id,
                    slug=new_slug("pl", name, "partial"),
                    name=name,
                    collection_id=collection_id,
                    workspace_id=workspace_for_new(workspace_id),
                    status=ACTIVE,
                    current_version=1,
                    default_version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            await _insert_version(connection, partial_id, 1, string, description)
        return await self.version(partial_id, Reference(partial_id))

    async def get(self, key: str) -> Partial | None:
        """A partial by id or slug, or by name among the active ones."""
        statement = select(_PARTIALS).where(or_(_P.id == key, _P.slug == key), visible(_P.workspace_id))
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        return _partial(row) if row is not None else await self._by_name(key)

    async def list(
        self, *, collection_id: str | None = None, workspace_id: str | None = None
    ) -> builtins.list[Partial]:
        """Active partials by name."""
        workspace_id = listing_workspace(workspace_id)
        statement = (
            select(_PARTIALS).where(_P.status == ACTIVE, visible(_P.workspace_id)).order_by(_P.name, _P.id)
        )
        if collection_id:
            statement = statement.where(_P.collection_id == collection_id)
        if workspace_id:
            statement = statement.where(_P.workspace_id == workspace_id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_partial(row) for row in rows]

    async def update(
        self,
        key: str,
        *,
        name: str | None = None,
        string: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> tuple[Partial, PartialVersion]:
        """Rename, archive or restore a partial; a new ``string`` adds a version (not yet published)."""
        partial = await self.require(key)
        changes: dict[str, Any] = {}
        if name is not None and name != partial.name:
            if await self._by_name(name) is not None:
                raise Conflict(f"A partial named '{name}' exists already", [name])
            changes["name"] = name
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(
                    "Invalid request body", [f"path: status, message: one of {', '.join(STATUSES)}"]
                )
            changes["status"] = status
        if string is not None:
            check_syntax(string)
        async with writing(self._engine) as connection:
            if string is not None:
                bumped = await bump_version(connection, _PARTIALS, _P.id == partial.id, **changes)
                assert bumped is not None
                made = await _insert_version(connection, partial.id, bumped[1], string, description)
                result = await connection.execute(select(_PARTIALS).where(_P.id == partial.id))
                return _partial(result.mappings().one()), made
            if changes:
                changes["updated_at"] = utcnow()
                await connection.execute(update(_PARTIALS).where(_P.id == partial.id).values(changes))
        return await self.version(partial.id, Reference(partial.id, label="latest"))

    async def delete(self, key: str) -> None:
        """Archive a partial: templates that include it stop finding it."""
        await self.update(key, status=ARCHIVED)

    async def make_default(self, key: str, version: int) -> Partial:
        """Publish ``version``: ``{{>key}}`` now includes it."""
        partial, _ = await self.version(key, Reference(key, version=version))
        async with writing(self._engine) as connection:
            await connection.execute(
                update(_PARTIALS)
                .where(_P.id == partial.id)
                .values(default_version=version, updated_at=utcnow())
            )
        return await self.require(key)

    async def versions(self, key: str) -> builtins.list[PartialVersion]:
        """Every version, newest first."""
        partial = await self.require(key)
        statement = select(_VERSIONS).where(_V.partial_id == partial.id).order_by(_V.version.desc())
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_version(row) for row in rows]

    async def version(self, key: str, reference: Reference) -> tuple[Partial, PartialVersion]:
        """The version ``reference`` selects: a number, ``latest``, or the published one."""
        partial = await self.require(key)
        if reference.version is not None:
            number = reference.version
        elif reference.latest:
            number = partial.current_version
        elif reference.label:
            raise NotFound(f"Partials have no labels: use a version number or 'latest' ({reference})")
        else:
            number = partial.default_version
        statement = select(_VERSIONS).where(_V.partial_id == partial.id, _V.version == number)
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"Partial {partial.slug} has no version {number}", [str(reference)])
        return partial, _version(row)

    async def strings(self, references: Iterable[str]) -> dict[str, str]:
        """The template text of each reference (``key``, ``key@N``, ``key@latest``) that names an
        active partial; the others are left out."""
        found: dict[str, str] = {}
        for text in references:
            reference = parse_reference(text)
            partial = await self.get(reference.key)
            if partial is None or partial.status != ACTIVE:
                continue
            try:
                _, version = await self.version(partial.id, reference)
            except NotFound:
                continue
            found[text] = version.string
        return found

    async def require(self, key: str) -> Partial:
        partial = await self.get(key)
        if partial is None:
            raise NotFound(f"Partial not found: {key}", [key])
        return partial

    async def _by_name(self, name: str) -> Partial | None:
        statement = (
            select(_PARTIALS)
            .where(_P.name == name, _P.status == ACTIVE, visible(_P.workspace_id))
            .order_by(_P.created_at.desc())
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        return _partial(row) if row is not None else None


async def _insert_version(
    connection: AsyncConnection, partial_id: str, version: int, string: str, description: str | None
) -> PartialVersion:
    made = PartialVersion(new_id(), partial_id, version, string, description, utcnow())
    await connection.execute(
        _VERSIONS.insert().values(
            id=made.id,
            partial_id=partial_id,
            version=version,
            string=string,
            description=description,
            created_at=made.created_at,
        )
    )
    return made


def _partial(row: RowMapping) -> Partial:
    return Partial(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        collection_id=row["collection_id"],
        workspace_id=row["workspace_id"],
        status=row["status"],
        current_version=row["current_version"],
        default_version=row["default_version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _version(row: RowMapping) -> PartialVersion:
    return PartialVersion(
        id=row["id"],
        partial_id=row["partial_id"],
        version=row["version"],
        string=row["string"],
        description=row["description"],
        created_at=row["created_at"],
    )
