"""``/v1/prompts/partials`` and ``/v1/collections``, as the portkey-ai SDK calls them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from wayport.catalog.collections import Collection
from wayport.catalog.errors import CatalogJSONResponse, CatalogRoute, InvalidInput
from wayport.catalog.ids import iso, parse_reference
from wayport.catalog.partials import Partial, PartialVersion
from wayport.catalog.state import CatalogState

__all__ = ["collections_router", "partials_router"]


class PartialBody(BaseModel):
    """``POST``/``PUT /v1/prompts/partials[/{key}]``."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    string: str | None = None
    workspace_id: str | None = None
    collection_id: str | None = None
    version_description: str | None = None
    description: str | None = None
    status: str | None = None


class VersionBody(BaseModel):
    """``PUT .../makeDefault``: the version to publish."""

    model_config = ConfigDict(extra="allow")

    version: int


class CollectionBody(BaseModel):
    """``POST /v1/collections``."""

    model_config = ConfigDict(extra="allow")

    name: str
    workspace_id: str | None = None
    parent_collection_id: str | None = None


def listing(data: list[dict[str, Any]]) -> Response:
    return CatalogJSONResponse({"object": "list", "total": len(data), "data": data})


def _partial_summary(partial: Partial) -> dict[str, Any]:
    return {
        "id": partial.id,
        "slug": partial.slug,
        "name": partial.name,
        "collection_id": partial.collection_id,
        "workspace_id": partial.workspace_id,
        "status": partial.status,
        "default_version": partial.default_version,
        "latest_version": partial.current_version,
        "created_at": iso(partial.created_at),
        "last_updated_at": iso(partial.updated_at),
        "object": "partial",
    }


def _partial_object(partial: Partial, version: PartialVersion) -> dict[str, Any]:
    return {
        **_partial_summary(partial),
        "string": version.string,
        "version": version.version,
        "version_id": version.id,
        "prompt_partial_version_id": version.id,
        "version_description": version.description,
        "version_created_at": iso(version.created_at),
    }


def _version_item(version: PartialVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "partial_id": version.partial_id,
        "version": version.version,
        "string": version.string,
        "description": version.description,
        "created_at": iso(version.created_at),
        "object": "partial_version",
    }


def collection_object(collection: Collection) -> dict[str, Any]:
    return {
        "id": collection.id,
        "slug": collection.slug,
        "name": collection.name,
        "workspace_id": collection.workspace_id,
        "parent_collection_id": collection.parent_collection_id,
        "is_default": int(collection.is_default),
        "created_at": iso(collection.created_at),
        "last_updated_at": iso(collection.updated_at),
        "object": "collection",
    }


def partials_router(state: CatalogState) -> APIRouter:
    """The ``/v1/prompts/partials`` routes (mount before ``/v1/prompts/{id}``)."""
    router = APIRouter(prefix="/v1/prompts/partials", tags=["partials"], route_class=CatalogRoute)

    @router.post("")
    async def create_partial(body: PartialBody) -> Response:
        """Save a partial (version 1, published)."""
        if body.string is None:
            raise InvalidInput("Invalid request body", ["path: string, message: a partial needs a string"])
        partial, version = await state.partials.create(
            body.name or "",
            body.string,
            workspace_id=body.workspace_id,
            collection_id=body.collection_id,
            description=body.version_description or body.description,
        )
        await state.prompts_changed(partial.id)
        return CatalogJSONResponse(
            {"id": partial.id, "slug": partial.slug, "version_id": version.id, "object": "partial"}
        )

    @router.get("")
    async def list_partials(
        collection_id: Annotated[str | None, Query()] = None,
        workspace_id: Annotated[str | None, Query()] = None,
    ) -> Response:
        """Active partials, by name."""
        partials = await state.partials.list(collection_id=collection_id, workspace_id=workspace_id)
        return listing([_partial_summary(partial) for partial in partials])

    @router.get("/{reference}")
    async def retrieve_partial(reference: str) -> Response:
        """A partial with its published version (or ``key@N``, ``key@latest``)."""
        parsed = parse_reference(reference)
        partial, version = await state.partials.version(parsed.key, parsed)
        return CatalogJSONResponse(_partial_object(partial, version))

    @router.put("/{key}")
    async def update_partial(key: str, body: PartialBody) -> Response:
        """Rename, archive or restore a partial; a new ``string`` adds a version (publish it with
        ``makeDefault``)."""
        partial, version = await state.partials.update(
            key,
            name=body.name,
            string=body.string,
            description=body.version_description or body.description,
            status=body.status,
        )
        await state.prompts_changed(partial.id)
        return CatalogJSONResponse(_partial_object(partial, version))

    @router.delete("/{key}")
    async def delete_partial(key: str) -> Response:
        """Archive a partial: templates that include it no longer find it."""
        await state.partials.delete(key)
        await state.prompts_changed(key)
        return CatalogJSONResponse({})

    @router.get("/{key}/versions")
    async def partial_versions(key: str) -> Response:
        """Every version, newest first."""
        return listing([_version_item(version) for version in await state.partials.versions(key)])

    @router.put("/{key}/makeDefault")
    async def publish_partial(key: str, body: VersionBody) -> Response:
        """Publish a version: every template including ``{{>key}}`` now gets it."""
        partial = await state.partials.make_default(key, body.version)
        await state.prompts_changed(partial.id)
        return CatalogJSONResponse(_partial_summary(partial))

    return router


def collections_router(state: CatalogState) -> APIRouter:
    """The ``/v1/collections`` routes."""
    router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=CatalogRoute)

    @router.get("")
    async def list_collections(
        workspace_id: Annotated[str | None, Query()] = None,
        search: Annotated[str | None, Query()] = None,
    ) -> Response:
        """The workspace's collections, its default one first (made on first use)."""
        collections = await state.collections.list(workspace_id=workspace_id or None, search=search)
        return listing([collection_object(collection) for collection in collections])

    @router.post("")
    async def create_collection(body: CollectionBody) -> Response:
        """A new collection."""
        if not body.name.strip():
            raise InvalidInput("Invalid request body", ["path: name, message: a collection needs a name"])
        collection = await state.collections.create(
            body.name, workspace_id=body.workspace_id, parent_collection_id=body.parent_collection_id
        )
        return CatalogJSONResponse({"id": collection.id, "slug": collection.slug, "object": "collection"})

    @router.get("/{key}")
    async def retrieve_collection(key: str) -> Response:
        """A collection by id or slug."""
        return CatalogJSONResponse(collection_object(await state.collections.resolve(key)))

    return router
