"""Routing strategies, retries, timeouts, stream failover and circuit breakers
(reference/portkey.md §1.6 and §7), end to end and unit by unit."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio

from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from wayport.gateway.breaker import BreakerPolicy, CircuitBreakers
from wayport.gateway.breaker_redis import RedisCircuitBreakers
from wayport.gateway.config import Group, Leaf
from wayport.gateway.context import RequestContext
from wayport.gateway.reply import JSON, Reply
from wayport.gateway.retry import RetryRunner
from wayport.gateway.router import RouteInput, Router, matches
from wayport.providers.base import Endpoint

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(gateway: GatewayServer, config: dict[str, Any], body: Any = CHAT, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        headers={"x-portkey-config": orjson.dumps(config).decode(), **headers},
        json=body,
        timeout=20,
    )


# -- the reference configs of portkey.md §1.6, verbatim ---------------------------------------

CONFIG_A = {"retry": {"attempts": 3}, "cache": {"mode": "simple", "max_age": 3600}}
CONFIG_C = {
    "strategy": {"mode": "loadbalance"},
    "request_timeout": 10000,
    "retry": {"attempts": 2},
    "targets": [
        {
            "weight": 0.7,
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "openai", "api_key": "k1"},
                {
                    "provider": "azure-openai",
                    "api_key": "k2",
                    "resource_name": "r",
                    "deployment_id": "d",
                    "api_version": "2024-02-01",
                },
            ],
        },
        {
            "weight": 0.3,
            "provider": "groq",
            "api_key": "k3",
            "retry": {"attempts": 5, "on_status_codes": [429]},
        },
    ],
}
CONFIG_D = {
    "strategy": {
        "mode": "conditional",
        "conditions": [
            {"query": {"metadata.user_plan": {"$eq": "paid"}}, "then": "smart"},
            {
                "query": {"$or": [{"params.model": {"$in": ["fast", "cheap"]}}, {"metadata.tier": "free"}]},
                "then": "cheap",
            },
        ],
        "default": "cheap",
    },
    "targets": [
        {"name": "smart", "provider": "openai", "api_key": "k", "override_params": {"model": "gpt-4o"}},
        {"name": "cheap", "provider": "openai", "api_key": "k", "override_params": {"model": "gpt-4o-mini"}},
    ],
}


def test_config_a_provider_from_headers_with_retries(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(status=502, json={"error": {"message": "x"}}))
    r = post(gateway, CONFIG_A, **{"x-portkey-provider": "openai", "Authorization": "Bearer sk-h"})
    assert r.status_code == 200
    assert r.headers["x-portkey-last-used-option-index"] == "config"
    assert r.headers["x-portkey-retry-attempt-count"] == "1"
    assert openai_emulator.last.headers["Authorization"] == "Bearer sk-h"


def test_config_c_nested_loadbalance_and_fallback(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    seen = Counter(post(gateway, CONFIG_C).headers["x-portkey-last-used-option-index"] for _ in range(40))
    assert set(seen) == {"config.targets[0].targets[0]", "config.targets[1]"}
    # inherited request_timeout and the replaced retry policy reach the leaves
    path = openai_emulator.requests[0].path
    assert path in ("/v1/chat/completions", "/openai/deployments/d/chat/completions")


def test_config_c_fallback_inside_the_loadbalance_group(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    # Weight 0 on the groq branch makes the fallback branch certain; the rest is verbatim.
    config = orjson.loads(orjson.dumps(CONFIG_C))
    config["targets"][1]["weight"] = 0
    openai_emulator.inject(*[Fault(status=503, json={"error": {"message": "down"}}) for _ in range(3)])
    r = post(gateway, config)
    assert r.status_code == 200
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[0].targets[1]"
    assert r.headers["x-portkey-provider"] == "azure-openai"
    assert [q.path for q in openai_emulator.requests] == ["/v1/chat/completions"] * 3 + [
        "/openai/deployments/d/chat/completions"
    ]


@pytest.mark.parametrize(
    ("metadata", "model", "expected"),
    [
        ({"user_plan": "paid"}, "gpt-4o", "gpt-4o"),
        ({"user_plan": "free"}, "fast", "gpt-4o-mini"),
        ({"tier": "free"}, "gpt-4o", "gpt-4o-mini"),
        ({}, "gpt-4o", "gpt-4o-mini"),
    ],
)
def test_config_d_conditional(
    gateway: GatewayServer, metadata: dict[str, str], model: str, expected: str
) -> None:
    r = post(
        gateway, CONFIG_D, {**CHAT, "model": model}, **{"x-portkey-metadata": orjson.dumps(metadata).decode()}
    )
    assert r.json()["model"] == expected


# -- conditional operators ----------------------------------------------------------------------

ROUTE = RouteInput(
    {"plan": "paid", "n": "7", "tags": "a"}, {"model": "gpt-4o", "temperature": 0.5}, "/v1/chat/completions"
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"metadata.plan": "paid"}, True),
        ({"metadata.plan": {"$eq": "free"}}, False),
        ({"metadata.plan": {"$ne": "free"}}, True),
        ({"metadata.n": {"$gt": 5}}, True),
        ({"metadata.n": {"$gte": 7}}, True),
        ({"metadata.n": {"$lt": 7}}, False),
        ({"metadata.n": {"$lte": 7}}, True),
        ({"params.temperature": {"$lt": 1}}, True),
        ({"params.model": {"$in": ["gpt-4o", "x"]}}, True),
        ({"params.model": {"$nin": ["gpt-4o"]}}, False),
        ({"params.model": {"$regex": "^gpt-4"}}, True),
        ({"url.pathname": {"$regex": "chat"}}, True),
        ({"$and": [{"metadata.plan": "paid"}, {"params.model": "gpt-4o"}]}, True),
        ({"$and": [{"metadata.plan": "paid"}, {"params.model": "other"}]}, False),
        ({"$or": [{"metadata.plan": "free"}, {"metadata.tags": "a"}]}, True),
        ({"metadata.missing": {"$gt": 1}}, False),
    ],
)
def test_conditional_operators(query: dict[str, Any], expected: bool) -> None:
    assert matches(query, ROUTE) is expected


def test_unknown_operator_is_a_400(gateway: GatewayServer) -> None:
    config = orjson.loads(orjson.dumps(CONFIG_D))
    config["strategy"]["conditions"][0]["query"] = {"metadata.user_plan": {"$like": "p%"}}
    r = post(gateway, config)
    assert r.status_code == 400
    assert r.json()["message"] == "Unsupported operator used in the query router: $like"


def test_no_match_and_no_default_is_a_400(gateway: GatewayServer) -> None:
    config = orjson.loads(orjson.dumps(CONFIG_D))
    del config["strategy"]["default"]
    r = post(gateway, config, **{"x-portkey-metadata": "{}"})
    assert r.status_code == 400
    assert r.json()["message"] == "Query router did not resolve to any valid target"


# -- weights ------------------------------------------------------------------------------------


def leaf(path: str, weight: float = 1.0) -> Leaf:
    return Leaf(path, "openai", None, {}, {}, None, None, None, None, None, None, weight=weight)


def test_weighted_choice_follows_the_weights() -> None:
    group = Group("config", "loadbalance", (leaf("a", 0.7), leaf("b", 0.3), leaf("c", 0), leaf("d")))
    router = Router(random.Random(20261126))
    picks = Counter(router.pick_weighted(group).path for _ in range(20_000))
    assert picks["c"] == 0
    # weights 0.7 : 0.3 : 1.0 of 2.0; 20,000 draws keep each share within 1.5 points
    assert abs(picks["a"] / 20_000 - 0.35) < 0.015
    assert abs(picks["b"] / 20_000 - 0.15) < 0.015
    assert abs(picks["d"] / 20_000 - 0.50) < 0.015


def test_all_zero_weights_is_an_error(gateway: GatewayServer) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "openai", "api_key": "k", "weight": 0}],
    }
    r = post(gateway, config)
    assert r.status_code == 500
    assert "weight 0" in r.json()["message"]


# -- retries --------------------------------------------------------------------------------------


class Script:
    """An attempt function answering with a scripted list of statuses and headers."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> Reply:
        status, headers = self.answers[self.calls]
        self.calls += 1
        return Reply(status, [JSON, *((k.encode(), v.encode()) for k, v in headers.items())], b"{}")


