"""Nothing crosses workspaces: every resource made in one is invisible and untouchable from another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.security_harness import SecuredGateway, secured

PROVIDER = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-emulator"}


@pytest.fixture(scope="module")
def wp(openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredGateway]:
    gateway = secured(emulator_settings(openai_emulator, tmp_path_factory.mktemp("tenancy")))
    for workspace in ("alpha", "beta"):
        gateway.create_workspace(workspace)
    yield gateway
    gateway.server.stop()


def make_resources(wp: SecuredGateway, token: str, tag: str) -> dict[str, Any]:
    """A config, a prompt, a request log and a feedback made with ``token``; their ids."""
    with wp.control(token) as client:
        config = client.post("/v1/configs", json={"name": f"cfg-{tag}", "config": {"provider": "openai"}})
        assert config.status_code == 200, config.text
        prompt = client.post("/v1/prompts", json={"name": f"prompt-{tag}", "string": "Hello {{name}}"})
        assert prompt.status_code == 200, prompt.text
        trace = f"trace-{tag}"
        chat = httpx.post(
            wp.server.v1 + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": tag}]},
            headers={**PROVIDER, "x-portkey-api-key": token, "x-portkey-trace-id": trace},
        )
        assert chat.status_code == 200, chat.text
        feedback = client.post("/v1/feedback", json={"trace_id": trace, "value": 5})
        assert feedback.status_code == 200, feedback.text
        log_id = None
        for _ in range(100):  # the log is written in the background
            logs = client.get("/v1/logs", params={"trace_id": trace}).json()["data"]
            if logs:
                log_id = logs[0]["id"]
                break
            time.sleep(0.05)
        assert log_id is not None
    return {
        "config": config.json()["slug"],
        "prompt": prompt.json()["id"],
        "trace": trace,
        "log": log_id,
        "feedback": feedback.json()["feedback_ids"][0],
    }


def test_a_workspace_sees_only_its_own_rows(wp: SecuredGateway) -> None:
    _, alpha = wp.create_key("manager", workspace="alpha")
    _, beta = wp.create_key("manager", workspace="beta")
    mine = make_resources(wp, alpha, "alpha")
    theirs = make_resources(wp, beta, "beta")
    with wp.control(alpha) as client:
        # reads of the other workspace's objects: not found, as if they did not exist
        for path in (
            f"/v1/configs/{theirs['config']}",
            f"/v1/configs/{theirs['config']}/versions",
            f"/v1/prompts/{theirs['prompt']}",
            f"/v1/logs/{theirs['log']}",
        ):
            assert client.get(path).status_code == 404, path
        # writes to them: not found either, and nothing changes
        assert client.put(f"/v1/configs/{theirs['config']}", json={"name": "taken"}).status_code == 404
        assert client.delete(f"/v1/configs/{theirs['config']}").status_code == 404
        assert client.put(f"/v1/prompts/{theirs['prompt']}", json={"string": "pwned"}).status_code == 404
        assert client.delete(f"/v1/prompts/{theirs['prompt']}").status_code == 404
        assert client.put(f"/v1/feedback/{theirs['feedback']}", json={"value": -10}).status_code == 404
        # listings hold only this workspace's rows, whatever workspace_id is asked for
        for params in ({}, {"workspace_id": "beta"}):
            configs = {c["slug"] for c in client.get("/v1/configs", params=params).json()["data"]}
            assert mine["config"] in configs and theirs["config"] not in configs
            prompts = {p["id"] for p in client.get("/v1/prompts", params=params).json()["data"]}
            assert mine["prompt"] in prompts and theirs["prompt"] not in prompts
        logs = client.get("/v1/logs").json()["data"]
        assert {log["workspace_id"] for log in logs} == {"alpha"}
        assert client.get("/v1/logs", params={"trace_id": theirs["trace"]}).json()["data"] == []
        # analytics count only this workspace's requests
        window = {
            "time_of_generation_min": datetime.now(UTC) - timedelta(hours=1),
            "time_of_generation_max": datetime.now(UTC) + timedelta(minutes=1),
        }
        graph = client.get(
            "/v1/analytics/graphs/requests", params={k: v.isoformat() for k, v in window.items()}
        )
        assert graph.json()["summary"]["total"] == len(logs), graph.text
    with wp.control(beta) as client:
        assert client.get(f"/v1/configs/{theirs['config']}").json()["name"] == "cfg-beta"
        assert client.get(f"/v1/feedback/{theirs['feedback']}").status_code in (200, 404, 405)
    with wp.control(wp.admin) as client:  # the organisation sees both
        slugs = {c["slug"] for c in client.get("/v1/configs").json()["data"]}
        assert {mine["config"], theirs["config"]} <= slugs


def test_a_workspace_key_cannot_create_in_another_workspace(wp: SecuredGateway) -> None:
    _, alpha = wp.create_key("manager", workspace="alpha")
    with wp.control(alpha) as client:
        made = client.post(
            "/v1/configs",
            json={"name": "elsewhere", "workspace_id": "beta", "config": {"provider": "openai"}},
        )
        assert made.status_code == 200
        assert client.get(f"/v1/configs/{made.json()['slug']}").json()["workspace_id"] == "alpha"
        key = client.post("/v1/api-keys/workspace/service", json={"name": "x", "workspace_id": "beta"})
        assert key.status_code == 200
        assert client.get(f"/v1/api-keys/{key.json()['id']}").json()["workspace_id"] == "alpha"


def test_a_saved_config_serves_only_its_workspace(wp: SecuredGateway) -> None:
    _, alpha = wp.create_key("manager", workspace="alpha")
    _, beta = wp.create_key("member", workspace="beta")
    with wp.control(alpha) as client:
        slug = client.post(
            "/v1/configs",
            json={"name": "alpha-only", "config": {"provider": "openai", "api_key": "sk-alpha"}},
        ).json()["slug"]
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    for token, expected in ((alpha, 200), (beta, 400)):
        answer = httpx.post(
            wp.server.v1 + "/chat/completions",
            json=request,
            headers={"x-portkey-api-key": token, "x-portkey-config": slug, "Authorization": "Bearer sk-x"},
        )
        assert answer.status_code == expected, answer.text
    assert slug in answer.json()["message"] and "not found" in answer.json()["message"]


def test_a_saved_prompt_renders_only_for_its_workspace(wp: SecuredGateway) -> None:
    _, alpha = wp.create_key("manager", workspace="alpha")
    _, beta = wp.create_key("member", workspace="beta")
    with wp.control(alpha) as client:
        made = client.post("/v1/prompts", json={"name": "alpha-prompt", "string": "Hi {{name}}"})
    prompt_id = made.json()["id"]
    provider = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-x"}
    for token, expected in ((alpha, 200), (beta, 404)):
        answer = httpx.post(
            f"{wp.server.v1}/prompts/{prompt_id}/completions",
            json={"variables": {"name": "Ada"}, "model": "gpt-4o"},
            headers={**provider, "x-portkey-api-key": token},
        )
        assert answer.status_code == expected, answer.text
    assert prompt_id in answer.json()["message"]


def test_a_cached_answer_is_never_served_to_another_workspace(wp: SecuredGateway) -> None:
    _, alpha = wp.create_key("member", workspace="alpha")
    _, beta = wp.create_key("member", workspace="beta")
    config = '{"provider": "openai", "api_key": "sk-shared", "cache": {"mode": "simple"}}'
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "the same question"}]}

    def ask(token: str) -> str:
        answer = httpx.post(
            wp.server.v1 + "/chat/completions",
            json=request,
            headers={"x-portkey-api-key": token, "x-portkey-config": config},
        )
        assert answer.status_code == 200, answer.text
        return answer.headers["x-portkey-cache-status"]

    assert ask(alpha) == "MISS"
    deadline = time.monotonic() + 5
    while ask(alpha) != "HIT":  # the answer is stored in the background
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ask(beta) == "MISS"
