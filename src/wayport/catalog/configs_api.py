"""``/v1/configs``: saved configs over HTTP, as the portkey-ai SDK's ``configs`` resource calls them.

``GET /v1/configs/{slug}`` answers the flat object of the SDK's ``ConfigGetResponse`` with
``config`` as a JSON string, so ``json.loads(response["config"])`` works as in Portkey's guides.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from wayport.catalog.config_secrets import redact
from wayport.catalog.configs import ConfigVersion, SavedConfig
from wayport.catalog.errors import CatalogJSONResponse, CatalogRoute, InvalidInput, NotFound
from wayport.catalog.ids import iso
from wayport.catalog.state import CatalogState

__all__ = ["ConfigCreateBody", "ConfigUpdateBody", "config_object", "configs_router"]


class ConfigCreateBody(BaseModel):
    """``POST /v1/configs``: ``config`` is an object or its JSON text."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    config: dict[str, Any] | str | None = None
    is_default: bool | int | None = None
    workspace_id: str | None = None
    description: str | None = None
    # Wayport extension: keep a slug (one migrated from Portkey, or kept in git)
    slug: str | None = None


class ConfigUpdateBody(BaseModel):
    """``PUT /v1/configs/{slug}``: only the fields sent change; a ``config`` adds a version."""

    model_config = ConfigDict(extra="allow")

    slug: str | None = None
    name: str | None = None
    config: dict[str, Any] | str | None = None
    status: str | None = None
    is_default: bool | int | None = None
    description: str | None = None


def config_object(saved: SavedConfig) -> dict[str, Any]:
    """The flat object of ``GET /v1/configs/{slug}`` (the SDK's ``ConfigGetResponse``)."""
    return {
        "id": saved.id,
        "organisation_id": None,
        "config": orjson.dumps(redact(saved.config)).decode(),
        "name": saved.name,
        "workspace_id": saved.workspace_id,
        "slug": saved.slug,
        "is_default": int(saved.is_default),
        "status": saved.status,
        "owner_id": None,
        "created_at": iso(saved.created_at),
        "updated_by": None,
        "last_updated_at": iso(saved.updated_at),
        "format": "json",
        "version": saved.version,
        "version_id": saved.version_id,
        "object": "config",
    }


def _list_item(saved: SavedConfig) -> dict[str, Any]:
    item = config_object(saved)
    del item["config"], item["format"]
    return item


def _version_item(slug: str, version: ConfigVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "config_id": version.config_id,
        "slug": slug,
        "version": version.version,
        "config": orjson.dumps(redact(version.config)).decode(),
        "description": version.description,
        "created_at": iso(version.created_at),
        "object": "config_version",
    }


def configs_router(state: CatalogState) -> APIRouter:
    """The ``/v1/configs`` routes over ``state``."""
    router = APIRouter(prefix="/v1/configs", tags=["configs"], route_class=CatalogRoute)

    @router.post("")
    async def create_config(body: ConfigCreateBody) -> Response:
        """Save a config; answers its slug and first version id."""
        if body.config is None:
            raise InvalidInput("Invalid request body", ["path: config, message: a config is required"])
        saved = await state.configs.create(
            body.name or "",
            body.config,
            workspace_id=body.workspace_id,
            is_default=bool(body.is_default),
            description=body.description,
            slug=body.slug,
        )
        await state.config_changed(saved)
        payload = {"id": saved.id, "version_id": saved.version_id, "slug": saved.slug, "object": "config"}
        return CatalogJSONResponse(payload)

    @router.get("")
    async def list_configs(
        workspace_id: Annotated[str | None, Query()] = None,
        include_archived: Annotated[bool, Query()] = False,
    ) -> Response:
        """Active configs (archived ones too with ``include_archived=true``), newest first."""
        saved = await state.configs.list(workspace_id=workspace_id or None, include_archived=include_archived)
        data = [_list_item(item) for item in saved]
        return CatalogJSONResponse({"success": True, "object": "list", "total": len(data), "data": data})

    @router.get("/{slug}")
    async def retrieve_config(slug: str) -> Response:
        """One config with its current version; ``config`` is a JSON string."""
        saved = await state.configs.get(slug)
        if saved is None:
            raise NotFound(f"Config not found: {slug}", [slug])
        return CatalogJSONResponse(config_object(saved))

    @router.put("/{slug}")
    async def update_config(slug: str, body: ConfigUpdateBody) -> Response:
        """Rename, archive or restore a config, or save a new version of it."""
        saved = await state.configs.update(
            slug,
            name=body.name,
            config=body.config,
            status=body.status,
            is_default=None if body.is_default is None else bool(body.is_default),
            description=body.description,
        )
        await state.config_changed(saved)
        payload = {
            "version_id": saved.version_id,
            "version": saved.version,
            "slug": saved.slug,
            "object": "config",
        }
        return CatalogJSONResponse(payload)

    @router.delete("/{slug}")
    async def delete_config(slug: str) -> Response:
        """Archive a config: it no longer resolves; its versions stay."""
        saved = await state.configs.delete(slug)
        await state.config_changed(saved)
        return CatalogJSONResponse({})

    @router.get("/{slug}/versions")
    async def config_versions(slug: str) -> Response:
        """Every version of a config, newest first."""
        versions = await state.configs.versions(slug)
        data = [_version_item(slug, version) for version in versions]
        return CatalogJSONResponse({"object": "list", "total": len(data), "data": data})

    return router
