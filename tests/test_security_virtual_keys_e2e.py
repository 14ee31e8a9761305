"""Virtual keys end to end: Portkey's fallback and loadbalance configs with ``virtual_key`` targets
through LlamaIndex, and the provider secrets nowhere but in the provider's requests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import wayport
from tests.conftest import emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from tests.security_harness import SecuredGateway, secured

PRIMARY_SECRET = "sk-primary-0123456789abcdefghij"
BACKUP_SECRET = "sk-backup-0123456789abcdefghijk"


@pytest.fixture(scope="module")
def wp(openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredGateway]:
    gateway = secured(emulator_settings(openai_emulator, tmp_path_factory.mktemp("vkeys")))
    with gateway.control(gateway.admin) as client:
        for slug, secret in (("openai-virtual-key", PRIMARY_SECRET), ("openai-backup-key", BACKUP_SECRET)):
            made = client.post(
                "/v1/virtual-keys", json={"name": slug, "slug": slug, "provider": "openai", "key": secret}
            )
            assert made.status_code == 200, made.text
    yield gateway
    gateway.server.stop()


def llm(wp: SecuredGateway, config: dict[str, Any]) -> OpenAI:
    headers = wayport.createHeaders(api_key=wp.admin, config=config)
    return OpenAI(
        model="gpt-4o", api_key="unused", api_base=wp.server.v1, default_headers=headers, max_retries=0
    )


def keys_seen(emulator: OpenAIEmulator) -> list[str]:
    return [r.headers.get("Authorization", "") for r in emulator.requests]


def test_fallback_config_with_virtual_keys(wp: SecuredGateway, openai_emulator: OpenAIEmulator) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"virtual_key": "openai-virtual-key", "override_params": {"model": "gpt-4o"}},
            {"virtual_key": "openai-backup-key", "override_params": {"model": "gpt-4o-mini"}},
        ],
    }
    openai_emulator.inject(Fault(status=500, json={"error": {"message": "primary is down"}}))
    answer = llm(wp, config).chat([ChatMessage(role="user", content="What is your name")])
    assert "What is your name" in str(answer.message.content)
    assert keys_seen(openai_emulator) == [f"Bearer {PRIMARY_SECRET}", f"Bearer {BACKUP_SECRET}"]


def test_loadbalance_config_with_virtual_keys(wp: SecuredGateway, openai_emulator: OpenAIEmulator) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"virtual_key": "openai-virtual-key", "weight": 0.5},
            {"virtual_key": "openai-backup-key", "weight": 0.5},
        ],
    }
    model = llm(wp, config)
    for _ in range(30):
        model.complete("Paul Graham is ")
    seen = set(keys_seen(openai_emulator))
    assert seen == {f"Bearer {PRIMARY_SECRET}", f"Bearer {BACKUP_SECRET}"}


def test_a_virtual_key_header_alone_picks_the_provider(
    wp: SecuredGateway, openai_emulator: OpenAIEmulator
) -> None:
    answer = httpx.post(
        wp.server.v1 + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-portkey-api-key": wp.admin, "x-portkey-virtual-key": "openai-virtual-key"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-portkey-provider"] == "openai"
    unknown = httpx.post(
        wp.server.v1 + "/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"x-portkey-api-key": wp.admin, "x-portkey-virtual-key": "no-such-key"},
    )
    assert unknown.status_code == 400 and "no-such-key" in unknown.json()["message"]


def test_another_workspace_cannot_use_a_virtual_key(wp: SecuredGateway) -> None:
    wp.create_workspace("other")
    _, outsider = wp.create_key("member", workspace="other")
    answer = httpx.post(
        wp.server.v1 + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-portkey-api-key": outsider, "x-portkey-virtual-key": "openai-virtual-key"},
    )
    assert answer.status_code == 400
    assert "not found" in answer.json()["message"]


def test_secrets_appear_in_no_response_log_audit_entry_error_or_database(
    wp: SecuredGateway, openai_emulator: OpenAIEmulator
) -> None:
    headers = {"x-portkey-api-key": wp.admin, "x-portkey-virtual-key": "openai-virtual-key"}
    seen: list[str] = []
    openai_emulator.inject(
        Fault(status=401, json={"error": {"message": f"Incorrect API key {PRIMARY_SECRET}"}})
    )
    for body in (
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ):
        seen.append(httpx.post(wp.server.v1 + "/chat/completions", json=body, headers=headers).text)
    with wp.control(wp.admin) as client:
        client.put("/v1/virtual-keys/openai-backup-key", json={"key": "sk-rotated-0123456789abcdefghij"})
        time.sleep(0.3)  # logs are written in the background
        for path in (
            "/v1/virtual-keys",
            "/v1/virtual-keys/openai-virtual-key",
            "/v1/audit-logs",
            "/v1/logs?page_size=100",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            seen.append(answer.text)
        for log in client.get("/v1/logs").json()["data"]:
            seen.append(json.dumps(client.get(f"/v1/logs/{log['id']}").json()))
    text = "\n".join(seen)
    assert "openai-virtual-key" in text  # the scan does read what it should
    for secret in (PRIMARY_SECRET, BACKUP_SECRET, "sk-rotated-0123456789abcdefghij"):
        assert secret not in text
    data_dir = wp.server.app.settings.data_dir
    stored = b"".join(p.read_bytes() for p in data_dir.glob("wayport.db*"))
    for secret in (PRIMARY_SECRET, BACKUP_SECRET):
        assert secret.encode() not in stored