def runner(sleeps: list[float]) -> RetryRunner:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return RetryRunner(base_delay_s=1.0, max_delay_s=16.0, sleep=sleep, rng=random.Random(3))


def policy(attempts: int, codes: set[int] | None = None, use_header: bool = False) -> Any:
    from wayport.gateway.config import DEFAULT_RETRY_STATUS_CODES, RetryPolicy

    return RetryPolicy(attempts, frozenset(codes or DEFAULT_RETRY_STATUS_CODES), use_header)


async def test_backoff_is_exponential_with_jitter() -> None:
    sleeps: list[float] = []
    ctx = RequestContext(Endpoint.CHAT, "t")
    script = Script(*[(503, {})] * 5, (200, {}))
    reply = await runner(sleeps).run(ctx, policy(5), script)
    assert reply.status == 200 and ctx.retry_count == 5
    for n, slept in enumerate(sleeps):
        assert 0.5 * 2**n <= slept <= 2**n  # base·2ⁿ scaled by 50–100 %
    assert len(set(sleeps)) == 5


async def test_retry_after_header_sets_the_wait() -> None:
    sleeps: list[float] = []
    ctx = RequestContext(Endpoint.CHAT, "t")
    script = Script((429, {"retry-after-ms": "250"}), (429, {"retry-after": "2"}), (200, {}))
    reply = await runner(sleeps).run(ctx, policy(3, use_header=True), script)
    assert reply.status == 200
    assert sleeps == [0.25, 2.0]


