"""Every request leaves a log record with its tokens, cost, latency and path, written in the
background; secrets never reach the store; /metrics exposes the same."""

from __future__ import annotations

import sqlite3
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import orjson

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from wayport.observability.pricing import Pricer

SECRET = "sk-live-do-not-store-" + uuid.uuid4().hex


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}


def config(**extra: Any) -> dict[str, str]:
    return {"x-portkey-config": orjson.dumps({"provider": "openai", "api_key": SECRET, **extra}).decode()}


def logged(gateway: GatewayServer, trace_id: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The stored rows of a trace (the writer flushes every 0.2 s)."""
    deadline = time.monotonic() + timeout
    with sqlite3.connect(gateway.app.settings.data_dir / "wayport.db") as db:
        db.row_factory = sqlite3.Row
        while True:
            rows = [dict(r) for r in db.execute("select * from logs where trace_id = ?", (trace_id,))]
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


def test_a_request_is_logged_with_tokens_cost_and_latency(gateway: GatewayServer) -> None:
    trace = f"t-{uuid.uuid4().hex}"
    r = httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat("one two three"),
        headers={
            **config(),
            "x-portkey-trace-id": trace,
            "x-portkey-metadata": '{"_user": "u-42", "team": "a"}',
        },
    )
    assert r.status_code == 200
    usage = r.json()["usage"]
    expected = Pricer().cost("openai", "gpt-4o", usage)
    assert expected is not None and expected.micros > 0
    assert Decimal(r.headers["x-wayport-cost-usd"]) == expected.usd
    (row,) = logged(gateway, trace)
    assert (row["provider"], row["model_requested"], row["status"], row["endpoint"]) == (
        "openai",
        "gpt-4o",
        200,
        "chatComplete",
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row["cost_micros"] == expected.micros
    assert row["latency_ms"] >= 0 and row["end_user"] == "u-42"
    assert orjson.loads(row["metadata"])["team"] == "a"
    assert "one two three" in row["request_body"] and "Echo: one two three" in row["response_body"]


def test_stream_and_non_stream_cost_the_same(gateway: GatewayServer) -> None:
    traces = [f"t-{uuid.uuid4().hex}" for _ in range(2)]
    httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat("same words"),
        headers={**config(), "x-portkey-trace-id": traces[0]},
    )
    r = httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat("same words", stream=True),
        headers={**config(), "x-portkey-trace-id": traces[1]},
    )
    assert '"choices":[]' not in r.text  # the usage chunk Wayport asked for was not passed on
    (plain,), (streamed,) = logged(gateway, traces[0]), logged(gateway, traces[1])
    assert streamed["stream"] and streamed["ttft_ms"] is not None
    assert streamed["cost_micros"] == plain["cost_micros"] is not None
    assert streamed["prompt_tokens"] == plain["prompt_tokens"] > 0


def test_the_path_of_a_request_is_logged(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    trace = f"t-{uuid.uuid4().hex}"
    fallback = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "api_key": SECRET, "retry": {"attempts": 1}},
            {"provider": "openai", "api_key": SECRET},
        ],
    }
    openai_emulator.inject(*[Fault(status=503, json={"error": {"message": "down"}}) for _ in range(2)])
    httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat("path"),
        headers={"x-portkey-config": orjson.dumps(fallback).decode(), "x-portkey-trace-id": trace},
    )
    (row,) = logged(gateway, trace)
    attempts = orjson.loads(row["attempts"])
    assert [(a["target_path"], a["status"]) for a in attempts] == [
        ("config.targets[0]", 503),
        ("config.targets[0]", 503),
        ("config.targets[1]", 200),
    ]
    assert row["fallbacks"] == 1


def test_errors_are_logged(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    trace = f"t-{uuid.uuid4().hex}"
    openai_emulator.inject(Fault(status=400, json={"error": {"message": "bad thing"}}))
    httpx.post(
        gateway.v1 + "/chat/completions", json=chat("x"), headers={**config(), "x-portkey-trace-id": trace}
    )
    (row,) = logged(gateway, trace)
    assert row["status"] == 400 and "bad thing" in row["error"] and row["cost_micros"] is None


def test_debug_false_keeps_bodies_out(gateway: GatewayServer) -> None:
    trace = f"t-{uuid.uuid4().hex}"
    httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat("private words"),
        headers={**config(), "x-portkey-trace-id": trace, "x-portkey-debug": "false"},
    )
    (row,) = logged(gateway, trace)
    assert row["request_body"] is None and row["response_body"] is None


def test_secrets_never_reach_the_store(gateway: GatewayServer) -> None:
    trace = f"t-{uuid.uuid4().hex}"
    body = chat("my key is " + SECRET)  # even a key pasted into a prompt
    httpx.post(
        gateway.v1 + "/chat/completions",
        json=body,
        headers={
            **config(),
            "x-portkey-trace-id": trace,
            "x-portkey-metadata": orjson.dumps({"api_key": SECRET}).decode(),
        },
    )
    assert logged(gateway, trace)
    dump = "\n".join(sqlite3.connect(gateway.app.settings.data_dir / "wayport.db").iterdump())
    assert SECRET not in dump


def test_metrics_follow_the_requests(gateway: GatewayServer) -> None:
    httpx.post(gateway.v1 + "/chat/completions", json=chat("count me"), headers=config())
    text = httpx.get(gateway.url + "/metrics").text
    assert "gen_ai_client_token_usage_bucket" in text
    assert "gen_ai_client_operation_duration_seconds_count" in text
    assert 'wayport_requests_total{gen_ai_operation_name="chat",gen_ai_provider_name="openai"' in text
    assert "wayport_cost_micro_usd_total" in text
    assert "wayport_log_queue_depth" in text and "wayport_logs_dropped" in text
