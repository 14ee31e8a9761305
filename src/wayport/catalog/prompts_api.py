"""``/v1/prompts``: prompt templates over HTTP, as the portkey-ai SDK's ``prompts`` resource calls
them, plus labels and ``render``. ``/v1/prompts/{id}/completions`` is the gateway's (it runs
:meth:`CatalogState.render_for_completion` through the data plane)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from wayport.catalog.errors import CatalogJSONResponse, CatalogRoute, InvalidInput
from wayport.catalog.ids import iso, parse_reference
from wayport.catalog.partials_api import VersionBody, collections_router, listing, partials_router
from wayport.catalog.prompts import Prompt, PromptVersion
from wayport.catalog.state import CatalogState
from wayport.catalog.templates import TEMPLATE_FIELDS, PromptTemplate

__all__ = ["PromptBody", "prompt_object", "prompts_router"]


class PromptBody(BaseModel):
    """Portkey's create/update body. On update only the fields sent change; template fields add a
    version made from the newest one."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    collection_id: str | None = None
    workspace_id: str | None = None
    string: str | None = None
    parameters: dict[str, Any] | None = None
    model: str | None = None
    provider: str | None = None
    virtual_key: str | None = None
    functions: list[Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    version_description: str | None = None
    template_metadata: dict[str, Any] | None = None
    is_raw_template: bool | int | None = None


class LabelBody(BaseModel):
    """``PUT /v1/prompts/{id}/versions/{version_id}``: ``label_id`` is the label's name."""

    model_config = ConfigDict(extra="allow")

    label_id: str | None = None


# what an explicit null means for a template field
_CLEARED: dict[str, Any] = {"parameters": {}, "template_metadata": {}, "is_raw_template": False}


def _template_changes(body: PromptBody) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in TEMPLATE_FIELDS:
        if name not in body.model_fields_set:
            continue
        value = getattr(body, name)
        if value is None:
            if name == "string":
                raise InvalidInput("Invalid request body", ["path: string, message: may not be null"])
            value = _CLEARED.get(name)
        changes[name] = bool(value) if name == "is_raw_template" else value
    return changes


def _labels_of(prompt: Prompt, version: PromptVersion) -> list[str]:
    return sorted(label for label, number in prompt.labels.items() if number == version.version)


def prompt_object(prompt: Prompt, version: PromptVersion) -> dict[str, Any]:
    """The flat object of ``GET /v1/prompts/{id}`` (and of one version)."""
    labels = _labels_of(prompt, version)
    return {
        "id": prompt.id,
        "slug": prompt.slug,
        "name": prompt.name,
        "collection_id": prompt.collection_id,
        "workspace_id": prompt.workspace_id,
        **version.template.as_dict(),
        "prompt_version": version.version,
        "prompt_version_id": version.id,
        "prompt_version_status": "active",
        "prompt_version_description": version.description,
        "prompt_version_label_id": labels[0] if labels else None,
        "prompt_version_labels": labels,
        "default_version": prompt.default_version,
        "latest_version": prompt.current_version,
        "labels": prompt.labels,
        "status": prompt.status,
        "created_at": iso(prompt.created_at),
        "last_updated_at": iso(prompt.updated_at),
        "object": "prompt",
    }


def _version_item(prompt: Prompt, version: PromptVersion) -> dict[str, Any]:
    labels = _labels_of(prompt, version)
    return {
        "id": version.id,
        "prompt_id": prompt.id,
        "prompt_template": version.template.as_dict(),
        "prompt_version": version.version,
        "prompt_description": version.description,
        "label_id": labels[0] if labels else None,
        "labels": labels,
        "is_default": version.version == prompt.default_version,
        "created_at": iso(version.created_at),
        "status": "active",
        "object": "prompt",
    }


def _summary(prompt: Prompt, model: str | None) -> dict[str, Any]:
    return {
        "id": prompt.id,
        "slug": prompt.slug,
        "name": prompt.name,
        "collection_id": prompt.collection_id,
        "workspace_id": prompt.workspace_id,
        "model": model,
        "status": prompt.status,
        "default_version": prompt.default_version,
        "latest_version": prompt.current_version,
        "created_at": iso(prompt.created_at),
        "last_updated_at": iso(prompt.updated_at),
        "object": "prompt",
    }


def prompts_router(state: CatalogState) -> APIRouter:
    """``/v1/prompts`` (with ``/v1/prompts/partials``, mounted first) and ``/v1/collections``."""
    router = APIRouter(route_class=CatalogRoute)
    router.include_router(partials_router(state))
    router.include_router(collections_router(state))
    prompts = APIRouter(prefix="/v1/prompts", tags=["prompts"], route_class=CatalogRoute)

    @prompts.post("")
    async def create_prompt(body: PromptBody) -> Response:
        """Save a prompt; its first version is published."""
        if body.string is None:
            raise InvalidInput(
                "Invalid request body", ["path: string, message: a template string is required"]
            )
        template = PromptTemplate(string=body.string).with_changes(_template_changes(body))
        prompt, version = await state.prompts.create(
            body.name or "",
            template,
            collection_id=body.collection_id,
            workspace_id=body.workspace_id,
            description=body.version_description,
        )
        await state.prompts_changed(prompt.id)
        payload = {"id": prompt.id, "slug": prompt.slug, "version_id": version.id, "object": "prompt"}
        return CatalogJSONResponse(payload)

    @prompts.get("")
    async def list_prompts(
        collection_id: Annotated[str | None, Query()] = None,
        workspace_id: Annotated[str | None, Query()] = None,
        search: Annotated[str | None, Query()] = None,
        current_page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """One page of active prompts, newest first; ``total`` counts them all."""
        rows, total = await state.prompts.list(
            collection_id=collection_id,
            workspace_id=workspace_id,
            search=search,
            page=current_page,
            page_size=page_size,
        )
        data = [_summary(prompt, model) for prompt, model in rows]
        return CatalogJSONResponse({"object": "list", "total": total, "data": data})

    @prompts.get("/{reference}")
    async def retrieve_prompt(reference: str) -> Response:
        """A prompt with its published version (or the one ``@N``, ``@latest``, ``@label`` selects)."""
        parsed = parse_reference(reference)
        prompt, version = await state.prompts.version(parsed.key, parsed)
        return CatalogJSONResponse(prompt_object(prompt, version))

    @prompts.put("/{key}")
    async def update_prompt(key: str, body: PromptBody) -> Response:
        """Rename or move a prompt, or save a new version (not published: see ``makeDefault``)."""
        prompt, version = await state.prompts.update(
            key,
            _template_changes(body),
            name=body.name,
            collection_id=body.collection_id,
            description=body.version_description,
        )
        await state.prompts_changed(prompt.id)
        payload = {
            "id": prompt.id,
            "slug": prompt.slug,
            "version_id": version.id,
            "prompt_version": version.version,
            "object": "prompt",
        }
        return CatalogJSONResponse(payload)

    @prompts.delete("/{key}")
    async def delete_prompt(key: str) -> Response:
        """Archive a prompt: it no longer renders."""
        prompt = await state.prompts.delete(key)
        await state.prompts_changed(prompt.id)
        return CatalogJSONResponse({})

    @prompts.get("/{key}/versions")
    async def prompt_versions(key: str) -> Response:
        """Every version, newest first."""
        prompt, versions = await state.prompts.versions(key)
        return listing([_version_item(prompt, version) for version in versions])

    @prompts.get("/{key}/versions/{version_id}")
    async def retrieve_prompt_version(key: str, version_id: str) -> Response:
        """One version, by its id or its number."""
        prompt, version = await state.prompts.version_by_id(key, version_id)
        return CatalogJSONResponse(prompt_object(prompt, version))

    @prompts.put("/{key}/versions/{version_id}")
    async def label_prompt_version(key: str, version_id: str, body: LabelBody) -> Response:
        """Put the label ``label_id`` on this version (moving it from another)."""
        if not body.label_id:
            raise InvalidInput("Invalid request body", ["path: label_id, message: a label is required"])
        _, version = await state.prompts.version_by_id(key, version_id)
        prompt = await state.prompts.set_label(key, body.label_id, version.version)
        await state.prompts_changed(prompt.id)
        return CatalogJSONResponse(_version_item(prompt, version))

    @prompts.put("/{key}/makeDefault")
    async def publish_prompt(key: str, body: VersionBody) -> Response:
        """Publish a version: a bare reference to the prompt now renders it."""
        prompt = await state.prompts.make_default(key, body.version)
        await state.prompts_changed(prompt.id)
        payload = {
            "id": prompt.id,
            "slug": prompt.slug,
            "default_version": prompt.default_version,
            "latest_version": prompt.current_version,
            "labels": prompt.labels,
            "object": "prompt",
        }
        return CatalogJSONResponse(payload)

    @prompts.get("/{key}/labels")
    async def prompt_labels(key: str) -> Response:
        """The labels set on the prompt and the version each points at."""
        prompt = await state.prompts.require(key)
        data = [{"label": label, "version": number} for label, number in sorted(prompt.labels.items())]
        return listing(data)

    @prompts.put("/{key}/labels/{label}")
    async def set_prompt_label(key: str, label: str, body: VersionBody) -> Response:
        """Point ``label`` at a version: a rollout, or a rollback."""
        prompt = await state.prompts.set_label(key, label, body.version)
        await state.prompts_changed(prompt.id)
        return CatalogJSONResponse({"id": prompt.id, "labels": prompt.labels, "object": "prompt"})

    @prompts.delete("/{key}/labels/{label}")
    async def remove_prompt_label(key: str, label: str) -> Response:
        """Take a label off: references through it stop resolving."""
        prompt = await state.prompts.remove_label(key, label)
        await state.prompts_changed(prompt.id)
        return CatalogJSONResponse({"id": prompt.id, "labels": prompt.labels, "object": "prompt"})

    @prompts.post("/{reference}/render")
    async def render_prompt(
        reference: str, body: Annotated[dict[str, Any] | None, Body()] = None
    ) -> Response:
        """The request body the prompt makes with ``variables``; other fields override the
        template's model and hyperparameters."""
        data, _ = await state.renderer.render(reference, body or {})
        return CatalogJSONResponse({"success": True, "data": data})

    router.include_router(prompts)
    return router
