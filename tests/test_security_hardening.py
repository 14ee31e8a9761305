"""Hardening: oversized bodies and headers, deeply nested JSON, CORS, security headers, and
schemathesis against the control plane's OpenAPI schema (no 500s, no stack traces)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.conftest import emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.security_harness import SecuredGateway, secured
from wayport.control.app import OPENAPI_PATH


@pytest.fixture(scope="module")
def wp(openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredGateway]:
    settings = emulator_settings(
        openai_emulator, tmp_path_factory.mktemp("hardening"), max_body_bytes=256 * 1024
    )
    gateway = secured(settings)
    yield gateway
    gateway.server.stop()


def deep(levels: int) -> bytes:
    return b'{"name": "deep", "config": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"}"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/configs"])
def test_nesting_beyond_the_limit_is_a_400(wp: SecuredGateway, path: str) -> None:
    answer = httpx.post(
        wp.server.url + path,
        content=deep(5000),
        headers={
            "x-portkey-api-key": wp.admin,
            "x-portkey-provider": "openai",
            "content-type": "application/json",
        },
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["status"] == "failure"
    assert "nest" in answer.json()["message"] or "depth" in answer.json()["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/configs"])
def test_a_body_over_the_limit_is_a_413(wp: SecuredGateway, path: str) -> None:
    body = b'{"name": "' + b"x" * (300 * 1024) + b'"}'
    answer = httpx.post(
        wp.server.url + path,
        content=body,
        headers={
            "x-portkey-api-key": wp.admin,
            "x-portkey-provider": "openai",
            "content-type": "application/json",
        },
    )
    assert answer.status_code == 413
    assert "limit" in answer.json()["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/configs"])
def test_headers_over_the_limit_are_a_431(wp: SecuredGateway, path: str) -> None:
    answer = httpx.post(
        wp.server.url + path,
        json={},
        headers={"x-portkey-api-key": wp.admin, "x-portkey-metadata": '{"a": "' + "y" * 70_000 + '"}'},
    )
    assert answer.status_code == 431
    assert "header" in answer.json()["message"].lower()


def test_cors_is_off_and_control_answers_carry_security_headers(wp: SecuredGateway) -> None:
    preflight = httpx.options(
        wp.server.url + "/v1/configs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = httpx.get(wp.server.url + "/v1/api-keys", headers={"x-portkey-api-key": wp.admin})
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in answer.headers


# -- fuzzing the control plane -----------------------------------------------------------------------


def test_schemathesis_finds_no_server_errors(wp: SecuredGateway) -> None:
    """Every operation of the control plane's OpenAPI schema, fed generated input, never answers 5xx."""
    raw = httpx.get(wp.server.url + OPENAPI_PATH, headers={"x-portkey-api-key": wp.admin}).json()
    schema = schemathesis.openapi.from_dict(raw)
    headers = {"x-portkey-api-key": wp.admin}
    failures: list[str] = []
    calls = 0
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = operation.as_strategy()

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests on every run: CI stays reproducible
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=wp.server.url, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )
            assert "Traceback" not in response.text

        check()
    print(f"\nschemathesis: {calls} generated requests over {operations} operations")
    assert not failures, "\n".join(failures[:20])
