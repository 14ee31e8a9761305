"""The audit log: every control-plane change, append-only.

The gateway records each control-plane request that changes something (POST, PUT, PATCH, DELETE):
who (key id and name), when, from where (client address), what (method, path, resource, status).
Routers that know the object's state before and after a change say so with :func:`note_change`;
for the others the (scrubbed) request body is kept as ``after``. Changes made from the shell
(``wayport keys``, ``workspaces``, ``vkeys``, ``configs apply``) are recorded too, by
:meth:`AuditLog.record_command`. Secrets never enter: every value goes through the log scrubber,
and callers pass objects without their secrets.
"""

from __future__ import annotations

import builtins
import getpass
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from fastapi import Request
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.ids import iso, new_id, utcnow
from wayport.observability.scrub import scrub
from wayport.security.roles import Principal
from wayport.store.schema import AuditLogRow

_AUDIT = cast(Table, AuditLogRow.__table__)
_A = _AUDIT.c
NOTE_KEY = "wayport.audit"
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACTIONS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def note_change(
    request: Request,
    *,
    resource_id: str | None = None,
    before: Any = None,
    after: Any = None,
    action: str | None = None,
) -> None:
    """What a router knows of a change, for its audit entry (objects without secrets)."""
    setattr(
        request.state,
        NOTE_KEY,
        {"resource_id": resource_id, "before": before, "after": after, "action": action},
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    created_at: datetime
    actor_key_id: str | None
    actor: str
    workspace_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    method: str
    path: str
    status: int
    client_ip: str | None
    before: Any
    after: Any

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "audit-log",
            "timestamp": iso(self.created_at),
            "actor": {"api_key_id": self.actor_key_id, "name": self.actor},
            "workspace_id": self.workspace_id,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "method": self.method,
            "path": self.path,
            "response_status": self.status,
            "client_ip": self.client_ip,
            "before": self.before,
            "after": self.after,
        }


def resource_of(path: str) -> tuple[str, str | None]:
    """``/v1/virtual-keys/openai-prod`` -> (``virtual-keys``, ``openai-prod``)."""
    parts = [part for part in path.split("/") if part][1:]  # drop "v1"
    if not parts:
        return "unknown", None
    return parts[0], parts[1] if len(parts) > 1 else None


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(
        self,
        principal: Principal,
        scope: MutableMapping[str, Any],
        status: int,
        body: bytes | None,
    ) -> None:
        """Append the entry of one control-plane request that changed (or tried to change) something."""
        method: str = scope["method"]
        path: str = scope["path"]
        note = scope.get("state", {}).get(NOTE_KEY) or {}
        resource_type, resource_id = resource_of(path)
        after = note.get("after")
        if after is None and not note and body:
            after = _body_text(body)
        client = scope.get("client")
        await self._append(
            actor_key_id=principal.key_id,
            actor=principal.name,
            workspace_id=principal.workspace_id,
            action=note.get("action") or _ACTIONS.get(method, method.lower()),
            resource_type=resource_type,
            resource_id=note.get("resource_id") or resource_id,
            method=method,
            path=path,
            status=status,
            client_ip=client[0] if client else None,
            before=note.get("before"),
            after=after,
        )

    async def record_command(
        self,
        command: str,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        workspace_id: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """Append the entry of a change made from the shell (``wayport keys create``, ...): the actor
        is ``cli:<user>``, the method ``CLI`` and the path the command."""
        await self._append(
            actor_key_id=None,
            actor=f"cli:{_shell_user()}",
            workspace_id=workspace_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            method="CLI",
            path=command,
            status=200,
            client_ip=None,
            before=before,
            after=after,
        )

    async def _append(self, *, path: str, before: Any, after: Any, **fields: Any) -> None:
        """One entry: an id and the time are added, the path is bounded and the objects scrubbed."""
        values = {"id": new_id(), "created_at": utcnow(), "path": path[:1024], **fields}
        values.update(before=scrub(before), after=scrub(after))
        async with self._engine.begin() as connection:
            await connection.execute(insert(_AUDIT).values(**values))

    async def list(
        self,
        *,
        workspace_id: str | None = None,
        resource_type: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[AuditEntry]:
        statement = select(_AUDIT).order_by(_A.created_at.desc(), _A.id.desc()).limit(limit).offset(offset)
        if workspace_id is not None:
            statement = statement.where(_A.workspace_id == workspace_id)
        if resource_type is not None:
            statement = statement.where(_A.resource_type == resource_type)
        if action is not None:
            statement = statement.where(_A.action == action)
        if since is not None:
            statement = statement.where(_A.created_at >= since)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [AuditEntry(**dict(row)) for row in rows]


def _body_text(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:4096].decode("utf-8", "replace")


def _shell_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name for this uid (a container)
        return str(os.getuid())
