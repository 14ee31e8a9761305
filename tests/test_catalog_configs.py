"""Saved configs: the repository on SQLite and PostgreSQL, the resolver the data plane reads, and
``/v1/configs`` driven by the portkey-ai SDK and by plain HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from portkey_ai import Portkey
from sqlalchemy import select, update

from tests.test_catalog_harness import (
    KINDS,
    VAULT,
    VAULT_KEY,
    CatalogServer,
    QueryCounter,
    assert_failure,
    check_provider,
    make_state,
    running_server,
    store_engine,
)
from wayport.catalog import CatalogState, Conflict, InvalidInput, NotFound
from wayport.catalog.configs import ConfigRepository, seal_stored
from wayport.catalog.db import writing
from wayport.security.vault import Vault
from wayport.store import upgrade
from wayport.store.changes import change_probe
from wayport.store.migrate import current_revision, head_revision, include_object_for
from wayport.store.schema import Base, ConfigVersionRow

SLUG = re.compile(r"^pc-[a-z0-9-]+-[0-9a-z]{6}$")
FALLBACK = {
    "strategy": {"mode": "fallback"},
    "targets": [
        {"provider": "openai", "api_key": "sk-test", "override_params": {"model": "gpt-4o"}},
        {
            "provider": "anthropic",
            "api_key": "sk-ant-test",
            "override_params": {"model": "claude-3-5-sonnet"},
        },
    ],
}
SIMPLE = {"virtual_key": "openai-prod", "override_params": {"model": "gpt-4o-mini"}}
# FALLBACK as the API shows it: credentials never leave the store
FALLBACK_SHOWN = {
    **FALLBACK,
    "targets": [{**target, "api_key": "[REDACTED]"} for target in FALLBACK["targets"]],
}


@pytest.fixture(params=KINDS)
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CatalogState]:
    async with store_engine(request.param, tmp_path) as engine:
        catalog = make_state(engine)
        await catalog.start()
        yield catalog


# -- the store ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_migrations_run_twice_and_match_the_schema(kind: str, tmp_path: Path) -> None:
    async with store_engine(kind, tmp_path) as engine:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()

        def diff(sync_connection: Any) -> list[Any]:
            context = MigrationContext.configure(
                sync_connection,
                opts={
                    "compare_type": True,
                    "include_object": include_object_for(sync_connection.dialect.name),
                },
            )
            return list(compare_metadata(context, Base.metadata))

        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []


async def test_create_gives_a_pc_slug_and_version_one(state: CatalogState) -> None:
    saved = await state.configs.create("Support bot", FALLBACK)
    assert SLUG.match(saved.slug) and saved.slug.startswith("pc-support-bot-")
    assert (saved.version, saved.status, saved.is_default) == (1, "active", False)
    assert (await state.configs.get(saved.slug)) == saved
    assert saved.config == FALLBACK


async def test_a_config_given_as_json_text_is_stored_as_an_object(state: CatalogState) -> None:
    saved = await state.configs.create("text", json.dumps(SIMPLE))
    assert saved.config == SIMPLE


async def test_an_invalid_config_is_refused_naming_every_bad_path(state: CatalogState) -> None:
    bad = {
        "strategy": {"mode": "bogus"},
        "retry": {"attempts": 9},
        "targets": [{"provider": "openai"}],
    }
    with pytest.raises(InvalidInput) as caught:
        await state.configs.create("bad", bad)
    assert caught.value.message == "Invalid config passed"
    paths = [
        error.split(",", 1)[0] if error.startswith("path: strategy") else error
        for error in caught.value.errors
    ]
    assert any(error.startswith("path: strategy,mode") for error in caught.value.errors), paths
    assert any(error.startswith("path: retry,attempts") for error in caught.value.errors)
    assert await state.configs.list() == []


async def test_the_data_planes_provider_and_host_checks_apply_on_save(state: CatalogState) -> None:
    config = {"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai"}, {"provider": "nope"}]}
    with pytest.raises(InvalidInput) as caught:
        await state.configs.create("unknown provider", config)
    assert caught.value.errors[0].startswith("path: targets,1,provider")
    with pytest.raises(InvalidInput) as caught:
        await state.configs.create(
            "metadata host", {"provider": "openai", "custom_host": "http://169.254.169.254"}
        )
    assert caught.value.errors[0].startswith("path: custom_host")


async def test_an_update_with_a_config_adds_a_version_and_keeps_the_old_one(state: CatalogState) -> None:
    saved = await state.configs.create("versions", SIMPLE)
    changed = {**SIMPLE, "override_params": {"model": "gpt-4o"}}
    updated = await state.configs.update(saved.slug, config=changed, description="bigger model")
    assert (updated.version, updated.config) == (2, changed)
    assert updated.version_id != saved.version_id
    versions = await state.configs.versions(saved.slug)
    assert [(v.version, v.config, v.description) for v in versions] == [
        (2, changed, "bigger model"),
        (1, SIMPLE, None),
    ]


async def test_a_rename_changes_no_version(state: CatalogState) -> None:
    saved = await state.configs.create("before", SIMPLE)
    renamed = await state.configs.update(saved.slug, name="after")
    assert (renamed.name, renamed.version, renamed.version_id, renamed.slug) == (
        "after",
        1,
        saved.version_id,
        saved.slug,
    )


async def test_an_invalid_update_changes_nothing(state: CatalogState) -> None:
    saved = await state.configs.create("stable", SIMPLE)
    with pytest.raises(InvalidInput):
        await state.configs.update(saved.slug, config={"retry": {"attempts": 99}}, name="renamed")
    assert await state.configs.get(saved.slug) == saved


async def test_concurrent_updates_get_distinct_versions(state: CatalogState) -> None:
    saved = await state.configs.create("busy", SIMPLE)
    models = [f"model-{i}" for i in range(8)]
    results = await asyncio.gather(
        *(
            state.configs.update(saved.slug, config={**SIMPLE, "override_params": {"model": m}})
            for m in models
        )
    )
    assert sorted(r.version for r in results) == list(range(2, 10))
    versions = await state.configs.versions(saved.slug)
    assert [v.version for v in versions] == list(range(9, 0, -1))
    assert {v.config["override_params"]["model"] for v in versions[:-1]} == set(models)


async def test_delete_archives_the_config(state: CatalogState) -> None:
    saved = await state.configs.create("old", SIMPLE)
    await state.configs.delete(saved.slug)
    archived = await state.configs.get(saved.slug)
    assert archived is not None and archived.status == "archived"
    assert await state.configs.list() == []
    assert [c.slug for c in await state.configs.list(include_archived=True)] == [saved.slug]
    assert len(await state.configs.versions(saved.slug)) == 1
    restored = await state.configs.update(saved.slug, status="active")
    assert restored.status == "active"


async def test_one_default_config_per_workspace(state: CatalogState) -> None:
    first = await state.configs.create("first", SIMPLE, is_default=True, workspace_id="ws-1")
    other = await state.configs.create("other workspace", SIMPLE, is_default=True, workspace_id="ws-2")
    second = await state.configs.create("second", SIMPLE, is_default=True, workspace_id="ws-1")
    defaults = {c.slug for c in await state.configs.list() if c.is_default}
    assert defaults == {other.slug, second.slug}
    await state.configs.update(first.slug, is_default=True)
    assert {c.slug for c in await state.configs.list(workspace_id="ws-1") if c.is_default} == {first.slug}


async def test_lists_filter_by_workspace(state: CatalogState) -> None:
    a = await state.configs.create("a", SIMPLE, workspace_id="ws-a")
    await state.configs.create("b", SIMPLE, workspace_id="ws-b")
    assert [c.slug for c in await state.configs.list(workspace_id="ws-a")] == [a.slug]
    assert len(await state.configs.list()) == 2


async def test_unknown_slugs_are_not_found(state: CatalogState) -> None:
    assert await state.configs.get("pc-missing-000000") is None
    for call in (
        state.configs.update("pc-missing-000000", name="x"),
        state.configs.update("pc-missing-000000", config=SIMPLE),
        state.configs.delete("pc-missing-000000"),
        state.configs.versions("pc-missing-000000"),
    ):
        with pytest.raises(NotFound):
            await call


async def test_a_config_can_keep_a_slug_of_its_own(state: CatalogState) -> None:
    saved = await state.configs.create("migrated", SIMPLE, slug="pc-support-a1b2c3")
    assert saved.slug == "pc-support-a1b2c3"
    with pytest.raises(Conflict):
        await state.configs.create("again", SIMPLE, slug="pc-support-a1b2c3")
    with pytest.raises(InvalidInput):
        await state.configs.create("bad", SIMPLE, slug="Has Spaces")


async def test_apply_creates_then_versions_only_real_changes(state: CatalogState) -> None:
    saved, changed = await state.configs.apply("pc-from-git", "from git", SIMPLE)
    assert changed and saved.version == 1
    same, changed = await state.configs.apply("pc-from-git", "from git", SIMPLE)
    assert not changed and same == saved
    renamed, changed = await state.configs.apply("pc-from-git", "renamed", SIMPLE)
    assert changed and renamed.version == 1 and renamed.name == "renamed"
    await state.configs.delete("pc-from-git")
    newer, changed = await state.configs.apply("pc-from-git", "renamed", FALLBACK)
    assert changed and (newer.version, newer.status, newer.config) == (2, "active", FALLBACK)
    with pytest.raises(InvalidInput):
        await state.configs.apply("pc-from-git", "renamed", {"retry": {"attempts": 50}})


# -- the resolver -----------------------------------------------------------------------------------


async def test_the_resolver_serves_slugs_from_memory(state: CatalogState) -> None:
    saved = await state.configs.create("hot", FALLBACK)
    await state.resolver.load()
    counter = QueryCounter(state.configs._engine)
    try:
        for _ in range(1000):
            assert state.resolver.resolve(saved.slug) == FALLBACK
            assert state.resolver.resolve("pc-unknown-000000") is None
    finally:
        counter.close()
    assert counter.count == 0


async def test_the_resolver_loads_only_active_configs(state: CatalogState) -> None:
    live = await state.configs.create("live", SIMPLE)
    gone = await state.configs.create("gone", SIMPLE)
    await state.configs.delete(gone.slug)
    await state.resolver.load()
    assert state.resolver.resolve(live.slug) == SIMPLE
    assert state.resolver.resolve(gone.slug) is None
    assert len(state.resolver) == 1


async def test_writes_applied_to_the_resolver_change_what_it_serves(state: CatalogState) -> None:
    saved = await state.configs.create("live", SIMPLE)
    version = state.resolver.version
    state.resolver.apply(saved)
    changed = {**SIMPLE, "override_params": {"model": "o3"}}
    state.resolver.apply(await state.configs.update(saved.slug, config=changed))
    assert state.resolver.resolve(saved.slug) == changed
    state.resolver.apply(await state.configs.delete(saved.slug))
    assert state.resolver.resolve(saved.slug) is None
    assert state.resolver.version == version + 3


async def test_refresh_picks_up_a_change_made_elsewhere(state: CatalogState) -> None:
    saved = await state.configs.create("shared", SIMPLE)
    await state.resolver.load()
    changed = {**SIMPLE, "override_params": {"model": "o3"}}
    await state.configs.update(saved.slug, config=changed)  # another node's write: not applied here
    assert state.resolver.resolve(saved.slug) == SIMPLE
    await state.resolver.refresh(saved.slug)
    assert state.resolver.resolve(saved.slug) == changed
    await state.configs.delete(saved.slug)
    await state.resolver.refresh(saved.slug)
    assert state.resolver.resolve(saved.slug) is None


async def test_a_second_process_sees_writes_through_the_reload_loop(state: CatalogState) -> None:
    other = make_state(state.configs._engine)  # another worker on the same store
    await other.start()
    saved = await state.configs.create("shared", SIMPLE)
    await state.config_changed(saved)
    assert other.resolver.resolve(saved.slug) is None
    task = asyncio.create_task(other.reload_every(0.02, change_probe(state.configs._engine)))
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if other.resolver.resolve(saved.slug) is not None:
                break
    finally:
        task.cancel()
    assert other.resolver.resolve(saved.slug) == SIMPLE


# -- over HTTP ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CatalogServer]:
    with running_server("sqlite", tmp_path_factory.mktemp("catalog-configs")) as running:
        yield running


@pytest.fixture()
def portkey(server: CatalogServer) -> Portkey:
    return Portkey(api_key="k", base_url=server.v1)


def test_the_portkey_sdk_creates_retrieves_lists_updates_and_deletes(portkey: Portkey) -> None:
    created = portkey.configs.create(name="SDK config", config=FALLBACK, is_default=0)
    assert created.object == "config" and SLUG.match(created.slug or "") and created.id and created.version_id

    got = portkey.configs.retrieve(slug=created.slug)
    assert (got.slug, got.name, got.status, got.is_default, got.version_id) == (
        created.slug,
        "SDK config",
        "active",
        0,
        created.version_id,
    )
    assert isinstance(got.config, str) and json.loads(got.config) == FALLBACK_SHOWN

    listed = portkey.configs.list()
    assert listed.object == "list" and listed.total == len(listed.data or [])
    assert created.slug in [item["slug"] for item in listed.data or []]

    updated = portkey.configs.update(slug=created.slug, name="SDK config v2", config=SIMPLE)
    assert updated.object == "config" and updated.version_id and updated.version_id != created.version_id
    again = portkey.configs.retrieve(slug=created.slug)
    assert (again.name, json.loads(again.config or "")) == ("SDK config v2", SIMPLE)

    assert portkey.configs.delete(slug=created.slug) is not None
    assert portkey.configs.retrieve(slug=created.slug).status == "archived"
    assert created.slug not in [item["slug"] for item in portkey.configs.list().data or []]


def test_the_config_field_is_json_text_as_portkeys_guide_uses_it(server: CatalogServer) -> None:
    slug = server.http.post("/v1/configs", json={"name": "guide", "config": FALLBACK}).json()["slug"]
    host, key = server.url, "k"
    # reference/portkey.md, issue 7: this user code must work with only the host changed
    response = requests.get(f"{host}/v1/configs/{slug}", headers={"x-portkey-api-key": key}).json()
    config = json.loads(response["config"])
    config["targets"][0]["override_params"]["model"] = "gpt-4-turbo"
    simple = server.http.post("/v1/configs", json={"name": "guide 2", "config": SIMPLE}).json()["slug"]
    response = requests.get(f"{host}/v1/configs/{simple}", headers={"x-portkey-api-key": key}).json()
    config = json.loads(response["config"])
    config["override_params"]["model"] = "gpt-4-turbo"
    assert config == {**SIMPLE, "override_params": {"model": "gpt-4-turbo"}}


def test_a_config_sent_as_json_text_is_accepted(server: CatalogServer) -> None:
    body = server.http.post("/v1/configs", json={"name": "text", "config": json.dumps(SIMPLE)}).json()
    got = server.http.get(f"/v1/configs/{body['slug']}").json()
    assert json.loads(got["config"]) == SIMPLE


def test_an_invalid_config_is_a_400_listing_the_paths(server: CatalogServer) -> None:
    bad = {"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai"}, {"provider": "nope"}]}
    body = assert_failure(server.http.post("/v1/configs", json={"name": "bad", "config": bad}), 400)
    assert body["message"] == "Invalid config passed"
    assert body["errors"][0].startswith("path: targets,1,provider, message: Invalid provider passed: 'nope'")
    slug = server.http.post("/v1/configs", json={"name": "ok", "config": SIMPLE}).json()["slug"]
    body = assert_failure(
        server.http.put(f"/v1/configs/{slug}", json={"config": {"retry": {"attempts": 9}}}), 400
    )
    assert body["errors"][0].startswith("path: retry,attempts")
    body = assert_failure(server.http.post("/v1/configs", json={"name": "x", "config": "{not json"}), 400)
    assert "valid json" in body["message"]


def test_malformed_bodies_are_a_400_in_the_same_envelope(server: CatalogServer) -> None:
    assert_failure(
        server.http.post("/v1/configs", content=b"{nope", headers={"content-type": "application/json"}), 400
    )
    assert_failure(server.http.post("/v1/configs", json={"name": "no config"}), 400)
    assert_failure(server.http.post("/v1/configs", json={"config": SIMPLE}), 400)
    assert_failure(server.http.post("/v1/configs", json={"name": ["x"], "config": SIMPLE}), 400)


def test_unknown_slugs_are_a_404_in_the_envelope(server: CatalogServer) -> None:
    for response in (
        server.http.get("/v1/configs/pc-nothing-000000"),
        server.http.put("/v1/configs/pc-nothing-000000", json={"name": "x"}),
        server.http.delete("/v1/configs/pc-nothing-000000"),
        server.http.get("/v1/configs/pc-nothing-000000/versions"),
    ):
        body = assert_failure(response, 404)
        assert "pc-nothing-000000" in body["message"]


def test_a_slug_migrated_from_portkey_can_be_kept(server: CatalogServer) -> None:
    body = server.http.post("/v1/configs", json={"name": "kept", "config": SIMPLE, "slug": "pc-kept-zz9zz9"})
    assert body.json()["slug"] == "pc-kept-zz9zz9"
    again = server.http.post("/v1/configs", json={"name": "kept", "config": SIMPLE, "slug": "pc-kept-zz9zz9"})
    assert_failure(again, 409)


def test_versions_are_listed_newest_first(server: CatalogServer) -> None:
    slug = server.http.post("/v1/configs", json={"name": "history", "config": SIMPLE}).json()["slug"]
    second = {**SIMPLE, "override_params": {"model": "o3"}}
    update = server.http.put(f"/v1/configs/{slug}", json={"config": second, "description": "try o3"}).json()
    body = server.http.get(f"/v1/configs/{slug}/versions").json()
    assert body["object"] == "list" and body["total"] == 2
    assert [(v["version"], json.loads(v["config"]), v["description"]) for v in body["data"]] == [
        (2, second, "try o3"),
        (1, SIMPLE, None),
    ]
    assert body["data"][0]["id"] == update["version_id"]


def test_writes_through_the_api_reach_the_resolver_at_once(server: CatalogServer) -> None:
    slug = server.http.post("/v1/configs", json={"name": "hot", "config": SIMPLE}).json()["slug"]
    assert server.state.resolver.resolve(slug) == SIMPLE
    second = {**SIMPLE, "override_params": {"model": "o3"}}
    server.http.put(f"/v1/configs/{slug}", json={"config": second})
    assert server.state.resolver.resolve(slug) == second
    server.http.delete(f"/v1/configs/{slug}")
    assert server.state.resolver.resolve(slug) is None
    server.http.put(f"/v1/configs/{slug}", json={"status": "active"})
    assert server.state.resolver.resolve(slug) == second


def test_the_change_hook_hears_every_write(tmp_path: Path) -> None:
    heard: list[str] = []

    async def hook(slug: str) -> None:
        heard.append(slug)

    with running_server("sqlite", tmp_path, on_config_change=hook) as server:
        slug = server.http.post("/v1/configs", json={"name": "hooked", "config": SIMPLE}).json()["slug"]
        server.http.put(f"/v1/configs/{slug}", json={"name": "renamed"})
        server.http.delete(f"/v1/configs/{slug}")
        server.http.put("/v1/configs/pc-nothing-000000", json={"name": "x"})
    assert heard == [slug, slug, slug]


# -- credentials ------------------------------------------------------------------------------------

CREDENTIALS = {
    "strategy": {"mode": "fallback"},
    "targets": [
        {"provider": "openai", "apiKey": "sk-camel-1234", "override_params": {"model": "gpt-4o"}},
        {
            "provider": "bedrock",
            "aws_access_key_id": "AKIAEXAMPLE0001",
            "aws_secret_access_key": "aws-secret-5678",
            "aws_region": "us-east-1",
        },
        {
            "provider": "vertex-ai",
            "vertex_project_id": "p1",
            "vertex_region": "us-central1",
            "vertex_service_account_json": {"private_key": "-----BEGIN KEY-----x", "client_email": "a@b"},
        },
    ],
}
SECRETS = ("sk-camel-1234", "AKIAEXAMPLE0001", "aws-secret-5678", "BEGIN KEY")


def test_credentials_never_leave_the_store_through_the_api(server: CatalogServer) -> None:
    slug = server.http.post("/v1/configs", json={"name": "creds", "config": CREDENTIALS}).json()["slug"]
    one = server.http.get(f"/v1/configs/{slug}")
    versions = server.http.get(f"/v1/configs/{slug}/versions")
    for answer in (one, versions):
        assert answer.status_code == 200 and not any(secret in answer.text for secret in SECRETS)
    shown = json.loads(one.json()["config"])
    assert shown["targets"][0]["apiKey"] == "[REDACTED]"
    assert shown["targets"][1] == {
        **CREDENTIALS["targets"][1],
        **dict.fromkeys(("aws_access_key_id", "aws_secret_access_key"), "[REDACTED]"),
    }
    assert shown["targets"][2]["vertex_service_account_json"] == "[REDACTED]"
    # what the gateway routes with is the real thing
    stored = server.state.resolver.resolve(slug)
    assert stored is not None and stored["targets"][0]["apiKey"] == "sk-camel-1234"


def test_a_shown_config_written_back_keeps_its_credentials(server: CatalogServer) -> None:
    slug = server.http.post("/v1/configs", json={"name": "rmw", "config": CREDENTIALS}).json()["slug"]
    shown = json.loads(server.http.get(f"/v1/configs/{slug}").json()["config"])
    shown["targets"][0]["override_params"] = {"model": "gpt-4o-mini"}
    shown["targets"][0]["api_key"] = shown["targets"][0].pop("apiKey")  # either spelling matches
    assert server.http.put(f"/v1/configs/{slug}", json={"config": shown}).status_code == 200
    stored = server.state.resolver.resolve(slug)
    assert stored is not None
    assert stored["targets"][0] == {
        "provider": "openai",
        "api_key": "sk-camel-1234",
        "override_params": {"model": "gpt-4o-mini"},
    }
    assert stored["targets"][1]["aws_secret_access_key"] == "aws-secret-5678"
    assert (
        stored["targets"][2]["vertex_service_account_json"]
        == CREDENTIALS["targets"][2]["vertex_service_account_json"]
    )


def test_a_redacted_credential_with_nothing_to_keep_is_refused_naming_the_place(
    server: CatalogServer,
) -> None:
    hidden = {"provider": "openai", "api_key": "[REDACTED]"}
    created = server.http.post("/v1/configs", json={"name": "new", "config": hidden})
    assert "A credential cannot be kept as sent" in assert_failure(created, 400)["message"]
    assert "path: api_key, message: [REDACTED] stands for the credential stored here" in created.text
    slug = server.http.post("/v1/configs", json={"name": "moved", "config": FALLBACK}).json()["slug"]
    moved = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "anthropic", "api_key": "[REDACTED]"},  # the openai target's place: not its key
            {"provider": "anthropic", "api_key": "[REDACTED]"},
            {"provider": "openai", "api_key": "[REDACTED]"},  # a new place
        ],
    }
    answer = server.http.put(f"/v1/configs/{slug}", json={"config": moved})
    errors = assert_failure(answer, 400)["errors"]
    assert [error.split(",", 3)[:3] for error in errors] == [
        ["path: targets", "0", "api_key"],
        ["path: targets", "2", "api_key"],
    ]
    stored = server.state.resolver.resolve(slug)
    assert stored is not None and stored == FALLBACK  # nothing changed


async def stored_versions(state: CatalogState) -> list[dict[str, Any]]:
    """The configs of every version as they are in the store."""
    async with state.configs.engine.connect() as connection:
        return list((await connection.execute(select(ConfigVersionRow.config))).scalars())


async def test_credentials_are_sealed_in_the_store(state: CatalogState) -> None:
    saved = await state.configs.create("sealed", CREDENTIALS)
    (stored,) = await stored_versions(state)
    text = json.dumps(stored)
    assert not any(secret in text for secret in SECRETS)
    assert set(stored["targets"][0]["apiKey"]) == {"$sealed", "$key"}
    assert stored["targets"][1]["aws_region"] == "us-east-1"  # settings stay as they are
    assert saved.config == CREDENTIALS and (await state.configs.get(saved.slug)) == saved
    assert (await state.configs.versions(saved.slug))[0].config == CREDENTIALS


async def test_older_versions_are_sealed_and_resealed_under_a_new_master_key(
    state: CatalogState, caplog: pytest.LogCaptureFixture
) -> None:
    saved = await state.configs.create("older", FALLBACK)
    async with writing(state.configs.engine) as connection:  # as a version saved before sealing
        await connection.execute(update(ConfigVersionRow).values(config=FALLBACK))
    assert (await state.configs.get(saved.slug)) == saved  # read as written meanwhile
    assert await seal_stored(state.configs.engine, VAULT) == 1
    assert await seal_stored(state.configs.engine, VAULT) == 0
    (stored,) = await stored_versions(state)
    assert "sk-test" not in json.dumps(stored)
    new = Vault(secrets.token_bytes(32), previous=[VAULT_KEY])
    moved = ConfigRepository(state.configs.engine, new, check_provider, lambda url: url)
    assert await seal_stored(state.configs.engine, new) == 1
    (stored,) = await stored_versions(state)
    assert stored["targets"][0]["api_key"]["$key"] == new.key_id
    assert (await moved.get(saved.slug)) == saved
    # a sealed credential belongs to its config: copied into another, it does not open
    other = await state.configs.create("other", SIMPLE)
    async with writing(state.configs.engine) as connection:
        await connection.execute(
            update(ConfigVersionRow).where(ConfigVersionRow.config_id == other.id).values(config=stored)
        )
    # ... and that config is left out (the others are not), while its versions still list
    assert await moved.get(other.slug) is None and (await moved.get(saved.slug)) == saved
    assert "belongs to another row" in caplog.text
    assert (await moved.versions(other.slug))[0].config == stored


async def test_a_credential_sent_as_a_sealed_value_is_refused(state: CatalogState) -> None:
    sealed = {"$sealed": "AAAA", "$key": "k1"}
    with pytest.raises(InvalidInput) as refused:
        await state.configs.create("forged", {"provider": "openai", "api_key": sealed})
    assert refused.value.errors == [
        "path: api_key, message: a credential cannot be a sealed value; send it in clear"
    ]
