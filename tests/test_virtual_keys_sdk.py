"""The portkey-ai SDK's ``virtual_keys`` resource against the full gateway, and a completion through
a virtual key: the provider receives the stored credential, the client never sends it."""

from __future__ import annotations

import portkey_ai
import pytest
from portkey_ai.api_resources.exceptions import APIStatusError

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator

STORED = "sk-stored-in-the-vault-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]


def _client(gateway: GatewayServer) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(base_url=gateway.v1, api_key="unused-auth-is-off")


def test_the_sdk_creates_lists_retrieves_updates_and_deletes(gateway: GatewayServer) -> None:
    portkey = _client(gateway)
    created = portkey.virtual_keys.create(name="SDK key", provider="openai", key=STORED, note="from the sdk")
    assert created.object == "virtual-key" and created.slug and created.id

    listed = portkey.virtual_keys.list()
    assert listed.object == "list"
    assert created.slug in [item["slug"] for item in listed.data or []]

    shown = portkey.virtual_keys.retrieve(slug=created.slug)
    assert shown.name == "SDK key" and shown.note == "from the sdk"
    assert STORED not in str(shown.model_dump())

    updated = portkey.virtual_keys.update(slug=created.slug, name="renamed", note="changed")
    assert updated.slug == created.slug
    assert portkey.virtual_keys.retrieve(slug=created.slug).name == "renamed"

    portkey.virtual_keys.delete(slug=created.slug)
    assert created.slug not in [item["slug"] for item in portkey.virtual_keys.list().data or []]
    with pytest.raises(APIStatusError) as caught:
        portkey.virtual_keys.retrieve(slug=created.slug)
    assert caught.value.status_code == 404


def test_a_completion_through_a_virtual_key_uses_the_stored_secret(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    portkey = _client(gateway)
    slug = portkey.virtual_keys.create(name="for chat", provider="openai", key=STORED).slug
    client = portkey_ai.Portkey(base_url=gateway.v1, api_key="unused-auth-is-off", virtual_key=slug)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content
    assert openai_emulator.last.headers["Authorization"] == f"Bearer {STORED}"
