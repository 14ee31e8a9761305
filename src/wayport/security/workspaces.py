"""Workspaces: the organisation's partitions. Every key, virtual key, config, prompt and log
belongs to one; ``default`` always exists (rows made before workspaces belong to it)."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.ids import iso, utcnow
from wayport.security.roles import DEFAULT_WORKSPACE
from wayport.store.schema import WorkspaceRow

_WORKSPACES = cast(Table, WorkspaceRow.__table__)
_W = _WORKSPACES.c
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class WorkspaceError(ValueError):
    """A workspace id that is not usable; the message says why."""


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "workspace", "name": self.name, "created_at": iso(self.created_at)}


class WorkspaceStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, workspace_id: str, name: str | None = None) -> tuple[Workspace, bool]:
        """The workspace ``workspace_id`` (created when missing) and whether it was created."""
        if not _ID.match(workspace_id):
            raise WorkspaceError(
                f"workspace id {workspace_id!r}: use 1-63 lower-case letters, digits and '-', "
                "starting with a letter or digit"
            )
        values = {"id": workspace_id, "name": name or workspace_id, "created_at": utcnow()}
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        async with self._engine.begin() as connection:
            result = await connection.execute(insert(_WORKSPACES).values(**values).on_conflict_do_nothing())
        found = await self.get(workspace_id)
        assert found is not None
        return found, result.rowcount == 1

    async def ensure_default(self) -> None:
        await self.create(DEFAULT_WORKSPACE, "Default")

    async def get(self, workspace_id: str) -> Workspace | None:
        async with self._engine.connect() as connection:
            row = (
                (await connection.execute(select(_WORKSPACES).where(_W.id == workspace_id)))
                .mappings()
                .first()
            )
        return Workspace(row["id"], row["name"], row["created_at"]) if row is not None else None

    async def list(self) -> builtins.list[Workspace]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(_WORKSPACES).order_by(_W.id))).mappings().all()
        return [Workspace(row["id"], row["name"], row["created_at"]) for row in rows]
