"""``/v1/virtual-keys`` on a small FastAPI app: Portkey's shapes, 400s naming fields, no secret in any
answer, workspace isolation, and the change callback the audit log hangs on."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.test_catalog_harness import KINDS, check_provider, store_engine
from wayport.control.errors import ControlJSONResponse, install_error_handlers
from wayport.control.virtual_keys_api import virtual_keys_router
from wayport.security.guard import set_principal
from wayport.security.roles import Principal, Role
from wayport.security.vault import Vault
from wayport.security.virtual_keys import VirtualKeyCache, VirtualKeyStore

SECRETS = (
    "sk-live-aaaaaaaaaaaaaaaaaaaa",
    "AKIAZZZZZZZZZZZZ",
    "aws-secret-bbbbbbbbbbbbbbbbbb",
    "sk-rotated-cccccccccc",
)
PRINCIPALS = {
    "org": Principal.for_key("k-org", "org admin", Role.ADMIN, None),
    "team": Principal.for_key("k-team", "team manager", Role.MANAGER, "ws-team"),
    "other": Principal.for_key("k-other", "other manager", Role.MANAGER, "ws-other"),
    "viewer": Principal.for_key("k-view", "team viewer", Role.VIEWER, "ws-team"),
}


class AsPrincipal:
    """Sets the principal named by the ``x-test-as`` header, as the gateway's auth would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = dict(scope["headers"]).get(b"x-test-as")
            if name is not None:
                set_principal(scope, PRINCIPALS[name.decode()])
        await self.app(scope, receive, send)


@dataclass
class Api:
    client: httpx.AsyncClient
    store: VirtualKeyStore
    cache: VirtualKeyCache
    changes: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def call(self, method: str, path: str, as_: str = "org", **kwargs: Any) -> httpx.Response:
        headers = {"x-test-as": as_, **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        self.bodies.append(response.content)
        return response


@pytest.fixture(params=KINDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with store_engine(request.param, tmp_path) as engine:
        store = VirtualKeyStore(engine, Vault(secrets.token_bytes(32)), check_provider)
        cache = VirtualKeyCache(store)
        await cache.load()
        changes: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = []

        async def on_change(
            request: Request,
            action: str,
            slug: str,
            before: dict[str, Any] | None,
            after: dict[str, Any] | None,
        ) -> None:
            changes.append((action, slug, before, after))

        app = FastAPI(default_response_class=ControlJSONResponse)
        install_error_handlers(app)
        app.include_router(virtual_keys_router(store, cache, on_change))
        transport = httpx.ASGITransport(app=AsPrincipal(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://wayport") as client:
            result = Api(client, store, cache, changes)
            yield result
        # not one answer of the test, errors included, carried a credential
        for body in result.bodies:
            for secret in SECRETS:
                assert secret.encode() not in body
        for change in changes:
            for secret in SECRETS:
                assert secret not in repr(change)


async def _create(api: Api, as_: str = "org", **body: Any) -> dict[str, Any]:
    payload = {"name": "OpenAI prod", "provider": "openai", "key": SECRETS[0], **body}
    response = await api.call("POST", "/v1/virtual-keys", as_, json=payload)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_create_answers_id_slug_and_object(api: Api) -> None:
    created = await _create(api, note="for the bot")
    assert created["object"] == "virtual-key"
    assert created["slug"].startswith("openai-prod-") and created["id"]
    assert api.cache.get(created["slug"]) is not None  # this node serves it at once
    assert api.changes[0][0] == "create" and api.changes[0][2] is None


async def test_retrieve_shows_settings_but_no_credential(api: Api) -> None:
    created = await _create(
        api,
        name="azure",
        provider="azure-openai",
        resourceName="my-res",
        deploymentName="gpt4o",
        apiVersion="2024-06-01",
        usage_limits={"credit_limit": 10, "periodic_reset": "monthly"},
        rate_limits=[{"type": "requests", "unit": "rpm", "value": 60}],
    )
    response = await api.call("GET", f"/v1/virtual-keys/{created['slug']}")
    assert response.status_code == 200
    body = response.json()
    assert body["ai_provider_name"] == "azure-openai" and body["status"] == "active"
    assert body["model_config"] == {
        "resourceName": "my-res",
        "deploymentName": "gpt4o",
        "apiVersion": "2024-06-01",
    }
    assert body["usage_limits"]["credit_limit"] == 10 and body["rate_limits"][0]["value"] == 60
    assert not {"key", "masked_api_key", "secret", "api_key"} & set(body)
    cached = api.cache.get(created["slug"])
    assert cached is not None and cached.settings["deployment_id"] == "gpt4o"


async def test_aws_credentials_are_accepted_under_portkeys_names(api: Api) -> None:
    created = await _create(
        api,
        name="bedrock",
        provider="bedrock",
        key=None,
        awsAccessKeyId=SECRETS[1],
        awsSecretAccessKey=SECRETS[2],
        awsRegion="us-west-2",
    )
    cached = api.cache.get(created["slug"])
    assert cached is not None
    assert cached.secret["aws_secret_access_key"].value == SECRETS[2]
    assert cached.settings == {"aws_region": "us-west-2"}


async def test_list_answers_portkeys_list_shape(api: Api) -> None:
    await _create(api, name="one")
    await _create(api, name="two")
    body = (await api.call("GET", "/v1/virtual-keys")).json()
    assert body["object"] == "list" and body["total"] == 2
    assert [item["name"] for item in body["data"]] == ["two", "one"]


async def test_update_changes_fields_and_rotates_the_key(api: Api) -> None:
    slug = (await _create(api))["slug"]
    response = await api.call("PUT", f"/v1/virtual-keys/{slug}", json={"name": "renamed", "note": "n"})
    assert response.status_code == 200 and response.json()["slug"] == slug
    response = await api.call("PUT", f"/v1/virtual-keys/{slug}", json={"key": SECRETS[3]})
    assert response.status_code == 200
    cached = api.cache.get(slug)
    assert cached is not None and cached.name == "renamed" and cached.secret["api_key"].value == SECRETS[3]
    actions = [
        (action, before and before["name"], after and after["name"])
        for action, _, before, after in api.changes
    ]
    assert actions[1:] == [("update", "OpenAI prod", "renamed"), ("rotate", "renamed", "renamed")]


async def test_delete_archives_and_the_slug_then_answers_404(api: Api) -> None:
    slug = (await _create(api))["slug"]
    response = await api.call("DELETE", f"/v1/virtual-keys/{slug}")
    assert response.status_code == 200 and response.json()["success"] is True
    assert api.cache.get(slug) is None
    assert (await api.call("GET", f"/v1/virtual-keys/{slug}")).status_code == 404
    assert (await api.call("DELETE", f"/v1/virtual-keys/{slug}")).status_code == 404
    assert (await api.call("GET", "/v1/virtual-keys")).json()["total"] == 0
    assert api.changes[-1][0] == "delete" and api.changes[-1][3] is not None
    assert api.changes[-1][3]["status"] == "archived"


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "openai", "key": SECRETS[0]}, "name"),
        ({"name": "x", "key": SECRETS[0]}, "provider"),
        ({"name": "x", "provider": "nope", "key": SECRETS[0]}, "provider"),
        ({"name": "x", "provider": "openai", "key": 42}, "key"),
        ({"name": "x", "provider": "openai", "key": ""}, "key"),
        ({"name": "x", "provider": "openai", "key": SECRETS[0], "colour": "red"}, "colour"),
        ({"name": "x", "provider": "openai", "key": SECRETS[0], "usage_limits": [1]}, "usage_limits"),
        ({"name": "x", "provider": "openai", "key": SECRETS[0], "rate_limits": "fast"}, "rate_limits"),
        (
            {
                "name": "x",
                "provider": "openai",
                "key": SECRETS[0],
                "rate_limits": [{"unit": "rpm", "value": -1}],
            },
            "rate_limits[0].value",
        ),
        ({"name": "x", "provider": "openai", "key": SECRETS[0], "slug": "UPPER CASE"}, "slug"),
        (
            {"name": "x", "provider": "azure-openai", "key": SECRETS[0], "deploymentConfig": [{}]},
            "deploymentConfig",
        ),
    ],
)
async def test_bad_input_answers_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.call("POST", "/v1/virtual-keys", json=body)
    assert response.status_code == 400
    failure = response.json()
    assert failure["status"] == "failure"
    assert failure["message"].startswith(field)