async def test_retry_after_of_a_minute_stops_retrying() -> None:
    sleeps: list[float] = []
    ctx = RequestContext(Endpoint.CHAT, "t")
    script = Script((429, {"x-ms-retry-after-ms": "60000"}), (200, {}))
    reply = await runner(sleeps).run(ctx, policy(3, use_header=True), script)
    assert reply.status == 429 and ctx.retry_count == -1 and sleeps == []


async def test_retry_after_is_ignored_without_the_flag() -> None:
    sleeps: list[float] = []
    ctx = RequestContext(Endpoint.CHAT, "t")
    await runner(sleeps).run(ctx, policy(1), Script((429, {"retry-after": "30"}), (200, {})))
    assert sleeps[0] <= 1.0


def test_more_than_five_attempts_is_refused(gateway: GatewayServer) -> None:
    r = post(gateway, {"provider": "openai", "api_key": "k", "retry": {"attempts": 9}})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        "path: retry,attempts, message: retry attempts must be between 0 and 5, got 9"
    ]


def test_network_errors_are_retried(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(reset=True))
    r = post(gateway, {"provider": "openai", "api_key": "k", "retry": {"attempts": 1}})
    assert r.status_code == 200 and r.headers["x-portkey-retry-attempt-count"] == "1"


def test_malformed_json_answer_is_a_502_and_falls_over(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(status=200, text='{"choices": [', content_type="application/json"))
    r = post(gateway, {"provider": "openai", "api_key": "k"})
    assert r.status_code == 502
    assert r.json()["error"]["message"].startswith("openai error: Invalid response received from openai")
    openai_emulator.inject(Fault(status=200, text='{"choices": [', content_type="application/json"))
    r = post(gateway, FALLBACK)
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


# -- streams: failover before the first content, errors after it ---------------------------------


