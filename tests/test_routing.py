"""Strategies and retries over real HTTP (reference/portkey.md §7)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(gateway: GatewayServer, config: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        headers={"x-portkey-config": orjson.dumps(config).decode(), **headers},
        json=CHAT,
        timeout=10,
    )


def target(model: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": "k", "override_params": {"model": model}, **extra}


def test_fallback_moves_on_after_a_failure(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(status=503, json={"error": {"message": "down"}}))
    r = post(gateway, {"strategy": {"mode": "fallback"}, "targets": [target("first"), target("second")]})
    assert r.status_code == 200
    assert r.json()["model"] == "second"
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_fallback_only_on_listed_status_codes(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(status=400, json={"error": {"message": "bad"}}))
    config = {
        "strategy": {"mode": "fallback", "on_status_codes": [429]},
        "targets": [target("a"), target("b")],
    }
    r = post(gateway, config)
    assert r.status_code == 400
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    assert len(openai_emulator.requests) == 1


def test_fallback_returns_the_last_targets_answer(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(
        Fault(status=500, json={"error": {"message": "one"}}),
        Fault(status=502, json={"error": {"message": "two"}}),
    )
    r = post(gateway, {"strategy": {"mode": "fallback"}, "targets": [target("a"), target("b")]})
    assert r.status_code == 502 and r.json()["error"]["message"] == "openai error: two"


def test_loadbalance_never_picks_weight_zero(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [target("zero", weight=0), target("one", weight=1)],
    }
    models = {post(gateway, config).json()["model"] for _ in range(10)}
    assert models == {"one"}


def test_conditional_routing_on_metadata(gateway: GatewayServer) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.plan": {"$eq": "paid"}}, "then": "smart"}],
            "default": "cheap",
        },
        "targets": [target("big", name="smart"), target("small", name="cheap")],
    }
    assert post(gateway, config, **{"x-portkey-metadata": '{"plan": "paid"}'}).json()["model"] == "big"
    assert post(gateway, config, **{"x-portkey-metadata": '{"plan": "free"}'}).json()["model"] == "small"


def test_retries_on_retriable_status(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(status=429, json={"error": {"message": "x"}}), Fault(status=500, json={}))
    r = post(gateway, target("m", retry={"attempts": 3}))
    assert r.status_code == 200
    assert r.headers["x-portkey-retry-attempt-count"] == "2"
    assert len(openai_emulator.requests) == 3


def test_retries_exhausted_report_minus_one(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(*[Fault(status=503, json={"error": {"message": "x"}}) for _ in range(3)])
    r = post(gateway, target("m", retry={"attempts": 2}))
    assert r.status_code == 503
    assert r.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(openai_emulator.requests) == 3


def test_no_retry_on_other_status(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(status=400, json={"error": {"message": "x"}}))
    r = post(gateway, target("m", retry={"attempts": 3}))
    assert r.status_code == 400 and len(openai_emulator.requests) == 1


def test_conditional_routing_reads_utf8_metadata(gateway: GatewayServer) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.plan": "prémium"}, "then": "smart"}],
        },
        "targets": [target("big", name="smart")],
    }
    r = httpx.post(
        gateway.v1 + "/chat/completions",
        headers={
            "x-portkey-config": orjson.dumps(config),
            "x-portkey-metadata": '{"plan": "prémium"}'.encode(),
        },
        json=CHAT,
    )
    assert r.status_code == 200 and r.json()["model"] == "big"
