"""``/v1/virtual-keys``: virtual keys over HTTP, as the portkey-ai SDK's ``virtual_keys`` calls them.

Bodies use Portkey's names (``key``, ``resourceName``, ``awsSecretAccessKey``, ...; the snake_case
provider option names are accepted too). No answer ever carries a credential, not even masked.
A workspace key sees and changes only its workspace's virtual keys: another workspace's slug
answers 404, as an unknown one does, so existence does not leak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.responses import Response

from wayport.catalog.ids import iso
from wayport.control.errors import ControlError, ControlJSONResponse, FieldError
from wayport.security.guard import principal_of, resource_guard
from wayport.security.limits import LimitError, parse_rate_limits, parse_usage_limits
from wayport.security.roles import Principal
from wayport.security.vault import VaultError
from wayport.security.virtual_keys import (
    SlugTaken,
    UnknownVirtualKey,
    VirtualKey,
    VirtualKeyCache,
    VirtualKeyStore,
)

__all__ = ["ChangeCallback", "virtual_key_object", "virtual_keys_router"]

# (request, action, slug, before, after): called after every successful write, for the audit log.
# ``action`` is create, update, rotate (only credentials changed) or delete; the dicts hold no secret.
ChangeCallback = Callable[[Request, str, str, dict[str, Any] | None, dict[str, Any] | None], Awaitable[None]]

# Portkey's body name -> the credential it holds
SECRET_FIELDS = {
    "key": "api_key",
    "awsAccessKeyId": "aws_access_key_id",
    "awsSecretAccessKey": "aws_secret_access_key",
    "awsSessionToken": "aws_session_token",
    "vertexServiceAccountJson": "vertex_service_account_json",
    "azureEntraClientSecret": "azure_entra_client_secret",
}
# Portkey's body name -> the (non-secret) provider option it sets
SETTING_FIELDS = {
    "resourceName": "resource_name",
    "deploymentName": "deployment_id",
    "apiVersion": "api_version",
    "deploymentConfig": "deployment_config",
    "azureAuthMode": "azure_auth_mode",
    "azureEntraClientId": "azure_entra_client_id",
    "azureEntraTenantId": "azure_entra_tenant_id",
    "awsRegion": "aws_region",
    "awsAuthType": "aws_auth_type",
    "awsRoleArn": "aws_role_arn",
    "awsExternalId": "aws_external_id",
    "vertexProjectId": "vertex_project_id",
    "vertexRegion": "vertex_region",
}
_ALIASES = {
    **{internal: internal for internal in (*SECRET_FIELDS.values(), *SETTING_FIELDS.values())},
    "api_key": "api_key",
    "deployment_name": "deployment_id",
}
_PLAIN_FIELDS = frozenset({"name", "provider", "note", "workspace_id", "usage_limits", "rate_limits", "slug"})
_SETTING_NAMES_BACK = {internal: public for public, internal in SETTING_FIELDS.items()}
_FIELD_NAMES_BACK = {
    **{internal: public for public, internal in SECRET_FIELDS.items()},
    **_SETTING_NAMES_BACK,
}


class ParsedBody:
    """A create or update body split into plain fields, credentials and settings."""

    def __init__(self, body: dict[str, Any], *, allowed: frozenset[str]) -> None:
        self.plain: dict[str, Any] = {}
        self.secret: dict[str, str] = {}
        self.settings: dict[str, Any] = {}
        for field, value in body.items():
            if field in allowed:
                self.plain[field] = value
            elif field in SECRET_FIELDS or _ALIASES.get(field) in SECRET_FIELDS.values():
                if value is None:
                    continue  # a credential sent as null is not sent (it is never cleared alone)
                self.secret[SECRET_FIELDS.get(field) or _ALIASES[field]] = _secret_value(field, value)
            elif field in SETTING_FIELDS or field in _ALIASES:
                internal = SETTING_FIELDS.get(field) or _ALIASES[field]
                self.settings[internal] = _setting_value(field, internal, value)
            else:
                known = sorted({*allowed, *SECRET_FIELDS, *SETTING_FIELDS})
                raise ControlError.invalid(FieldError(field, f"unknown field; known: {', '.join(known)}"))
        _default_deployment(self.settings)

    def text(self, field: str, *, required: bool = False) -> str | None:
        value = self.plain.get(field)
        if value is None:
            if required:
                raise ControlError.invalid(FieldError(field, "is required"))
            return None
        if not isinstance(value, str):
            raise ControlError.invalid(FieldError(field, "must be a string"))
        return value

    def usage_limits(self) -> Any:
        return _checked(self.plain.get("usage_limits"), parse_usage_limits)

    def rate_limits(self) -> Any:
        value = self.plain.get("rate_limits")
        if isinstance(value, dict):
            value = [value]  # Portkey's reference documents one object; its SDK sends a list
        return _checked(value, parse_rate_limits)


def _checked(value: Any, parse: Callable[[Any], object]) -> Any:
    """``value`` when it parses as limits; 400 naming the field otherwise."""
    try:
        parse(value)
    except LimitError as exc:
        raise ControlError(400, str(exc)) from None
    return value


def _secret_value(field: str, value: Any) -> str:
    if field in ("vertexServiceAccountJson", "vertex_service_account_json") and isinstance(value, dict):
        return orjson.dumps(value).decode()
    if not isinstance(value, str) or not value:
        raise ControlError.invalid(FieldError(field, "must be a non-empty string"))
    return value


def _setting_value(field: str, internal: str, value: Any) -> Any:
    if internal == "deployment_config":
        if not isinstance(value, list) or not value:
            raise ControlError.invalid(FieldError(field, "must be a non-empty list of deployments"))
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("deploymentName"), str):
                raise ControlError.invalid(FieldError(f"{field}[{index}].deploymentName", "is required"))
        return value
    if value is not None and not isinstance(value, str):
        raise ControlError.invalid(FieldError(field, "must be a string"))
    return value


def _default_deployment(settings: dict[str, Any]) -> None:
    """Azure's ``deploymentConfig``: the default deployment (or the first) gives the deployment and
    API version used when a request names none."""
    deployments = settings.get("deployment_config")
    if not deployments:
        return
    chosen = next((item for item in deployments if item.get("is_default")), deployments[0])
    settings.setdefault("deployment_id", chosen["deploymentName"])
    if chosen.get("apiVersion"):
        settings.setdefault("api_version", chosen["apiVersion"])


def virtual_key_object(key: VirtualKey) -> dict[str, Any]:
    """A virtual key as ``GET /v1/virtual-keys/{slug}`` answers it: no credential, not even masked."""
    model_config: dict[str, Any] = {
        _SETTING_NAMES_BACK.get(name, name): value for name, value in key.settings.items()
    }
    return {
        "id": key.id,
        "slug": key.slug,
        "name": key.name,
        "note": key.note,
        "status": key.status,
        "provider": key.provider,
        "ai_provider_name": key.provider,
        "workspace_id": key.workspace_id,
        "model_config": model_config,
        "usage_limits": key.usage_limits,
        "rate_limits": key.rate_limits,
        "created_at": iso(key.created_at),
        "last_updated_at": iso(key.updated_at),
        "object": "virtual-key",
    }


def _invalid_from_store(exc: FieldError) -> ControlError:
    return ControlError.invalid(FieldError(_FIELD_NAMES_BACK.get(exc.field, exc.field), exc.message))


def virtual_keys_router(
    store: VirtualKeyStore, cache: VirtualKeyCache, on_change: ChangeCallback | None = None
) -> APIRouter:
    """The ``/v1/virtual-keys`` routes. Writes refresh ``cache`` (this node serves the change at
    once; other nodes within their poll interval) and then call ``on_change``."""
    router = APIRouter(
        prefix="/v1/virtual-keys",
        tags=["virtual-keys"],
        dependencies=[Depends(resource_guard("virtual_keys"))],
    )

    async def visible(principal: Principal, slug: str) -> VirtualKey:
        key = await store.get(slug, reveal=False)
        if key is None or not key.active or not principal.sees(key.workspace_id):
            raise ControlError.not_found(f"Virtual key not found: {slug}")
        return key

    async def changed(
        request: Request, action: str, slug: str, before: VirtualKey | None, after: VirtualKey
    ) -> None:
        await cache.refresh()
        if on_change is not None:
            await on_change(
                request, action, slug, None if before is None else before.public(), after.public()
            )

    @router.post("")
    async def create_virtual_key(request: Request, body: Annotated[dict[str, Any], Body()]) -> Response:
        """Store a provider credential under a new slug; answers the slug."""
        principal = principal_of(request)
        parsed = ParsedBody(body, allowed=_PLAIN_FIELDS)
        requested = parsed.text("workspace_id")
        if principal.workspace_id is not None and requested not in (None, principal.workspace_id):
            raise ControlError(403, f"this API key acts in workspace '{principal.workspace_id}' only")
        try:
            key = await store.create(
                parsed.text("name", required=True) or "",
                parsed.text("provider", required=True) or "",
                parsed.secret,
                settings=parsed.settings,
                note=parsed.text("note"),
                workspace_id=principal.workspace(requested),
                usage_limits=parsed.usage_limits(),
                rate_limits=parsed.rate_limits(),
                slug=parsed.text("slug"),
            )
        except FieldError as exc:
            raise _invalid_from_store(exc) from None
        except SlugTaken as exc:
            raise ControlError(409, str(exc)) from None
        await changed(request, "create", key.slug, None, key)
        ids = {"id": key.id, "slug": key.slug}
        return ControlJSONResponse({**ids, "object": "virtual-key", "success": True, "data": ids})

    @router.get("")
    async def list_virtual_keys(
        request: Request, workspace_id: Annotated[str | None, Query()] = None
    ) -> Response:
        """The active virtual keys the caller's workspace holds (an organisation key: all, or one
        workspace's with ``workspace_id``), newest first."""
        principal = principal_of(request)
        keys = await store.list(workspace_id=principal.workspace_filter(workspace_id or None))
        data = [virtual_key_object(key) for key in keys]
        return ControlJSONResponse({"object": "list", "total": len(data), "data": data})

    @router.get("/{slug}")
    async def retrieve_virtual_key(request: Request, slug: str) -> Response:
        """One virtual key, without its credentials."""
        return ControlJSONResponse(virtual_key_object(await visible(principal_of(request), slug)))

    @router.put("/{slug}")
    async def update_virtual_key(
        request: Request, slug: str, body: Annotated[dict[str, Any], Body()]
    ) -> Response:
        """Rename, re-note, re-limit, or change credentials and settings (merged into what is stored)."""
        before = await visible(principal_of(request), slug)
        parsed = ParsedBody(body, allowed=frozenset({"name", "note", "usage_limits", "rate_limits"}))
        options: dict[str, Any] = {}
        if "note" in parsed.plain:
            options["note"] = parsed.text("note")
        if "usage_limits" in parsed.plain:
            options["usage_limits"] = parsed.usage_limits()
        if "rate_limits" in parsed.plain:
            options["rate_limits"] = parsed.rate_limits()
        try:
            after = await store.update(
                slug,
                name=parsed.text("name"),
                secret=parsed.secret or None,
                settings=parsed.settings or None,
                **options,
            )
        except FieldError as exc:
            raise _invalid_from_store(exc) from None
        except UnknownVirtualKey:
            raise ControlError.not_found(f"Virtual key not found: {slug}") from None
        except VaultError as exc:
            raise ControlError(500, str(exc)) from None
        only_secret = parsed.secret and not parsed.plain and not parsed.settings
        await changed(request, "rotate" if only_secret else "update", slug, before, after)
        return ControlJSONResponse(
            {"id": after.id, "slug": after.slug, "object": "virtual-key", "success": True}
        )

    @router.delete("/{slug}")
    async def delete_virtual_key(request: Request, slug: str) -> Response:
        """Archive a virtual key: requests naming it fail from now on; its slug is never reused."""
        before = await visible(principal_of(request), slug)
        try:
            after = await store.archive(slug)
        except UnknownVirtualKey:
            raise ControlError.not_found(f"Virtual key not found: {slug}") from None
        await changed(request, "delete", slug, before, after)
        return ControlJSONResponse({"success": True, "id": after.id, "slug": slug, "object": "virtual-key"})

    return router
