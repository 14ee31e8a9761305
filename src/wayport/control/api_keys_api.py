"""``/v1/api-keys``: gateway API keys over HTTP, as the portkey-ai SDK's ``api_keys`` resource calls them.

``POST /v1/api-keys/{type}/{sub-type}`` (type ``organisation`` or ``workspace``, sub-type ``service``
or ``user``) answers ``{id, key, object}``: the only time the token is shown. A key can only be
given a role no stronger than its creator's, in a workspace its creator sees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from wayport.control.errors import ControlError, ControlJSONResponse
from wayport.security.audit import note_change
from wayport.security.guard import resource_guard
from wayport.security.keys import ApiKey, KeyError_, KeyRing, KeyStore
from wayport.security.limits import LimitError, parse_rate_limits, parse_usage_limits
from wayport.security.roles import ORG_ROLES, Principal, Role, ScopeError, parse_role
from wayport.security.workspaces import WorkspaceStore

# the caller, holding api_keys.read (GET) or api_keys.write (the rest)
Caller = Annotated[Principal, Depends(resource_guard("api_keys"))]
_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.MANAGER: 2, Role.ADMIN: 3, Role.OWNER: 4}


class ApiKeyCreateBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: str | None = None
    workspace_id: str | None = None
    user_id: str | None = None
    # Wayport: the role (default: admin for organisation keys, member for workspace keys)
    role: str | None = None
    scopes: list[str] | None = None
    usage_limits: dict[str, Any] | list[dict[str, Any]] | None = None
    rate_limits: list[dict[str, Any]] | None = None
    expires_at: datetime | None = None


class ApiKeyUpdateBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: str | None = None
    scopes: list[str] | None = None
    usage_limits: dict[str, Any] | list[dict[str, Any]] | None = None
    rate_limits: list[dict[str, Any]] | None = None
    expires_at: datetime | None = None


def api_keys_router(store: KeyStore, ring: KeyRing, workspaces: WorkspaceStore) -> APIRouter:
    router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])

    async def visible(principal: Principal, key_id: str) -> ApiKey:
        key = await store.get(key_id)
        if (
            key is None
            or not principal.sees(key.workspace_id)
            or (key.workspace_id is None and not principal.is_org)
        ):
            raise ControlError(404, f"API key '{key_id}' was not found")
        return key

    @router.post("/{key_type}/{sub_type}")
    async def create_key(
        key_type: str,
        sub_type: str,
        body: ApiKeyCreateBody,
        request: Request,
        principal: Caller,
    ) -> Response:
        """Create a key; the answer holds its token, shown this once."""
        if key_type not in ("organisation", "workspace"):
            raise ControlError(400, f"type '{key_type}': use 'organisation' or 'workspace'")
        if sub_type not in ("service", "user"):
            raise ControlError(400, f"sub-type '{sub_type}': use 'service' or 'user'")
        if not body.name:
            raise ControlError(400, "name: a key needs a name")
        try:
            role = (
                parse_role(body.role)
                if body.role
                else (Role.ADMIN if key_type == "organisation" else Role.MEMBER)
            )
        except ScopeError as exc:
            raise ControlError(400, f"role: {exc}") from None
        if key_type == "organisation" and role not in ORG_ROLES:
            raise ControlError(400, f"role: an organisation key is owner or admin, not {role}")
        if key_type == "workspace" and role in ORG_ROLES:
            raise ControlError(400, f"role: a workspace key is manager, member or viewer, not {role}")
        if _RANK[role] > _RANK[principal.role] or (key_type == "organisation" and not principal.is_org):
            raise ControlError(403, f"a {principal.role} key cannot create a {key_type} key with role {role}")
        workspace_id = None
        if key_type == "workspace":
            workspace_id = principal.workspace(body.workspace_id)
            if not principal.sees(workspace_id):
                raise ControlError(404, f"workspace '{body.workspace_id}' was not found")
            if await workspaces.get(workspace_id) is None:
                raise ControlError(404, f"workspace '{workspace_id}' was not found; create it first")
        _check_limits(body.usage_limits, body.rate_limits)
        try:
            key, token = await store.create(
                body.name,
                role,
                workspace_id=workspace_id,
                owner=body.user_id,
                scopes=body.scopes,
                expires_at=body.expires_at,
                usage_limits=body.usage_limits,
                rate_limits=body.rate_limits,
            )
        except ScopeError as exc:
            raise ControlError(400, f"scopes: {exc}") from None
        await ring.refresh()
        note_change(request, resource_id=key.id, after=key.public())
        return ControlJSONResponse({"id": key.id, "key": token, "object": "api-key"}, status_code=200)

    @router.get("")
    async def list_keys(
        principal: Caller,
        workspace_id: Annotated[str | None, Query()] = None,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        current_page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Response:
        keys = [
            key
            for key in await store.list(workspace_id=principal.workspace_filter(workspace_id))
            if principal.is_org or key.workspace_id is not None
        ]
        page = keys[current_page * page_size : (current_page + 1) * page_size]
        return ControlJSONResponse({"object": "list", "total": len(keys), "data": [k.public() for k in page]})

    @router.get("/{key_id}")
    async def get_key(key_id: str, principal: Caller) -> Response:
        return ControlJSONResponse((await visible(principal, key_id)).public())

    @router.put("/{key_id}")
    async def update_key(
        key_id: str, body: ApiKeyUpdateBody, request: Request, principal: Caller
    ) -> Response:
        before = await visible(principal, key_id)
        changes = body.model_dump(exclude_unset=True, exclude={"description"})
        _check_limits(changes.get("usage_limits"), changes.get("rate_limits"))
        try:
            key = await store.update(key_id, **changes)
        except ScopeError as exc:
            raise ControlError(400, f"scopes: {exc}") from None
        except KeyError_:
            raise ControlError(404, f"API key '{key_id}' was not found") from None
        await ring.refresh()
        note_change(request, resource_id=key_id, before=before.public(), after=key.public())
        return ControlJSONResponse({"status": "success", **key.public()})

    @router.delete("/{key_id}")
    async def revoke_key(key_id: str, request: Request, principal: Caller) -> Response:
        """Revoke a key: refused at once on this node, within a second on every other."""
        before = await visible(principal, key_id)
        key = await store.revoke(key_id)
        ring.forget(before)
        note_change(request, resource_id=key_id, before=before.public(), after=key.public(), action="revoke")
        return ControlJSONResponse(
            {"status": "success", "id": key_id, "revoked_at": key.public()["revoked_at"]}
        )

    return router


def _check_limits(usage_limits: Any, rate_limits: Any) -> None:
    try:
        parse_usage_limits(usage_limits)
        parse_rate_limits(rate_limits)
    except LimitError as exc:
        raise ControlError(400, str(exc)) from None