@pytest.fixture(scope="module")
def quick_gateway(
    openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = emulator_settings(
        openai_emulator,
        tmp_path_factory.mktemp("quick"),
        stream_first_byte_timeout_s=0.3,
        stream_stall_timeout_s=0.3,
        upstream_timeout_s=0.5,
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.02)).start()
    yield server
    server.stop()


def stream_events(r: httpx.Response) -> list[str]:
    return [b.removeprefix("data: ") for b in r.text.split("\n\n") if b.strip()]


FALLBACK = {
    "strategy": {"mode": "fallback"},
    "targets": [
        {"provider": "openai", "api_key": "k", "override_params": {"model": "first"}},
        {"provider": "openai", "api_key": "k", "override_params": {"model": "second"}},
    ],
}
STREAM = {**CHAT, "stream": True}


def test_stream_cut_before_content_falls_over(
    quick_gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(stream_events=1, cut=True))  # only the role announcement, then a reset
    r = post(quick_gateway, FALLBACK, STREAM)
    events = stream_events(r)
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert events[-1] == "[DONE]" and not any("error" in e for e in events)
    assert {orjson.loads(e)["model"] for e in events[:-1]} == {"second"}


def test_stream_stalling_before_content_falls_over(
    quick_gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(stream_events=1, stall_s=2.0))
    r = post(quick_gateway, FALLBACK, STREAM)
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert stream_events(r)[-1] == "[DONE]"


def test_slow_first_byte_falls_over(quick_gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(delay_s=1.0))
    r = post(quick_gateway, FALLBACK, STREAM)
    assert r.status_code == 200
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_stream_failure_after_content_is_an_error_event(
    quick_gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(stream_events=3, stall_s=2.0))
    r = post(quick_gateway, FALLBACK, STREAM)
    events = stream_events(r)
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    assert events[-1] == "[DONE]"
    assert "sent nothing for 0.3 s mid-stream" in orjson.loads(events[-2])["error"]["message"]


def test_hung_provider_without_request_timeout_is_bounded(
    quick_gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(delay_s=2.0))
    r = post(quick_gateway, {"provider": "openai", "api_key": "k"})
    assert r.status_code == 504
    assert r.json()["error"]["message"] == "openai error: the provider did not answer in time"


# -- circuit breakers ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_breaker_opens_then_half_opens_then_closes() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    cb = BreakerPolicy.from_config({"failure_threshold": 2, "cooldown_interval": 30_000})
    assert await breakers.allowed("k", cb)
    await breakers.record("k", cb, 503)
    assert await breakers.allowed("k", cb)
    await breakers.record("k", cb, 500)
    assert not await breakers.allowed("k", cb)  # open
    clock.now += 29
    assert not await breakers.allowed("k", cb)
    clock.now += 2
    assert await breakers.allowed("k", cb)  # half-open: one probe
    assert not await breakers.allowed("k", cb)  # the probe is in flight
    await breakers.record("k", cb, 503)
    assert not await breakers.allowed("k", cb)  # probe failed: open again
    clock.now += 31
    assert await breakers.allowed("k", cb)
    await breakers.record("k", cb, 200)
    assert await breakers.allowed("k", cb) and await breakers.allowed("k", cb)  # closed


async def test_breaker_percentage_and_minimum_requests() -> None:
    breakers = CircuitBreakers(Clock())
    cb = BreakerPolicy.from_config({"failure_threshold_percentage": 50, "minimum_requests": 4})
    for status in (500, 500, 200):
        await breakers.record("k", cb, status)
    assert await breakers.allowed("k", cb)  # 3 answers: under the minimum
    await breakers.record("k", cb, 200)
    assert not await breakers.allowed("k", cb)  # 2 of 4 failed: 50 %


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    url = os.environ.get("WAYPORT_TEST_REDIS_URL")
    if not url:
        pytest.skip("WAYPORT_TEST_REDIS_URL is not set (CI sets it; a Redis server is needed)")
    client = redis.asyncio.Redis.from_url(url)
    yield client
    await client.aclose()


