"""Saved configs and prompt templates served by the gateway itself: a slug in x-portkey-config
routes like the saved JSON, and a saved prompt runs through the gateway."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import orjson
from portkey_ai import Portkey

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
MESSAGES = json.dumps(
    [{"role": "system", "content": "You know films."}, {"role": "user", "content": "Who directed {{movie}}?"}]
)


def test_a_saved_config_routes_by_its_slug(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    portkey = Portkey(api_key="unused", base_url=gateway.v1)
    config = {"provider": "openai", "api_key": "sk-saved", "override_params": {"model": "gpt-4o-mini"}}
    created = portkey.configs.create(name=f"bot {uuid.uuid4().hex[:6]}", config=config)
    r = httpx.post(gateway.v1 + "/chat/completions", headers={"x-portkey-config": created.slug}, json=CHAT)
    assert r.status_code == 200 and r.json()["model"] == "gpt-4o-mini"
    assert openai_emulator.last.headers["Authorization"] == "Bearer sk-saved"
    # The documented user code: the config comes back as a JSON string.
    fetched = httpx.get(f"{gateway.v1}/configs/{created.slug}").json()
    assert json.loads(fetched["config"])["override_params"]["model"] == "gpt-4o-mini"
    # An update is used by the next request, without a restart.
    portkey.configs.update(slug=created.slug, config={**config, "override_params": {"model": "gpt-4.1"}})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = httpx.post(
            gateway.v1 + "/chat/completions", headers={"x-portkey-config": created.slug}, json=CHAT
        )
        if r.json()["model"] == "gpt-4.1":
            break
        time.sleep(0.05)
    assert r.json()["model"] == "gpt-4.1"


def test_an_unknown_slug_is_a_400_naming_it(gateway: GatewayServer) -> None:
    r = httpx.post(
        gateway.v1 + "/chat/completions", headers={"x-portkey-config": "pc-nope-123456"}, json=CHAT
    )
    assert r.status_code == 400 and "pc-nope-123456" in r.json()["message"]


def test_a_saved_prompt_runs_through_the_gateway(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    portkey = Portkey(api_key="unused", base_url=gateway.v1, provider="openai", Authorization="sk-prompt")
    collection = [c for c in portkey.collections.list().data if c["is_default"]][0]["id"]
    prompt = portkey.prompts.create(
        name=f"films {uuid.uuid4().hex[:6]}",
        collection_id=collection,
        string=MESSAGES,
        parameters={"max_tokens": 64, "temperature": 0},
        model="gpt-4o",
        template_metadata={"template_type": "chat"},
    )
    completion = portkey.prompts.completions.create(prompt_id=prompt.slug, variables={"movie": "Dune 2"})
    assert completion.choices[0].message.content == "Echo: Who directed Dune 2?"
    sent = openai_emulator.last.json()
    assert sent["messages"][0] == {"role": "system", "content": "You know films."}
    assert sent["model"] == "gpt-4o" and sent["max_tokens"] == 64
    chunks = portkey.prompts.completions.create(
        prompt_id=prompt.slug, variables={"movie": "Alien"}, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Who directed Alien?"


def test_a_missing_variable_is_a_400(gateway: GatewayServer) -> None:
    prompt = httpx.post(
        gateway.v1 + "/prompts", json={"name": f"p {uuid.uuid4().hex[:6]}", "string": "Hi {{name}}"}
    )
    slug = prompt.json()["slug"]
    r = httpx.post(
        f"{gateway.v1}/prompts/{slug}/completions",
        headers={"x-portkey-provider": "openai", "Authorization": "Bearer k"},
        json={"variables": {}},
    )
    assert r.status_code == 400 and "name" in orjson.dumps(r.json()).decode()


def test_the_playground_runs_one_prompt_on_several_models(gateway: GatewayServer) -> None:
    created = httpx.post(
        gateway.v1 + "/prompts",
        json={
            "name": f"play {uuid.uuid4().hex[:6]}",
            "string": MESSAGES,
            "model": "gpt-4o",
            "parameters": {"max_tokens": 32},
            "template_metadata": {"template_type": "chat"},
        },
    ).json()
    r = httpx.post(
        f"{gateway.v1}/prompts/{created['slug']}/playground",
        headers={"x-portkey-provider": "openai", "Authorization": "Bearer sk-play"},
        json={
            "variables": {"movie": "Heat"},
            "runs": [{"model": "gpt-4o-mini"}, {"model": "gpt-4o", "temperature": 0}],
        },
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["model"] for x in results] == ["gpt-4o-mini", "gpt-4o"]
    for result in results:
        assert result["status"] == 200 and result["output"] == "Echo: Who directed Heat?"
        assert result["usage"]["total_tokens"] > 0 and result["latency_ms"] >= 0
        assert result["cost_usd"] is not None and float(result["cost_usd"]) > 0
    bad = httpx.post(f"{gateway.v1}/prompts/{created['slug']}/playground", json={"runs": []})
    assert bad.status_code == 400 and "runs:" in bad.json()["message"]
