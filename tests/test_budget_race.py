"""Budgets and rate limits hold across nodes: two `wayport serve` processes share PostgreSQL and
Redis, and 200 concurrent requests race for a budget (or a limit) that covers 50.

Needs WAYPORT_TEST_DATABASE_URL and WAYPORT_TEST_REDIS_URL (CI sets both); each run creates a
database of its own and drops it afterwards. The figures are printed (pytest -s) for the notes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import free_port
from tests.emulators.openai import OpenAIEmulator
from tests.test_serve import wait_healthy

PG_URL = os.environ.get("WAYPORT_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("WAYPORT_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not (PG_URL and REDIS_URL),
    reason="WAYPORT_TEST_DATABASE_URL and WAYPORT_TEST_REDIS_URL are not both set; the cross-node "
    "budget race needs a shared PostgreSQL and Redis (CI provides them)",
)
WAYPORT = str(Path(sys.executable).with_name("wayport"))
QUESTION = "Which of the two nodes answers this request first, and does it matter for the budget?"
CHAT = {"model": "gpt-4o", "max_tokens": 16, "messages": [{"role": "user", "content": QUESTION}]}
REQUESTS = 200


def _sync_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.split("+")[0], parts.netloc, f"/{database}", "", ""))


@dataclass
class Cluster:
    nodes: list[str]
    admin: str
    database_url: str

    def control(self) -> httpx.Client:
        return httpx.Client(base_url=self.nodes[0], headers={"x-portkey-api-key": self.admin}, timeout=30)

    def spent(self, scope_prefix: str) -> dict[str, tuple[int, int]]:
        """(used, reserved) of every budget counter whose scope starts with ``scope_prefix``."""
        query = f"SELECT scope, used, reserved FROM budget_counters WHERE scope LIKE '{scope_prefix}%'"
        out = subprocess.run(
            ["psql", self.database_url, "-tAF,", "-c", query], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        rows = [line.split(",") for line in out.stdout.split()]
        return {scope: (int(used), int(reserved)) for scope, used, reserved in rows}


@pytest.fixture(scope="module")
def cluster(openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    assert PG_URL and REDIS_URL
    database = f"wayport_race_{uuid.uuid4().hex[:12]}"
    admin_url = _sync_url(PG_URL, "postgres")
    subprocess.run(["psql", admin_url, "-qc", f'CREATE DATABASE "{database}"'], check=True)
    url = _sync_url(PG_URL, database)
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    procs: list[subprocess.Popen[bytes]] = []
    nodes: list[str] = []
    admin = ""
    try:
        for index in range(2):
            port = free_port()
            env = {
                **os.environ,
                "WAYPORT_DATA_DIR": str(tmp_path_factory.mktemp(f"node{index}")),
                "WAYPORT_DATABASE_URL": url,
                "WAYPORT_REDIS_URL": REDIS_URL,
                "WAYPORT_MASTER_KEY": key,
                "WAYPORT_BASE_URL_OPENAI": openai_emulator.base_url,
                "WAYPORT_LOG_FLUSH_INTERVAL_S": "0.1",
            }
            proc = subprocess.Popen(
                [WAYPORT, "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            procs.append(proc)
            if index == 0:  # the first node creates the owner key and prints it
                assert proc.stdout is not None
                for line in iter(proc.stdout.readline, b""):
                    found = re.search(rb"wp-[A-Za-z0-9_-]{43}", line)
                    if found:
                        admin = found.group(0).decode()
                        break
            nodes.append(f"http://127.0.0.1:{port}")
            wait_healthy(nodes[-1], proc)
        assert admin, "the first node printed no owner key"
        yield Cluster(nodes, admin, url)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        subprocess.run(
            ["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'], check=False
        )


async def _race(cluster: Cluster, headers: dict[str, str]) -> tuple[Counter[int], dict[int, httpx.Response]]:
    """``REQUESTS`` requests at once, alternating between the two nodes: status counts, and one
    answer of each status."""
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(index: int) -> httpx.Response:
            node = cluster.nodes[index % 2]
            answer = await client.post(node + "/v1/chat/completions", json=CHAT, headers=headers)
            if answer.status_code not in (200, 412, 429):
                raise AssertionError(f"{answer.status_code}: {answer.text}")
            return answer

        answers = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return Counter(a.status_code for a in answers), {a.status_code: a for a in answers}


def _probe(cluster: Cluster, vk: str) -> tuple[int, int]:
    """(tokens, cost in micro-USD) of one request like the race's, through a limitless key."""
    answer = httpx.post(
        cluster.nodes[0] + "/v1/chat/completions",
        json=CHAT,
        headers={"x-portkey-api-key": cluster.admin, "x-portkey-virtual-key": vk},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    cost = round(float(answer.headers["x-wayport-cost-usd"]) * 1_000_000)
    return usage["prompt_tokens"] + usage["completion_tokens"], cost


def _virtual_key(cluster: Cluster, name: str, **limits: Any) -> str:
    with cluster.control() as client:
        made = client.post(
            "/v1/virtual-keys", json={"name": name, "provider": "openai", "key": "sk-race", **limits}
        )
    assert made.status_code == 200, made.text
    slug: str = made.json()["slug"]
    time.sleep(1.5)  # every node re-reads virtual keys within a second (at once through Redis)
    return slug


def _settled(cluster: Cluster, scope_prefix: str) -> dict[str, tuple[int, int]]:
    """The counters once every reservation has been settled (settling runs after the answers)."""
    for _ in range(100):
        counters = cluster.spent(scope_prefix)
        if counters and all(reserved == 0 for _, reserved in counters.values()):
            return counters
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError(f"reservations never settled: {cluster.spent(scope_prefix)}")


@pytest.mark.parametrize("kind", ["cost", "tokens"])
def test_a_budget_covering_50_requests_is_never_overspent(cluster: Cluster, kind: str) -> None:
    tokens, cost = _probe(cluster, _virtual_key(cluster, f"probe-{kind}"))
    per_request = cost if kind == "cost" else tokens
    assert per_request > 0
    limit = 50 * per_request
    credit = f"{limit / 1_000_000:.6f}" if kind == "cost" else limit
    vk = _virtual_key(
        cluster,
        f"race-{kind}",
        usage_limits={"type": kind, "credit_limit": credit, "periodic_reset": "monthly"},
    )
    with cluster.control() as client:
        vk_id = client.get(f"/v1/virtual-keys/{vk}").json()["id"]
    statuses, examples = asyncio.run(
        _race(cluster, {"x-portkey-api-key": cluster.admin, "x-portkey-virtual-key": vk})
    )
    succeeded = statuses[200]
    ((used, reserved),) = _settled(cluster, f"vk:{vk_id}").values()
    figures = f"{dict(statuses)}; spent {used} of {limit}"
    print(f"\n{kind} budget for 50 requests, {REQUESTS} at once on 2 nodes: {figures}")
    assert set(statuses) <= {200, 412}
    assert 0 < succeeded <= 50
    assert used == succeeded * per_request  # recorded exactly: every success, nothing else
    assert used <= limit and reserved == 0
    # what the race left is used up one request at a time, down to less than one request's worth
    headers = {"x-portkey-api-key": cluster.admin, "x-portkey-virtual-key": vk}
    while (
        httpx.post(cluster.nodes[1] + "/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
    ):
        succeeded += 1
    ((used, reserved),) = _settled(cluster, f"vk:{vk_id}").values()
    print(f"then one at a time: {succeeded} requests in all, spent {used} of {limit}")
    assert used == succeeded * per_request and used <= limit and reserved == 0
    refused = examples[412].json()["message"]  # the refusal names the budget and when it resets
    assert f"virtual key '{vk}'" in refused and "resets" in refused, refused


def test_a_rate_limit_of_50_per_minute_admits_exactly_50(cluster: Cluster) -> None:
    with cluster.control() as client:
        made = client.post(
            "/v1/api-keys/organisation/service",
            json={
                "name": "limited",
                "role": "admin",
                "rate_limits": [{"type": "requests", "unit": "rpm", "value": 50}],
            },
        )
    assert made.status_code == 200, made.text
    vk = _virtual_key(cluster, "race-rate")
    headers = {"x-portkey-api-key": made.json()["key"], "x-portkey-virtual-key": vk}
    statuses, examples = asyncio.run(_race(cluster, headers))
    print(f"\nrate limit 50 rpm, {REQUESTS} at once on 2 nodes: {dict(statuses)}")
    assert statuses == Counter({200: 50, 429: REQUESTS - 50})
    assert int(examples[429].headers["retry-after"]) > 0
    assert "API key 'limited'" in examples[429].json()["message"]
