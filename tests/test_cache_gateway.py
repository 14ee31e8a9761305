"""The response cache through the gateway: statuses, replay in either shape, refresh, partitions,
errors never cached, and one entry shared by two gateway nodes through Redis."""

from __future__ import annotations

import os
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "cache me"}]}


def cached_config(**cache: Any) -> dict[str, str]:
    config = {"provider": "openai", "api_key": "sk-c", "cache": {"mode": "simple", **cache}}
    return {"x-portkey-config": orjson.dumps(config).decode()}


def unique_chat() -> dict[str, Any]:
    return {**CHAT, "messages": [{"role": "user", "content": f"cache me {uuid.uuid4().hex}"}]}


def post(gateway: GatewayServer, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=10)


def wait_stored(gateway: GatewayServer, count: int) -> None:
    stats = gateway.app.cache.cache.stats
    deadline = time.monotonic() + 5
    while stats.stores < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_miss_then_hit(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    body, headers = unique_chat(), cached_config()
    stores = gateway.app.cache.cache.stats.stores
    first = post(gateway, body, **headers)
    assert first.headers["x-portkey-cache-status"] == "MISS"
    wait_stored(gateway, stores + 1)
    second = post(gateway, body, **headers)
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert second.json() == first.json()
    assert len(openai_emulator.requests) == 1


def test_no_cache_config_is_disabled(gateway: GatewayServer) -> None:
    r = post(gateway, CHAT, **{"x-portkey-provider": "openai", "Authorization": "Bearer k"})
    assert r.headers["x-portkey-cache-status"] == "DISABLED"


def test_non_stream_entry_replays_as_a_stream(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    body, headers = unique_chat(), cached_config()
    stores = gateway.app.cache.cache.stats.stores
    expected = post(gateway, body, **headers).json()["choices"][0]["message"]["content"]
    wait_stored(gateway, stores + 1)
    client = openai.OpenAI(base_url=gateway.v1, api_key="unused", default_headers=headers)
    stream = client.chat.completions.create(stream=True, **body)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == expected
    assert len(openai_emulator.requests) == 1


def test_stream_entry_replays_as_json(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    body, headers = unique_chat(), cached_config()
    stores = gateway.app.cache.cache.stats.stores
    client = openai.OpenAI(base_url=gateway.v1, api_key="unused", default_headers=headers)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(stream=True, **body)
        if c.choices
    )
    wait_stored(gateway, stores + 1)
    raw = client.chat.completions.with_raw_response.create(**body)
    assert raw.headers["x-portkey-cache-status"] == "HIT"
    assert raw.parse().choices[0].message.content == streamed
    assert len(openai_emulator.requests) == 1


def test_force_refresh(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    body, headers = unique_chat(), cached_config()
    stores = gateway.app.cache.cache.stats.stores
    post(gateway, body, **headers)
    wait_stored(gateway, stores + 1)
    assert (
        post(gateway, body, **headers, **{"x-portkey-cache-force-refresh": "false"}).headers[
            "x-portkey-cache-status"
        ]
        == "HIT"
    )
    r = post(gateway, body, **headers, **{"x-portkey-cache-force-refresh": "true"})
    assert r.headers["x-portkey-cache-status"] == "REFRESH"
    assert len(openai_emulator.requests) == 2


def test_errors_are_never_cached(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    body, headers = unique_chat(), cached_config()
    openai_emulator.inject(Fault(status=500, json={"error": {"message": "boom"}}))
    assert post(gateway, body, **headers).status_code == 500
    r = post(gateway, body, **headers)
    assert r.status_code == 200 and r.headers["x-portkey-cache-status"] == "MISS"


def test_metadata_and_namespace_partition(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    body, headers = unique_chat(), cached_config()
    stores = gateway.app.cache.cache.stats.stores
    post(gateway, body, **headers, **{"x-portkey-metadata": '{"_user": "a"}'})
    wait_stored(gateway, stores + 1)
    other = post(gateway, body, **headers, **{"x-portkey-metadata": '{"_user": "b"}'})
    assert other.headers["x-portkey-cache-status"] == "MISS"
    wait_stored(gateway, stores + 2)
    # a namespace replaces the metadata in the partition
    ns = {"x-portkey-cache-namespace": "team-1"}
    post(gateway, body, **headers, **ns, **{"x-portkey-metadata": '{"_user": "a"}'})
    wait_stored(gateway, stores + 3)
    r = post(gateway, body, **headers, **ns, **{"x-portkey-metadata": '{"_user": "c"}'})
    assert r.headers["x-portkey-cache-status"] == "HIT"


def test_debug_false_disables_the_cache(gateway: GatewayServer) -> None:
    r = post(gateway, unique_chat(), **cached_config(), **{"x-portkey-debug": "false"})
    assert r.headers["x-portkey-cache-status"] == "DISABLED"


def test_an_entry_written_by_one_node_hits_on_another(
    openai_emulator: OpenAIEmulator, tmp_path: Path
) -> None:
    url = os.environ.get("WAYPORT_TEST_REDIS_URL")
    if not url:
        pytest.skip("WAYPORT_TEST_REDIS_URL is not set (CI sets it; a Redis server is needed)")
    nodes = [
        GatewayServer(emulator_settings(openai_emulator, tmp_path / str(i), redis_url=url)).start()
        for i in range(2)
    ]
    try:
        body, headers = unique_chat(), cached_config()
        assert post(nodes[0], body, **headers).headers["x-portkey-cache-status"] == "MISS"
        wait_stored(nodes[0], 1)
        assert post(nodes[1], body, **headers).headers["x-portkey-cache-status"] == "HIT"
        assert len(openai_emulator.requests) == 1
    finally:
        for node in nodes:
            node.stop()


def test_a_hit_costs_nothing_and_logs_what_it_saved(gateway: GatewayServer) -> None:
    import sqlite3

    body, headers = unique_chat(), cached_config()
    stores = gateway.app.cache.cache.stats.stores
    first = post(
        gateway, body, **headers, **{"x-portkey-trace-id": "t-miss-" + body["messages"][0]["content"]}
    )
    assert Decimal(first.headers["x-wayport-cost-usd"]) > 0
    wait_stored(gateway, stores + 1)
    trace = "t-hit-" + uuid.uuid4().hex
    hit = post(gateway, body, **headers, **{"x-portkey-trace-id": trace})
    assert hit.headers["x-portkey-cache-status"] == "HIT"
    assert Decimal(hit.headers["x-wayport-cost-usd"]) == 0
    db = sqlite3.connect(gateway.app.settings.data_dir / "wayport.db")
    deadline = time.monotonic() + 5
    row = None
    while row is None and time.monotonic() < deadline:
        row = db.execute(
            "select cost_micros, cost_saved_micros from logs where trace_id = ?", (trace,)
        ).fetchone()
        time.sleep(0.05)
    assert row is not None and row[0] == 0
    paid = Decimal(first.headers["x-wayport-cost-usd"]) * 1_000_000
    assert row[1] == int(paid.quantize(Decimal(1), rounding=ROUND_HALF_UP))  # micro-dollars, half up
