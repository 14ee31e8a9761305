"""Chaos: 2,000 requests through a fallback config over three providers that each fail 30 % of
the time (errors, resets, stalls, malformed answers, cut streams). Every request must end in a
success or a well-formed error; none may hang."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import GatewayServer
from tests.emulators.openai import Chaos, OpenAIEmulator
from wayport.gateway.retry import RetryRunner
from wayport.settings import Settings

REQUESTS = int(os.environ.get("WAYPORT_CHAOS_REQUESTS", "2000"))
CONCURRENCY = 32


@pytest.fixture(scope="module")
def chaos_emulators() -> Iterator[list[OpenAIEmulator]]:
    emulators = [OpenAIEmulator().start() for _ in range(3)]
    for seed, emulator in enumerate(emulators, start=1):
        emulator.chaos = Chaos(rate=0.3, seed=seed, stall_s=1.0)
    yield emulators
    for emulator in emulators:
        emulator.stop()


@pytest.fixture(scope="module")
def chaos_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    settings = Settings(
        auth=False,
        data_dir=tmp_path_factory.mktemp("chaos"),
        trusted_hosts=("127.0.0.1",),
        upstream_timeout_s=0.4,
        stream_first_byte_timeout_s=0.4,
        stream_stall_timeout_s=0.4,
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.005, max_delay_s=0.02)).start()
    yield server
    server.stop()


def well_formed(status: int, body: bytes, stream: bool) -> tuple[bool, bool]:
    """(well formed, success) for one answer."""
    if status == 200 and stream:
        events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e.strip()]
        if not events or events[-1] != b"[DONE]":
            return False, False
        parsed = [orjson.loads(e) for e in events[:-1]]
        failed = any("error" in p for p in parsed)
        complete = any(
            p["choices"] and p["choices"][0]["finish_reason"] == "stop" for p in parsed if "choices" in p
        )
        return failed or complete, complete and not failed
    data = orjson.loads(body)
    if status == 200:
        return data["choices"][0]["message"]["content"].startswith("Echo: "), True
    return ("error" in data and "message" in data["error"]) or data.get("status") == "failure", False


def test_chaos_every_request_ends_well(
    chaos_emulators: list[OpenAIEmulator], chaos_gateway: GatewayServer, tmp_path: Path
) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "retry": {"attempts": 1},
        "targets": [
            {"provider": "openai", "api_key": "k", "custom_host": emulator.base_url}
            for emulator in chaos_emulators
        ],
    }
    headers = {"x-portkey-config": orjson.dumps(config).decode()}

    async def one(client: httpx.AsyncClient, i: int) -> dict[str, object]:
        stream = i % 4 == 0
        body = {
            "model": "gpt-4o",
            "stream": stream,
            "messages": [{"role": "user", "content": f"request {i}"}],
        }
        started = time.monotonic()
        r = await client.post(chaos_gateway.v1 + "/chat/completions", headers=headers, json=body)
        ok, success = well_formed(r.status_code, r.content, stream)
        return {
            "status": r.status_code,
            "ok": ok,
            "success": success,
            "index": r.headers.get("x-portkey-last-used-option-index"),
            "retries": r.headers.get("x-portkey-retry-attempt-count"),
            "latency": time.monotonic() - started,
        }

    async def run() -> list[dict[str, object]]:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=15, limits=limits) as client:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def bounded(i: int) -> dict[str, object]:
                async with gate:
                    return await one(client, i)

            return await asyncio.gather(*(bounded(i) for i in range(REQUESTS)))

    results = asyncio.run(run())
    latencies = sorted(float(r["latency"]) for r in results)  # type: ignore[arg-type]
    summary = {
        "requests": len(results),
        "well_formed": sum(bool(r["ok"]) for r in results),
        "successes": sum(bool(r["success"]) for r in results),
        "rescued_by_fallback": sum(bool(r["success"]) and r["index"] != "config.targets[0]" for r in results),
        "rescued_by_retry": sum(
            bool(r["success"]) and r["index"] == "config.targets[0]" and r["retries"] not in ("0", None)
            for r in results
        ),
        "statuses": dict(Counter(int(r["status"]) for r in results)),  # type: ignore[call-overload]
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "faults_injected": [dict(e.chaos.injected) for e in chaos_emulators if e.chaos],
    }
    print("\nchaos:", json.dumps(summary))
    assert summary["requests"] == REQUESTS
    assert summary["well_formed"] == REQUESTS
    # Three targets, each failing 30 % twice in a row at worst: nearly all requests succeed.
    assert summary["successes"] >= REQUESTS * 0.98
    assert summary["rescued_by_fallback"] > 0 and summary["rescued_by_retry"] > 0
    assert latencies[-1] < 10
    # ... and none is lost from the logs
    db = sqlite3.connect(chaos_gateway.app.settings.data_dir / "wayport.db")
    deadline = time.monotonic() + 10
    while db.execute("select count(*) from logs").fetchone()[0] < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert db.execute("select count(*) from logs").fetchone()[0] == REQUESTS
    db.close()
