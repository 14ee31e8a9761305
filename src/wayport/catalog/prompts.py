"""Prompt templates: versions, the published (default) version, and labels.

Every update adds an immutable version; ``makeDefault`` (publish) chooses the version a bare
reference (``pp-...``) gets; labels (``production``, ``staging``, custom) point at a version each
and move freely, which is how a rollout or a rollback is done. See :mod:`wayport.catalog.ids` for
the reference forms.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wayport.catalog.collections import CollectionRepository
from wayport.catalog.configs import ACTIVE, ARCHIVED
from wayport.catalog.db import bump_version, writing
from wayport.catalog.errors import InvalidInput, NotFound
from wayport.catalog.ids import Reference, new_id, new_slug, utcnow
from wayport.catalog.templates import TEMPLATE_FIELDS, PromptTemplate, validate_template
from wayport.store.schema import PromptLabelRow, PromptRow, PromptVersionRow
from wayport.store.tenancy import listing_workspace, visible

__all__ = ["LABEL_PATTERN", "Prompt", "PromptRepository", "PromptVersion"]

LABEL_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
LABEL_RULE = "letters, digits, '_', '-' or '.', starting with a letter; not 'latest'"
_PROMPTS = cast(Table, PromptRow.__table__)
_VERSIONS = cast(Table, PromptVersionRow.__table__)
_LABELS = cast(Table, PromptLabelRow.__table__)
_P, _V, _L = _PROMPTS.c, _VERSIONS.c, _LABELS.c


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt; ``current_version`` is the newest, ``default_version`` the published one."""

    id: str
    slug: str
    name: str
    collection_id: str
    workspace_id: str | None
    status: str
    current_version: int
    default_version: int
    created_at: datetime
    updated_at: datetime
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable version of a prompt."""

    id: str
    prompt_id: str
    version: int
    template: PromptTemplate
    description: str | None
    created_at: datetime


class PromptRepository:
    """Prompts, their versions and labels in the store; a prompt is found by id or slug."""

    def __init__(self, engine: AsyncEngine, collections: CollectionRepository) -> None:
        self._engine = engine
        self._collections = collections

    async def create(
        self,
        name: str,
        template: PromptTemplate,
        *,
        collection_id: str | None = None,
        workspace_id: str | None = None,
        description: str | None = None,
    ) -> tuple[Prompt, PromptVersion]:
        """A new prompt with ``template`` as version 1, published."""
        if not name.strip():
            raise InvalidInput("Invalid request body", ["path: name, message: a prompt needs a name"])
        validate_template(template)
        collection = await self._collections.resolve(collection_id, workspace_id)
        prompt_id, now = new_id(), utcnow()
        async with writing(self._engine) as connection:
            await connection.execute(
                _PROMPTS.insert().values(
                    id=prompt_id,
                    slug=new_slug("pp", name, "prompt"),
                    name=name,
                    collection_id=collection.id,
                    workspace_id=collection.workspace_id,
                    status=ACTIVE,
                    current_version=1,
                    default_version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            version = await _insert_version(connection, prompt_id, 1, template, description)
        return await self.require(prompt_id), version

    async def get(self, key: str) -> Prompt | None:
        """A prompt (archived or not) by id or slug, with its labels."""
        async with self._engine.connect() as connection:
            return await _get(connection, key)

    async def require(self, key: str) -> Prompt:
        prompt = await self.get(key)
        if prompt is None:
            raise NotFound(f"Prompt not found: {key}", [key])
        return prompt

    async def list(
        self,
        *,
        collection_id: str | None = None,
        workspace_id: str | None = None,
        search: str | None = None,
        page: int = 0,
        page_size: int = 100,
    ) -> tuple[builtins.list[tuple[Prompt, str | None]], int]:
        """One page of active prompts, newest first, each with its published version's model; and
        how many there are in all."""
        conditions = [_P.status == ACTIVE, visible(_P.workspace_id)]
        workspace_id = listing_workspace(workspace_id)
        if collection_id:
            conditions.append(_P.collection_id == (await self._collections.resolve(collection_id)).id)
        if workspace_id:
            conditions.append(_P.workspace_id == workspace_id)
        if search:
            conditions.append(or_(_P.name.ilike(f"%{search}%"), _P.slug.ilike(f"%{search}%")))
        where = and_(true(), *conditions)
        statement = (
            select(_PROMPTS, _V.model)
            .outerjoin(_VERSIONS, and_(_V.prompt_id == _P.id, _V.version == _P.default_version))
            .where(where)
            .order_by(_P.created_at.desc(), _P.id)
            .offset(page * page_size)
            .limit(page_size)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
            total = (
                await connection.execute(select(func.count()).select_from(_PROMPTS).where(where))
            ).scalar_one()
        return [(_prompt(row, {}), row["model"]) for row in rows], int(total)

    async def update(
        self,
        key: str,
        changes: Mapping[str, Any],
        *,
        name: str | None = None,
        collection_id: str | None = None,
        description: str | None = None,
    ) -> tuple[Prompt, PromptVersion]:
        """Rename or move a prompt; template ``changes`` (any of :data:`TEMPLATE_FIELDS`) add a
        version made from the newest one. The published version does not change."""
        prompt = await self.require(key)
        moves: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise InvalidInput("Invalid request body", ["path: name, message: a prompt needs a name"])
            moves["name"] = name
        if collection_id:
            collection = await self._collections.resolve(collection_id, prompt.workspace_id)
            moves["collection_id"] = collection.id
        template_changes = {k: v for k, v in changes.items() if k in TEMPLATE_FIELDS}
        async with writing(self._engine) as connection:
            if template_changes:
                bumped = await bump_version(connection, _PROMPTS, _P.id == prompt.id, **moves)
                assert bumped is not None
                base = await _select_version(connection, prompt.id, bumped[1] - 1)
                template = base.template.with_changes(template_changes)
                validate_template(template)
                made = await _insert_version(connection, prompt.id, bumped[1], template, description)
                # read inside the transaction: the row is still locked, so this is what this write made
                updated = await _get(connection, prompt.id)
                assert updated is not None
                return updated, made
            if moves:
                moves["updated_at"] = utcnow()
                await connection.execute(update(_PROMPTS).where(_P.id == prompt.id).values(moves))
        return await self.version(prompt.id, Reference(prompt.id, label="latest"))

    async def delete(self, key: str) -> Prompt:
        """Archive a prompt: it no longer renders; its versions stay."""
        prompt = await self.require(key)
        async with writing(self._engine) as connection:
            await connection.execute(
                update(_PROMPTS).where(_P.id == prompt.id).values(status=ARCHIVED, updated_at=utcnow())
            )
        return await self.require(prompt.id)

    async def make_default(self, key: str, version: int) -> Prompt:
        """Publish ``version``: a bare reference to the prompt now renders it."""
        prompt, _ = await self.version(key, Reference(key, version=version))
        async with writing(self._engine) as connection:
            await connection.execute(
                update(_PROMPTS)
                .where(_P.id == prompt.id)
                .values(default_version=version, updated_at=utcnow())
            )
        return await self.require(prompt.id)

    async def set_label(self, key: str, label: str, version: int) -> Prompt:
        """Point ``label`` at ``version`` (set it, or move it)."""
        label = label.lower()
        if label == "latest" or not LABEL_PATTERN.match(label):
            raise InvalidInput(
                f"Invalid label '{label}'",
                [f"path: label, message: {LABEL_RULE}"],
            )
        prompt, _ = await self.version(key, Reference(key, version=version))
        values = {"prompt_id": prompt.id, "label": label, "version": version, "updated_at": utcnow()}
        async with writing(self._engine) as connection:
            insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            statement = insert(_LABELS).values(values)
            statement = statement.on_conflict_do_update(
                index_elements=[_L.prompt_id, _L.label],
                set_={"version": statement.excluded.version, "updated_at": statement.excluded.updated_at},
            )
            await connection.execute(statement)
        return await self.require(prompt.id)

    async def remove_label(self, key: str, label: str) -> Prompt:
        """Take ``label`` off the prompt; references through it stop resolving."""
        prompt = await self.require(key)
        async with writing(self._engine) as connection:
            result = await connection.execute(
                delete(_LABELS).where(_L.prompt_id == prompt.id, _L.label == label.lower())
            )
        if not getattr(result, "rowcount", 0):
            raise NotFound(f"Label '{label}' is not set on prompt {prompt.slug}", [label])
        return await self.require(prompt.id)

    async def versions(self, key: str) -> tuple[Prompt, builtins.list[PromptVersion]]:
        """Every version, newest first."""
        prompt = await self.require(key)
        statement = select(_VERSIONS).where(_V.prompt_id == prompt.id).order_by(_V.version.desc())
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return prompt, [_version(row) for row in rows]

    async def version(self, key: str, reference: Reference) -> tuple[Prompt, PromptVersion]:
        """The version ``reference`` selects: a number, ``latest``, a label, or the published one."""
        prompt = await self.require(key)
        if reference.version is not None:
            number = reference.version
        elif reference.latest:
            number = prompt.current_version
        elif reference.label:
            if reference.label not in prompt.labels:
                raise NotFound(
                    f"Label '{reference.label}' is not set on prompt {prompt.slug}", [str(reference)]
                )
            number = prompt.labels[reference.label]
        else:
            number = prompt.default_version
        async with self._engine.connect() as connection:
            return prompt, await _select_version(connection, prompt.id, number, str(reference))

    async def version_by_id(self, key: str, version_id: str) -> tuple[Prompt, PromptVersion]:
        """A version by its id (or its number)."""
        if version_id.isdigit():
            return await self.version(key, Reference(key, version=int(version_id)))
        prompt = await self.require(key)
        statement = select(_VERSIONS).where(_V.prompt_id == prompt.id, _V.id == version_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"Prompt {prompt.slug} has no version {version_id}", [version_id])
        return prompt, _version(row)


def _matches(key: str) -> Any:
    return and_(or_(_P.id == key, _P.slug == key), visible(_P.workspace_id))


async def _get(connection: AsyncConnection, key: str) -> Prompt | None:
    row = (await connection.execute(select(_PROMPTS).where(_matches(key)))).mappings().first()
    if row is None:
        return None
    labels = await connection.execute(select(_L.label, _L.version).where(_L.prompt_id == row["id"]))
    return _prompt(row, {label: version for label, version in labels.all()})


async def _select_version(
    connection: AsyncConnection, prompt_id: str, number: int, reference: str | None = None
) -> PromptVersion:
    statement = select(_VERSIONS).where(_V.prompt_id == prompt_id, _V.version == number)
    row = (await connection.execute(statement)).mappings().first()
    if row is None:
        raise NotFound(f"The prompt has no version {number}", [reference or str(number)])
    return _version(row)


async def _insert_version(
    connection: AsyncConnection,
    prompt_id: str,
    number: int,
    template: PromptTemplate,
    description: str | None,
) -> PromptVersion:
    version_id, now = new_id(), utcnow()
    await connection.execute(
        _VERSIONS.insert().values(
            id=version_id,
            prompt_id=prompt_id,
            version=number,
            description=description,
            created_at=now,
            **template.as_dict(),
        )
    )
    return PromptVersion(version_id, prompt_id, number, template, description, now)


def _prompt(row: RowMapping, labels: dict[str, int]) -> Prompt:
    return Prompt(
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
        labels=labels,
    )


def _version(row: RowMapping) -> PromptVersion:
    template = PromptTemplate(**{name: row[name] for name in TEMPLATE_FIELDS})
    return PromptVersion(
        row["id"], row["prompt_id"], row["version"], template, row["description"], row["created_at"]
    )
