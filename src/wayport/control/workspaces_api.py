"""``/v1/workspaces`` and ``/v1/audit-logs``: the organisation's workspaces and its change history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from wayport.control.errors import ControlError, ControlJSONResponse
from wayport.security.audit import AuditLog, note_change
from wayport.security.guard import require, resource_guard
from wayport.security.roles import Principal
from wayport.security.workspaces import WorkspaceError, WorkspaceStore

Caller = Annotated[Principal, Depends(resource_guard("workspaces"))]


class WorkspaceCreateBody(BaseModel):
    id: str
    name: str | None = None


def workspaces_router(store: WorkspaceStore) -> APIRouter:
    router = APIRouter(prefix="/v1/workspaces", tags=["workspaces"])

    @router.post("")
    async def create_workspace(body: WorkspaceCreateBody, request: Request, principal: Caller) -> Response:
        try:
            workspace, created = await store.create(body.id, body.name)
        except WorkspaceError as exc:
            raise ControlError(400, f"id: {exc}") from None
        if not created:
            raise ControlError(409, f"workspace '{body.id}' exists already")
        note_change(request, resource_id=workspace.id, after=workspace.public())
        return ControlJSONResponse(workspace.public())

    @router.get("")
    async def list_workspaces(principal: Caller) -> Response:
        data = [w.public() for w in await store.list() if principal.sees(w.id)]
        return ControlJSONResponse({"object": "list", "total": len(data), "data": data})

    @router.get("/{workspace_id}")
    async def get_workspace(workspace_id: str, principal: Caller) -> Response:
        workspace = await store.get(workspace_id)
        if workspace is None or not principal.sees(workspace.id):
            raise ControlError(404, f"workspace '{workspace_id}' was not found")
        return ControlJSONResponse(workspace.public())

    return router


def audit_router(audit: AuditLog) -> APIRouter:
    router = APIRouter(prefix="/v1/audit-logs", tags=["audit-logs"])

    @router.get("")
    async def list_audit_logs(
        principal: Annotated[Principal, Depends(require("audit_logs.read"))],
        workspace_id: Annotated[str | None, Query()] = None,
        resource_type: Annotated[
            str | None, Query(description="e.g. virtual-keys, api-keys, configs")
        ] = None,
        action: Annotated[str | None, Query(description="create, update, delete, revoke, ...")] = None,
        since: Annotated[datetime | None, Query()] = None,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        current_page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Response:
        """Changes newest first; append-only (there is no route that edits or deletes them)."""
        entries = await audit.list(
            workspace_id=principal.workspace_filter(workspace_id),
            resource_type=resource_type,
            action=action,
            since=since,
            limit=page_size,
            offset=current_page * page_size,
        )
        return ControlJSONResponse({"object": "list", "data": [e.public() for e in entries]})

    return router
