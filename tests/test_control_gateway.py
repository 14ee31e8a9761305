"""The control plane served by the gateway itself: logs of real requests, feedback through the
portkey-ai SDK, and cache clearing."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import portkey_ai

from tests.conftest import GatewayServer


def wait_for_log(gateway: GatewayServer, trace_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        page = httpx.get(gateway.v1 + "/logs", params={"trace_id": trace_id}).json()
        if page["data"]:
            return page["data"][0]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no log for {trace_id}")


def test_logs_of_requests_are_served(gateway: GatewayServer) -> None:
    trace = f"t-{uuid.uuid4().hex}"
    httpx.post(
        gateway.v1 + "/chat/completions",
        headers={"x-portkey-provider": "openai", "Authorization": "Bearer sk-x", "x-portkey-trace-id": trace},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "log me"}]},
    )
    listed = wait_for_log(gateway, trace)
    one = httpx.get(f"{gateway.v1}/logs/{listed['id']}").json()
    assert one["trace_id"] == trace and one["provider"] == "openai" and one["status"] == 200


def test_feedback_through_the_portkey_sdk(gateway: GatewayServer) -> None:
    client = portkey_ai.Portkey(api_key="unused", base_url=gateway.v1)
    created = client.feedback.create(trace_id="t-feedback", value=5, weight=0.5, metadata={"_user": "u1"})
    assert created.status == "success" and len(created.feedback_ids or []) == 1
    updated = client.feedback.update(feedback_id=(created.feedback_ids or [""])[0], value=-3)
    assert updated.status == "success"
    r = httpx.post(gateway.v1 + "/feedback", json={"trace_id": "t", "value": 11})
    assert r.status_code == 400 and "value" in r.json()["message"]


def test_cache_can_be_cleared(gateway: GatewayServer) -> None:
    config = {"provider": "openai", "api_key": "k", "cache": {"mode": "simple"}}
    headers = {"x-portkey-config": orjson.dumps(config).decode(), "x-portkey-cache-namespace": "clear-me"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"cached {uuid.uuid4().hex}"}]}
    httpx.post(gateway.v1 + "/chat/completions", headers=headers, json=body)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if (
            httpx.post(gateway.v1 + "/chat/completions", headers=headers, json=body).headers[
                "x-portkey-cache-status"
            ]
            == "HIT"
        ):
            break
        time.sleep(0.05)
    r = httpx.delete(gateway.v1 + "/cache", params={"namespace": "clear-me"})
    assert r.status_code == 200 and r.json()["deleted"] >= 1
    assert (
        httpx.post(gateway.v1 + "/chat/completions", headers=headers, json=body).headers[
            "x-portkey-cache-status"
        ]
        == "MISS"
    )
