"""The simple-cache key: what partitions the cache and what does not."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wayport.cache import cache_key

BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0.2,
}


def key(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "provider": "openai",
        "endpoint": "chatComplete",
        "params": BODY,
        "metadata": {},
        "namespace": None,
    }
    args.update(overrides)
    return cache_key(**args)


def test_the_same_request_has_the_same_key() -> None:
    assert key() == key(params=dict(BODY))
    assert len(key()) == 64 and int(key(), 16) >= 0


def test_key_order_does_not_matter() -> None:
    reordered = {"temperature": 0.2, "messages": BODY["messages"], "model": "gpt-4o-mini"}
    assert key(params=reordered) == key()


def test_stream_and_non_stream_requests_share_a_key() -> None:
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    assert key(params=streamed) == key()
    assert key(params={**BODY, "stream": False}) == key()


def test_every_other_parameter_is_part_of_the_key() -> None:
    assert key(params={**BODY, "temperature": 0.3}) != key()
    assert key(params={**BODY, "max_tokens": 10}) != key()
    assert key(params={**BODY, "user": "u1"}) != key()
    assert key(params={**BODY, "model": "gpt-4o"}) != key()
    other_message = {**BODY, "messages": [{"role": "user", "content": "What is the capital of Spain?"}]}
    assert key(params=other_message) != key()


def test_an_integral_float_and_an_int_are_the_same_value() -> None:
    assert key(params={**BODY, "temperature": 1.0}) == key(params={**BODY, "temperature": 1})


def test_provider_endpoint_and_target_partition_the_cache() -> None:
    assert key(provider="groq") != key()
    assert key(endpoint="complete") != key()
    assert key(target="https://a.example/v1") != key(target="https://b.example/v1")


def test_metadata_partitions_the_cache() -> None:
    assert key(metadata={"_user": "a"}) != key(metadata={"_user": "b"})
    assert key(metadata={"_user": "a", "env": "x"}) == key(metadata={"env": "x", "_user": "a"})


def test_a_namespace_replaces_the_metadata() -> None:
    assert key(namespace="team-a", metadata={"_user": "a"}) == key(
        namespace="team-a", metadata={"_user": "b"}
    )
    assert key(namespace="team-a") != key(namespace="team-b")
    assert key(namespace="team-a") != key()
    assert key(namespace="") == key()


def test_the_workspace_always_partitions_even_with_a_namespace() -> None:
    assert key(workspace="ws-1") != key(workspace="ws-2")
    assert key(namespace="n", workspace="ws-1") != key(namespace="n", workspace="ws-2")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_the_key_is_independent_of_insertion_order(params: dict[str, Any]) -> None:
    reversed_params = dict(reversed(list(params.items())))
    assert key(params=params) == key(params=reversed_params)