async def test_breaker_state_is_shared_through_redis(redis_client: Any) -> None:
    prefix = f"wayport-test:{uuid.uuid4().hex}:"
    node_a, node_b = RedisCircuitBreakers(redis_client, prefix), RedisCircuitBreakers(redis_client, prefix)
    # A short cooldown (the config's minimum of 30 s is bypassed) keeps the test quick.
    cb = BreakerPolicy(2, None, cooldown_s=0.3, failure_status_codes=None, minimum_requests=0)
    await node_a.record("t", cb, 500)
    await node_b.record("t", cb, 502)  # the second failure, seen by another node, opens it
    assert not await node_a.allowed("t", cb) and not await node_b.allowed("t", cb)
    await asyncio.sleep(0.35)
    assert await node_b.allowed("t", cb)  # half-open: node b takes the probe
    assert not await node_a.allowed("t", cb)  # ... and node a must wait for it
    await node_b.record("t", cb, 200)
    assert await node_a.allowed("t", cb) and await node_b.allowed("t", cb)
    await redis_client.delete(prefix + "t")


def test_breaker_status_codes() -> None:
    cb = BreakerPolicy.from_config({"failure_threshold": 1, "failure_status_codes": [429]})
    assert cb.is_failure(429) and not cb.is_failure(503)
    assert BreakerPolicy.from_config({"failure_threshold": 1}).is_failure(503)


@pytest.mark.parametrize(
    ("cb", "message"),
    [
        ({}, "cb_config needs failure_threshold or failure_threshold_percentage"),
        (
            {"failure_threshold": 1, "cooldown_interval": 5},
            "cb_config.cooldown_interval must be at least 30000",
        ),
        (
            {"failure_threshold_percentage": 120},
            "cb_config.failure_threshold_percentage must be between 0 and 100",
        ),
    ],
)
def test_bad_breaker_config_is_a_400(gateway: GatewayServer, cb: dict[str, Any], message: str) -> None:
    config = {**FALLBACK, "strategy": {"mode": "fallback", "cb_config": cb}}
    r = post(gateway, config)
    assert r.status_code == 400
    assert r.json()["errors"] == [f"path: strategy,cb_config, message: {message}"]


def test_open_breaker_skips_the_target(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    config = {
        **FALLBACK,
        "id": f"cb-test-{random.random()}",
        "strategy": {"mode": "fallback", "cb_config": {"failure_threshold": 2, "cooldown_interval": 60_000}},
    }
    for _ in range(2):  # the first target fails twice (each time the second one answers)
        openai_emulator.inject(Fault(status=500, json={"error": {"message": "down"}}))
        assert post(gateway, config).headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    openai_emulator.requests.clear()
    r = post(gateway, config)
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert [q.json()["model"] for q in openai_emulator.requests] == ["second"]  # the first was skipped


def test_breakers_are_shared_by_gateway_nodes(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    url = os.environ.get("WAYPORT_TEST_REDIS_URL")
    if not url:
        pytest.skip("WAYPORT_TEST_REDIS_URL is not set (CI sets it; a Redis server is needed)")
    nodes = [
        GatewayServer(emulator_settings(openai_emulator, tmp_path / str(i), redis_url=url)).start()
        for i in range(2)
    ]
    try:
        config = {
            **FALLBACK,
            "id": f"shared-{uuid.uuid4().hex}",
            "strategy": {
                "mode": "fallback",
                "cb_config": {"failure_threshold": 1, "cooldown_interval": 60_000},
            },
        }
        openai_emulator.inject(Fault(status=500, json={"error": {"message": "down"}}))
        assert post(nodes[0], config).headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        openai_emulator.requests.clear()
        r = post(nodes[1], config)  # the other node skips the target the first one saw fail
        assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert [q.json()["model"] for q in openai_emulator.requests] == ["second"]
    finally:
        for node in nodes:
            node.stop()
