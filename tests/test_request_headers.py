"""The request headers of reference/portkey.md §2.1 and the response headers of §2.3."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
OPENAI = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-test"}


def post(
    gateway: GatewayServer, headers: dict[str, str], body: Any = CHAT, path: str = "/chat/completions"
) -> httpx.Response:
    return httpx.post(gateway.v1 + path, headers=headers, json=body, timeout=10)


def config_header(config: dict[str, Any]) -> dict[str, str]:
    return {"x-portkey-config": orjson.dumps(config).decode()}


def test_trace_id_is_generated_when_absent(gateway: GatewayServer) -> None:
    r = post(gateway, OPENAI)
    assert r.status_code == 200
    uuid.UUID(r.headers["x-portkey-trace-id"])


def test_response_headers_of_a_single_target(gateway: GatewayServer) -> None:
    r = post(gateway, {**OPENAI, "x-portkey-trace-id": "trace-123"})
    assert r.headers["x-portkey-trace-id"] == "trace-123"
    assert r.headers["x-portkey-provider"] == "openai"
    assert r.headers["x-portkey-retry-attempt-count"] == "0"
    assert r.headers["x-portkey-cache-status"] == "DISABLED"
    assert r.headers["x-portkey-last-used-option-index"] == "config"
    assert r.headers["x-request-id"] == "req_emu"  # provider headers are passed on


def test_unchanged_body_is_forwarded_byte_for_byte(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    raw = b'{"model":"gpt-4o",  "messages":[{"role":"user","content":"hi"}], "custom_field": {"a": 1}}'
    r = httpx.post(
        gateway.v1 + "/chat/completions", headers={**OPENAI, "content-type": "application/json"}, content=raw
    )
    assert r.status_code == 200
    assert openai_emulator.last.body == raw


def test_provider_key_from_authorization_and_gateway_key_stays_home(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    post(
        gateway,
        {**OPENAI, "x-portkey-api-key": "wp-gateway-key", "x-portkey-package-version": "portkey-2.3.4"},
    )
    seen = {k.lower(): v for k, v in openai_emulator.last.headers.items()}
    assert seen["authorization"] == "Bearer sk-test"
    assert "wp-gateway-key" not in str(seen)
    assert not any(k.startswith("x-portkey-") for k in seen)


def test_config_key_wins_over_the_sdk_placeholder(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = {
        **config_header({"provider": "openai", "api_key": "sk-from-config"}),
        "Authorization": "Bearer OPENAI_API_KEY",
        "x-portkey-api-key": "",
    }
    assert post(gateway, headers).status_code == 200
    assert openai_emulator.last.headers["Authorization"] == "Bearer sk-from-config"


def test_override_params_win_over_the_body(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    config = {
        "provider": "openai",
        "api_key": "k",
        "override_params": {"model": "gpt-4o-mini", "max_tokens": 64},
    }
    r = post(gateway, config_header(config), {**CHAT, "max_tokens": 5, "temperature": 0.5})
    assert r.json()["model"] == "gpt-4o-mini"
    sent = openai_emulator.last.json()
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 64 and sent["temperature"] == 0.5


def test_portkey_default_model_becomes_the_provider_default(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    post(gateway, OPENAI, {**CHAT, "model": "portkey-default"})
    assert openai_emulator.last.json()["model"] == "gpt-4o-mini"


def test_custom_host_header_replaces_the_base_url(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    r = post(
        gateway,
        {**OPENAI, "x-portkey-provider": "together-ai", "x-portkey-custom-host": openai_emulator.base_url},
    )
    assert r.status_code == 200
    assert openai_emulator.last.path == "/v1/chat/completions"


def test_forward_headers_copy_client_headers_upstream(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    post(
        gateway,
        {**OPENAI, "x-portkey-forward-headers": "x-tenant,x-missing", "x-tenant": "acme", "x-other": "no"},
    )
    seen = {k.lower(): v for k, v in openai_emulator.last.headers.items()}
    assert seen["x-tenant"] == "acme"
    assert "x-other" not in seen


def test_forward_headers_from_config(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    config = {"provider": "openai", "api_key": "k", "forward_headers": ["x-tenant"]}
    post(gateway, {**config_header(config), "x-tenant": "acme"})
    assert {k.lower(): v for k, v in openai_emulator.last.headers.items()}["x-tenant"] == "acme"


def test_request_timeout_gives_408_timeout_error(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(delay_s=1.0))
    r = post(gateway, {**OPENAI, "x-portkey-request-timeout": "200"})
    assert r.status_code == 408
    assert r.json() == {
        "error": {
            "message": "Request exceeded the timeout sent in the request: 200ms",
            "type": "timeout_error",
            "param": None,
            "code": None,
        }
    }


def test_request_timeout_from_config(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(delay_s=1.0))
    r = post(gateway, config_header({"provider": "openai", "api_key": "k", "request_timeout": 150}))
    assert r.status_code == 408
    assert "150ms" in r.json()["error"]["message"]


def test_openai_project_and_organization_headers(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    post(gateway, {**OPENAI, "x-portkey-openai-organization": "org-1", "x-portkey-openai-project": "proj-1"})
    seen = {k.lower(): v for k, v in openai_emulator.last.headers.items()}
    assert seen["openai-organization"] == "org-1" and seen["openai-project"] == "proj-1"


def test_strict_compliance_header_is_accepted(gateway: GatewayServer) -> None:
    assert post(gateway, {**OPENAI, "x-portkey-strict-open-ai-compliance": "false"}).status_code == 200


def test_metadata_header_is_accepted(gateway: GatewayServer) -> None:
    assert post(gateway, {**OPENAI, "x-portkey-metadata": '{"_user": "u1", "team": "a"}'}).status_code == 200


def test_compatible_provider_adds_the_provider_field(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    r = post(gateway, {**OPENAI, "x-portkey-provider": "groq"}, {**CHAT, "logprobs": True, "top_logprobs": 2})
    assert r.json()["provider"] == "groq"
    assert r.headers["x-portkey-provider"] == "groq"
    sent = openai_emulator.last.json()
    assert "logprobs" not in sent and "top_logprobs" not in sent  # Groq rejects them


def test_azure_deployment_url_and_api_key(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    config = {
        "provider": "azure-openai",
        "api_key": "azure-key",
        "resource_name": "r",
        "deployment_id": "dep-1",
        "api_version": "2024-06-01",
    }
    r = post(gateway, config_header(config))
    assert r.status_code == 200
    assert r.json()["provider"] == "azure-openai"
    last = openai_emulator.last
    assert last.path == "/openai/deployments/dep-1/chat/completions"
    assert last.query == "api-version=2024-06-01"
    assert last.headers["api-key"] == "azure-key"
    assert "Authorization" not in last.headers


def test_azure_from_headers(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    headers = {
        "x-portkey-provider": "azure-openai",
        "Authorization": "Bearer azure-key",
        "x-portkey-azure-resource-name": "r",
        "x-portkey-azure-deployment-id": "dep-2",
        "x-portkey-azure-api-version": "2024-10-21",
    }
    assert post(gateway, headers).status_code == 200
    assert openai_emulator.last.path == "/openai/deployments/dep-2/chat/completions"
    assert openai_emulator.last.headers["api-key"] == "azure-key"


def test_embeddings_and_completions_routes(gateway: GatewayServer) -> None:
    r = post(gateway, OPENAI, {"model": "text-embedding-3-small", "input": ["a", "b"]}, "/embeddings")
    assert [d["index"] for d in r.json()["data"]] == [0, 1]
    r = post(gateway, OPENAI, {"model": "gpt-3.5-turbo-instruct", "prompt": "Say"}, "/completions")
    assert r.json()["choices"][0]["text"] == "Echo: Say"


def test_models_and_passthrough(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    r = httpx.get(gateway.v1 + "/models", headers=OPENAI)
    assert r.status_code == 200 and "gpt-4o" in [m["id"] for m in r.json()["data"]]
    r = httpx.request(
        "PATCH",
        gateway.v1 + "/echo/things?limit=2",
        headers={**OPENAI, "x-portkey-trace-id": "t-9", "x-keep": "1"},
        content=b"raw-body",
    )
    echoed = r.json()
    assert (
        echoed["method"] == "PATCH" and echoed["path"] == "/v1/echo/things" and echoed["query"] == "limit=2"
    )
    assert echoed["body"] == "raw-body"
    seen = {k.lower(): v for k, v in echoed["headers"].items()}
    assert seen["authorization"] == "Bearer sk-test" and seen["x-keep"] == "1"
    assert not any(k.startswith("x-portkey-") for k in seen)
    assert r.headers["x-portkey-trace-id"] == "t-9"


def test_health(gateway: GatewayServer) -> None:
    r = httpx.get(gateway.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_a_cookie_a_provider_sets_never_reaches_another_request(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    answer = {"id": "x", "object": "chat.completion", "choices": [], "usage": None}
    openai_emulator.inject(Fault(status=200, json=answer, headers={"Set-Cookie": "session=alice; Path=/"}))
    # by name, not by IP address: a cookie jar ignores cookies of IP hosts
    host = openai_emulator.base_url.replace("127.0.0.1", "localhost")
    headers = {
        "x-portkey-provider": "openai",
        "Authorization": "Bearer sk-test",
        "x-portkey-custom-host": host,
    }
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        assert httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers).status_code == 200
    assert all("Cookie" not in r.headers and "cookie" not in r.headers for r in openai_emulator.requests)
