"""``wayport.create_headers`` produces exactly what portkey-ai's ``createHeaders`` produces."""

from __future__ import annotations

from typing import Any

import portkey_ai
import pytest

import wayport

CASES: list[dict[str, Any]] = [
    {},
    {"provider": "openai"},
    {
        "api_key": "wp-1",
        "config": {"provider": "openai", "api_key": "sk", "override_params": {"model": "gpt-4o"}},
    },
    {"config": "pc-abc123"},
    {"api_key": "", "virtual_key": None, "trace_id": "t-1"},
    {"metadata": {"_user": "u1", "n": 2}, "debug": False, "cache_force_refresh": True},
    {"metadata": {}},
    {"request_timeout": 5000, "strict_open_ai_compliance": False},
    {"Authorization": "sk-raw"},
    {"authorization": "Bearer sk-already"},
    {"forward_headers": ["x_tenant_id", "x-other"], "x_tenant_id": "acme", "other": "o"},
    {"custom_host": "http://127.0.0.1:8000/v1", "provider": "openai", "openai_project": "p"},
    {"mode": "fallback"},
    {"azure_resource_name": "r", "azure_deployment_id": "d", "azure_api_version": "2024-06-01"},
    {"aws_access_key_id": "AK", "aws_secret_access_key": "SK", "aws_region": "us-east-1"},
    {"cache_namespace": "ns", "span_id": "s1", "parent_span_id": "s0", "span_name": "step"},
    {"request_timeout": 0, "weight": 0.5},
]


@pytest.mark.parametrize("kwargs", CASES)
def test_create_headers_matches_portkey(kwargs: dict[str, Any]) -> None:
    assert wayport.create_headers(**kwargs) == dict(portkey_ai.createHeaders(**kwargs))


def test_aliases_and_gateway_url() -> None:
    assert wayport.createHeaders is wayport.create_headers
    assert wayport.GATEWAY_URL.endswith("/v1")
