"""The Config object: validation, camelCase, inheritance (reference/portkey.md §1)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayport.errors import ConfigError
from wayport.gateway.config import ConfigParser, Group, Leaf, to_snake_keys
from wayport.providers import ProviderRegistry
from wayport.security.ssrf import HostPolicy

REGISTRY = ProviderRegistry()


def parser() -> ConfigParser:
    return ConfigParser(REGISTRY.problem, HostPolicy(["127.0.0.1"]).check_url)


def errors_of(config: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parser().parse(config)
    assert info.value.status == 400
    return info.value.errors or [info.value.message]


# -- strategies for valid configs -------------------------------------------------------------

providers = st.sampled_from(["openai", "groq", "together-ai", "mistral-ai", "deepseek"])
keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).map(
    lambda s: "sk-" + s
)
params = st.dictionaries(
    st.sampled_from(["model", "temperature", "max_tokens", "top_p"]),
    st.one_of(st.integers(0, 1000), st.sampled_from(["gpt-4o", "gpt-4o-mini"])),
    max_size=3,
)
retry = st.fixed_dictionaries(
    {"attempts": st.integers(0, 5)},
    optional={
        "on_status_codes": st.lists(st.integers(400, 599), max_size=4),
        "use_retry_after_header": st.booleans(),
    },
)
leaf = st.fixed_dictionaries(
    {"provider": providers, "api_key": keys},
    optional={
        "override_params": params,
        "retry": retry,
        "request_timeout": st.integers(1, 60_000),
        "weight": st.floats(0, 10, allow_nan=False),
        "strict_open_ai_compliance": st.booleans(),
    },
)


def group(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "strategy": st.fixed_dictionaries(
                {"mode": st.sampled_from(["single", "fallback", "loadbalance"])},
                optional={"on_status_codes": st.lists(st.integers(400, 599), max_size=3)},
            ),
            "targets": st.lists(children, min_size=1, max_size=3),
        },
        optional={
            "override_params": params,
            "retry": retry,
            "cache": st.just({"mode": "simple", "max_age": 60}),
        },
    )


configs = st.recursive(leaf, group, max_leaves=6)


def camelize(value: Any) -> Any:
    verbatim = {"override_params"}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            head, *rest = k.split("_")
            out[head + "".join(p.title() for p in rest)] = v if k in verbatim else camelize(v)
        return out
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


def leaves(node: Leaf | Group) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    return [leaf for child in node.targets for leaf in leaves(child)]


@settings(max_examples=150, deadline=None)
@given(configs)
def test_valid_configs_parse_and_round_trip(config: dict[str, Any]) -> None:
    plan = parser().parse(config)
    again = parser().parse(orjson.loads(orjson.dumps(plan.source)))
    assert again.root == plan.root
    assert [leaf.provider for leaf in leaves(plan.root)] == _providers_in(config)


@settings(max_examples=100, deadline=None)
@given(configs)
def test_camel_case_spelling_gives_the_same_plan(config: dict[str, Any]) -> None:
    assert parser().parse(camelize(config)).root == parser().parse(config).root


def _providers_in(config: dict[str, Any]) -> list[str]:
    if "targets" in config:
        return [p for t in config["targets"] for p in _providers_in(t)]
    return [config["provider"]]


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"provider": "nope", "api_key": "k"}, "path: provider, message: Invalid provider passed: 'nope'"),
    (
        {"strategy": {"mode": "roundrobin"}, "targets": [{"provider": "openai", "api_key": "k"}]},
        "path: strategy,mode, message: Invalid 'mode' value. Must be one of: single, loadbalance, fallback, "
        "conditional",
    ),
    (
        {"retry": {"attempts": 6}},
        "path: retry,attempts, message: retry attempts must be between 0 and 5, got 6",
    ),
    ({"retry": {"attempts": "many"}}, "path: retry,attempts, message: Input should be a valid integer"),
    ({"cache": {"mode": "fuzzy"}}, "path: cache,mode, message: Input should be 'simple' or 'semantic'"),
    ({"request_timeout": -5}, "path: request_timeout, message: request_timeout must be a positive number"),
    (
        {
            "strategy": {"mode": "fallback"},
            "targets": [{"provider": "openai", "api_key": "k"}, {"weight": 2}],
        },
        "path: targets,1,provider, message: a target needs a 'provider'",
    ),
    (
        {"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai", "api_key": "k", "weight": -1}]},
        "path: targets,0,weight, message: weight must be zero or positive",
    ),
    (
        {"provider": "openai", "api_key": "k", "custom_host": "http://169.254.169.254/latest"},
        "path: custom_host, message: Invalid custom host:",
    ),
    (
        {"provider": "openai", "api_key": "k", "forward_headers": ["x-portkey-forward-headers"]},
        "forward_headers must not contain the 'x-portkey-forward-headers' header",
    ),
    ({"strategy": {"mode": "fallback"}}, "a 'strategy' needs a non-empty 'targets' list"),
    (
        {
            "strategy": {
                "mode": "conditional",
                "conditions": [{"query": {"metadata.plan": "paid"}, "then": "x"}],
            },
            "targets": [{"name": "y", "provider": "openai", "api_key": "k"}],
        },
        "Invalid target name found in the query router: x",
    ),
    ({}, "Invalid configuration. It must have either 'provider' and 'api_key'"),
]


@pytest.mark.parametrize(("config", "expected"), BAD_FIELDS)
def test_invalid_config_names_the_bad_field(config: dict[str, Any], expected: str) -> None:
    assert any(expected in e for e in errors_of(config)), errors_of(config)


@settings(max_examples=60, deadline=None)
@given(configs, st.sampled_from(["attempts", "mode", "provider"]))
def test_breaking_one_field_of_a_valid_config_reports_its_path(config: dict[str, Any], field: str) -> None:
    broken = orjson.loads(orjson.dumps(config))
    node, path = broken, []
    while "targets" in node:
        path += ["targets", "0"]
        node = node["targets"][0]
    if field == "attempts":
        node["retry"] = {"attempts": 99}
        path += ["retry", "attempts"]
    elif field == "mode" and "strategy" in broken:
        broken["strategy"]["mode"] = "random"
        path = ["strategy", "mode"]
    else:
        node["provider"] = "no-such-provider"
        path += ["provider"]
    assert any(e.startswith(f"path: {','.join(path)}, message:") for e in errors_of(broken))


def test_legacy_options_config_is_refused_with_portkeys_message() -> None:
    assert errors_of({"options": [{"provider": "openai"}], "mode": "single"}) == [
        "This version of config is not supported in this route. Please migrate to the latest version"
    ]


def test_header_that_is_not_json_is_refused() -> None:
    with pytest.raises(ConfigError, match="You need to pass a valid json"):
        parser().parse_header("{not json")


def test_same_header_value_is_parsed_once() -> None:
    p = parser()
    raw = '{"provider": "openai", "api_key": "sk-1"}'
    assert p.parse_header(raw) is p.parse_header(raw)


def test_inheritance_into_nested_targets() -> None:
    plan = parser().parse(
        {
            "strategy": {"mode": "loadbalance"},
            "request_timeout": 10000,
            "retry": {"attempts": 2},
            "override_params": {"temperature": 0, "model": "parent"},
            "targets": [
                {
                    "strategy": {"mode": "fallback"},
                    "override_params": {"model": "child"},
                    "targets": [
                        {"provider": "openai", "api_key": "k1"},
                        {"provider": "groq", "api_key": "k2"},
                    ],
                },
                {"provider": "groq", "api_key": "k3", "retry": {"attempts": 5, "on_status_codes": [429]}},
            ],
        }
    )
    first, second, third = leaves(plan.root)
    assert first.path == "config.targets[0].targets[0]"
    assert third.path == "config.targets[1]"
    assert first.override_params == {"temperature": 0, "model": "child"}  # shallow merge, child wins
    assert third.override_params == {"temperature": 0, "model": "parent"}
    assert first.request_timeout == second.request_timeout == third.request_timeout == 10000
    assert first.retry is not None and first.retry.attempts == 2
    assert first.retry.on_status_codes == {429, 500, 502, 503, 504, 529}
    assert third.retry is not None and third.retry.attempts == 5 and third.retry.on_status_codes == {429}
    assert first.api_key is not None and first.api_key.value == "k1"
    assert "k1" not in repr(first)  # secrets never show in reprs


def test_both_retry_after_spellings_are_accepted() -> None:
    for key in ("use_retry_after_header", "use_retry_after_headers"):
        plan = parser().parse({"provider": "openai", "api_key": "k", "retry": {"attempts": 1, key: True}})
        assert isinstance(plan.root, Leaf) and plan.root.retry is not None and plan.root.retry.use_retry_after


def test_override_params_children_are_kept_verbatim() -> None:
    assert to_snake_keys({"overrideParams": {"maxTokens": 5}, "apiKey": "k"}) == {
        "override_params": {"maxTokens": 5},
        "api_key": "k",
    }


def test_provider_options_are_kept_for_the_adapter() -> None:
    plan = parser().parse(
        {
            "provider": "azure-openai",
            "api_key": "k",
            "resourceName": "r",
            "deployment_id": "d",
            "api_version": "v",
        }
    )
    assert isinstance(plan.root, Leaf)
    assert plan.root.options == {"resource_name": "r", "deployment_id": "d", "api_version": "v"}


def test_invalid_config_over_http_is_a_400_with_errors(gateway: Any) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "openai", "api_key": "k"}, {"provider": "x"}],
    }
    r = httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"x-portkey-config": orjson.dumps(config).decode()},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "failure"
    assert body["message"] == "Invalid config passed"
    assert body["errors"][0].startswith("path: targets,1,provider, message: Invalid provider passed: 'x'")
    assert r.headers["x-portkey-trace-id"]
