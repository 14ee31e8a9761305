"""Prompt collections: folders of prompts and partials. Each workspace has a default one, made on
first use, which takes prompts created without a ``collection_id``."""

from __future__ import annotations

import builtins
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.db import writing
from wayport.catalog.errors import NotFound
from wayport.catalog.ids import new_id, new_slug, utcnow
from wayport.store.schema import PromptCollectionRow
from wayport.store.tenancy import visible, workspace_for_new

__all__ = ["Collection", "CollectionRepository"]

DEFAULT_NAME = "Default"
_TABLE = cast(Table, PromptCollectionRow.__table__)
_C = _TABLE.c


@dataclass(frozen=True, slots=True)
class Collection:
    """A collection of prompts (Portkey's ``/v1/collections``)."""

    id: str
    slug: str
    name: str
    workspace_id: str | None
    parent_collection_id: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


def _default_slug(workspace_id: str | None) -> str:
    return "default" if workspace_id is None else f"default-{workspace_id}"


class CollectionRepository:
    """Collections in the store, looked up by id or slug."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def default(self, workspace_id: str | None = None) -> Collection:
        """The workspace's default collection, created the first time it is asked for."""
        slug = _default_slug(workspace_id)
        existing = await self.get(slug)
        if existing is not None:
            return existing
        with suppress(IntegrityError):  # another process may make it first
            await self._insert(slug, DEFAULT_NAME, workspace_id, None, is_default=True)
        made = await self.get(slug)
        assert made is not None
        return made

    async def create(
        self, name: str, *, workspace_id: str | None = None, parent_collection_id: str | None = None
    ) -> Collection:
        workspace_id = workspace_for_new(workspace_id)
        if parent_collection_id is not None:
            parent_collection_id = (await self.resolve(parent_collection_id, workspace_id)).id
        slug = new_slug("col", name, "collection")
        await self._insert(slug, name, workspace_id, parent_collection_id, is_default=False)
        made = await self.get(slug)
        assert made is not None
        return made

    async def get(self, key: str) -> Collection | None:
        """A collection by id or slug."""
        async with self._engine.connect() as connection:
            row = (
                (
                    await connection.execute(
                        select(_TABLE).where(or_(_C.id == key, _C.slug == key), visible(_C.workspace_id))
                    )
                )
                .mappings()
                .first()
            )
        return _collection(row) if row is not None else None

    async def resolve(self, key: str | None, workspace_id: str | None = None) -> Collection:
        """The collection ``key`` names, or the default one when ``key`` is empty."""
        workspace_id = workspace_for_new(workspace_id)
        if not key:
            return await self.default(workspace_id)
        found = await self.get(key)
        if found is None:
            raise NotFound(f"Collection not found: {key}", [key])
        return found

    async def list(
        self, *, workspace_id: str | None = None, search: str | None = None
    ) -> builtins.list[Collection]:
        """Collections of the workspace (the default one included), default first, then by name."""
        workspace_id = workspace_for_new(workspace_id)
        await self.default(workspace_id)
        statement = select(_TABLE).order_by(_C.is_default.desc(), _C.name, _C.id)
        statement = statement.where(
            _C.workspace_id.is_(None) if workspace_id is None else _C.workspace_id == workspace_id
        )
        if search:
            statement = statement.where(_C.name.ilike(f"%{search}%"))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_collection(row) for row in rows]

    async def _insert(
        self, slug: str, name: str, workspace_id: str | None, parent: str | None, *, is_default: bool
    ) -> None:
        now = utcnow()
        values: dict[str, Any] = {
            "id": new_id(),
            "slug": slug,
            "name": name,
            "workspace_id": workspace_id,
            "parent_collection_id": parent,
            "is_default": is_default,
            "created_at": now,
            "updated_at": now,
        }
        async with writing(self._engine) as connection:
            await connection.execute(_TABLE.insert().values(values))


def _collection(row: RowMapping) -> Collection:
    return Collection(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        workspace_id=row["workspace_id"],
        parent_collection_id=row["parent_collection_id"],
        is_default=bool(row["is_default"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
