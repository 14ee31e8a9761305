"""Virtual keys in the store and in the data plane's in-memory cache, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.test_catalog_harness import KINDS, QueryCounter, check_provider, store_engine
from wayport.control.errors import FieldError
from wayport.security.vault import Vault
from wayport.security.virtual_keys import (
    ARCHIVED,
    SlugTaken,
    UnknownVirtualKey,
    VirtualKeyCache,
    VirtualKeyStore,
)
from wayport.store.schema import VirtualKeyRow

SLUG = re.compile(r"^openai-prod-[a-z0-9]{6}$")


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VirtualKeyStore]:
    async with store_engine(request.param, tmp_path) as engine:
        yield VirtualKeyStore(engine, Vault(secrets.token_bytes(32)), check_provider)


async def test_create_gives_a_slug_from_the_name_and_keeps_the_secret(store: VirtualKeyStore) -> None:
    key = await store.create("OpenAI prod", "openai", {"api_key": "sk-1"}, note="team a")
    assert SLUG.match(key.slug)
    again = await store.get(key.slug)
    assert again is not None
    assert (again.name, again.provider, again.note, again.status) == (
        "OpenAI prod",
        "openai",
        "team a",
        "active",
    )
    assert again.secret["api_key"].value == "sk-1"
    assert "sk-1" not in repr(again)


async def test_get_without_reveal_does_not_decrypt(store: VirtualKeyStore) -> None:
    key = await store.create("a", "openai", {"api_key": "sk-1"})
    hidden = await store.get(key.slug, reveal=False)
    assert hidden is not None and hidden.secret == {}


async def test_settings_and_aws_credentials_are_kept_apart(store: VirtualKeyStore) -> None:
    key = await store.create(
        "bedrock",
        "bedrock",
        {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr3t"},
        settings={"aws_region": "eu-west-1"},
    )
    again = await store.get(key.slug)
    assert again is not None
    assert again.settings == {"aws_region": "eu-west-1"}
    assert {name: s.value for name, s in again.secret.items()} == {
        "aws_access_key_id": "AKIA1",
        "aws_secret_access_key": "s3cr3t",
    }


async def test_an_unknown_provider_is_refused_naming_the_field(store: VirtualKeyStore) -> None:
    with pytest.raises(FieldError) as caught:
        await store.create("x", "not-a-provider", {"api_key": "sk"})
    assert caught.value.field == "provider"


async def test_an_unknown_credential_or_setting_name_is_refused(store: VirtualKeyStore) -> None:
    with pytest.raises(FieldError, match="password"):
        await store.create("x", "openai", {"password": "sk"})
    with pytest.raises(FieldError, match="colour"):
        await store.create("x", "openai", {"api_key": "sk"}, settings={"colour": "red"})


async def test_a_given_slug_is_kept_and_never_reused(store: VirtualKeyStore) -> None:
    key = await store.create("x", "openai", {"api_key": "sk"}, slug="my-openai")
    assert key.slug == "my-openai"
    await store.archive("my-openai")
    with pytest.raises(SlugTaken):
        await store.create("y", "openai", {"api_key": "sk"}, slug="my-openai")


async def test_update_merges_credentials_and_settings(store: VirtualKeyStore) -> None:
    key = await store.create(
        "azure",
        "azure-openai",
        {"api_key": "old"},
        settings={"resource_name": "res", "api_version": "2024-02-01"},
        usage_limits={"credit_limit": 10},
    )
    await store.update(
        key.slug,
        name="azure 2",
        secret={"api_key": "new"},
        settings={"api_version": None, "deployment_id": "gpt4"},
        usage_limits=None,
    )
    again = await store.get(key.slug)
    assert again is not None
    assert again.name == "azure 2"
    assert again.secret["api_key"].value == "new"
    assert again.settings == {"resource_name": "res", "deployment_id": "gpt4"}
    assert again.usage_limits is None
    assert again.updated_at > key.updated_at


async def test_rotate_secret_replaces_all_credentials(store: VirtualKeyStore) -> None:
    key = await store.create("aws", "bedrock", {"aws_access_key_id": "A", "aws_secret_access_key": "B"})
    await store.rotate_secret(key.slug, {"aws_access_key_id": "C", "aws_secret_access_key": "D"})
    again = await store.get(key.slug)
    assert again is not None
    assert {name: s.value for name, s in again.secret.items()} == {
        "aws_access_key_id": "C",
        "aws_secret_access_key": "D",
    }


async def test_archive_hides_from_lists_and_stops_writes(store: VirtualKeyStore) -> None:
    key = await store.create("x", "openai", {"api_key": "sk"})
    archived = await store.archive(key.slug)
    assert archived.status == ARCHIVED
    assert await store.list() == []
    assert [k.slug for k in await store.list(include_archived=True)] == [key.slug]
    with pytest.raises(UnknownVirtualKey):
        await store.update(key.slug, name="again")
    with pytest.raises(UnknownVirtualKey):
        await store.archive("no-such-key")


async def test_list_filters_by_workspace_with_none_as_default(store: VirtualKeyStore) -> None:
    legacy = await store.create("legacy", "openai", {"api_key": "sk"})
    default = await store.create("default", "openai", {"api_key": "sk"}, workspace_id="default")
    team = await store.create("team", "openai", {"api_key": "sk"}, workspace_id="ws-team")
    assert {k.slug for k in await store.list(workspace_id="default")} == {legacy.slug, default.slug}
    assert [k.slug for k in await store.list(workspace_id="ws-team")] == [team.slug]
    assert len(await store.list()) == 3
    assert all(k.secret == {} for k in await store.list())


# -- the cache ----------------------------------------------------------------------------------------


async def test_the_cache_answers_without_touching_the_database(store: VirtualKeyStore) -> None:
    key = await store.create("x", "openai", {"api_key": "sk"})
    cache = VirtualKeyCache(store)
    await cache.load()
    counter = QueryCounter(store.engine)
    try:
        for _ in range(100):
            found = cache.get(key.slug)
            assert found is not None and found.secret["api_key"].value == "sk"
        assert cache.get("unknown") is None
        assert counter.count == 0
    finally:
        counter.close()


async def test_a_refresh_sees_another_stores_changes(store: VirtualKeyStore) -> None:
    # another node: its own store object (and vault instance) over the same database and key
    other = VirtualKeyStore(store.engine, store.vault, check_provider)
    first = await store.create("first", "openai", {"api_key": "sk-1"})
    cache = VirtualKeyCache(store)
    await cache.load()

    second = await other.create("second", "openai", {"api_key": "sk-2"})
    await other.rotate_secret(first.slug, {"api_key": "sk-1b"})
    assert cache.get(second.slug) is None
    assert await cache.refresh() == 2
    found = cache.get(first.slug)
    assert found is not None and found.secret["api_key"].value == "sk-1b"
    assert cache.get(second.slug) is not None

    await other.archive(second.slug)
    await cache.refresh()
    assert cache.get(second.slug) is None
    assert len(cache) == 1


async def test_a_refresh_with_nothing_new_changes_nothing(store: VirtualKeyStore) -> None:
    await store.create("x", "openai", {"api_key": "sk"})
    cache = VirtualKeyCache(store)
    await cache.load()
    assert await cache.refresh() == 0


async def test_a_change_committed_late_with_an_older_timestamp_is_still_seen(store: VirtualKeyStore) -> None:
    first = await store.create("first", "openai", {"api_key": "sk-1"})
    cache = VirtualKeyCache(store, overlap=timedelta(seconds=5))
    await cache.load()
    second = await store.create("second", "openai", {"api_key": "sk-2"})
    # a writer whose transaction stamped its row a second before the newest one the cache saw
    async with store.engine.begin() as connection:
        await connection.execute(
            update(VirtualKeyRow)
            .where(VirtualKeyRow.id == second.id)
            .values(updated_at=first.updated_at - timedelta(seconds=1))
        )
    await cache.refresh()
    assert cache.get(second.slug) is not None