async def test_a_body_that_is_not_an_object_answers_400(api: Api) -> None:
    response = await api.call(
        "POST", "/v1/virtual-keys", content=b"[1]", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["status"] == "failure"


async def test_a_taken_slug_answers_409(api: Api) -> None:
    await _create(api, slug="mine")
    response = await api.call(
        "POST", "/v1/virtual-keys", json={"name": "x", "provider": "openai", "slug": "mine"}
    )
    assert response.status_code == 409


# -- scopes and workspaces --------------------------------------------------------------------------------


async def test_a_workspace_key_creates_in_its_workspace_and_sees_only_it(api: Api) -> None:
    mine = await _create(api, "team", name="mine")
    await _create(api, "other", name="theirs")
    org_default = await _create(api, "org", name="org default")
    assert api.cache.get(mine["slug"]) is not None
    listed = (await api.call("GET", "/v1/virtual-keys", "team")).json()
    assert [item["name"] for item in listed["data"]] == ["mine"]
    assert listed["data"][0]["workspace_id"] == "ws-team"
    # asking for another workspace does not widen a workspace key's view
    other_view = (await api.call("GET", "/v1/virtual-keys?workspace_id=ws-other", "team")).json()
    assert [item["name"] for item in other_view["data"]] == ["mine"]
    for method, kwargs in (("GET", {}), ("PUT", {"json": {"name": "stolen"}}), ("DELETE", {})):
        response = await api.call(method, f"/v1/virtual-keys/{org_default['slug']}", "team", **kwargs)
        assert response.status_code == 404, method
        assert response.json()["message"] == f"Virtual key not found: {org_default['slug']}"


async def test_an_org_key_sees_all_or_filters_by_workspace(api: Api) -> None:
    await _create(api, "team", name="mine")
    await _create(api, "org", name="placed", workspace_id="ws-other")
    assert (await api.call("GET", "/v1/virtual-keys")).json()["total"] == 2
    only = (await api.call("GET", "/v1/virtual-keys?workspace_id=ws-other")).json()
    assert [item["name"] for item in only["data"]] == ["placed"]


async def test_a_workspace_key_cannot_create_in_another_workspace(api: Api) -> None:
    payload = {"name": "x", "provider": "openai", "key": SECRETS[0], "workspace_id": "ws-other"}
    response = await api.call("POST", "/v1/virtual-keys", "team", json=payload)
    assert response.status_code == 403


async def test_a_viewer_reads_but_cannot_write(api: Api) -> None:
    slug = (await _create(api, "team"))["slug"]
    assert (await api.call("GET", f"/v1/virtual-keys/{slug}", "viewer")).status_code == 200
    response = await api.call("DELETE", f"/v1/virtual-keys/{slug}", "viewer")
    assert response.status_code == 403 and "virtual_keys.write" in response.json()["message"]
