"""Bedrock through Wayport: the issue's config driven by LlamaIndex and the openai SDK against the
Bedrock emulator (which checks every SigV4 signature with botocore), plus the pure translation
functions of requests, answers, streams and errors."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import orjson
import portkey_ai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from tests.conftest import GatewayServer
from tests.emulators.bedrock import (
    ACCESS_KEY_ID,
    API_KEY,
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    SECRET_ACCESS_KEY,
    SESSION_ACCESS_KEY_ID,
    SESSION_SECRET,
    SESSION_TOKEN,
    STRING,
    BedrockEmulator,
    BedrockFault,
    corrupt,
    encode_frame,
    event_frame,
    exception_frame,
)
from wayport.errors import BadRequest, ProviderError
from wayport.gateway.http1 import HTTPClient
from wayport.gateway.retry import RetryRunner
from wayport.providers.base import Endpoint, FanOut, Secret, Target, UpstreamRequest
from wayport.providers.bedrock import BedrockAdapter, model_segment, wire_path
from wayport.providers.bedrock_converse import chat_response, converse_request, converse_usage, finish_reason
from wayport.providers.bedrock_stream import ConverseStreamTranslator
from wayport.settings import Settings

MODEL = "anthropic.claude-3-sonnet-20240229-v1:0"
CONFIG: dict[str, Any] = {
    "provider": "bedrock",
    "aws_access_key_id": ACCESS_KEY_ID,
    "aws_secret_access_key": SECRET_ACCESS_KEY,
    "aws_region": "us-east-1",
    "override_params": {"model": MODEL},
}
QUESTION = "What is your name"
PROMPT = "Paul Graham is "
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture(scope="module")
def bedrock() -> Iterator[BedrockEmulator]:
    emulator = BedrockEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(autouse=True)
def _fresh_bedrock(bedrock: BedrockEmulator) -> None:
    bedrock.reset()


@pytest.fixture(scope="module")
def bedrock_gateway(
    bedrock: BedrockEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = Settings(
        auth=False,
        data_dir=tmp_path_factory.mktemp("wayport-bedrock"),
        base_urls={"bedrock": bedrock.url},
        trusted_hosts=("127.0.0.1", "localhost"),
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.05)).start()
    yield server
    server.stop()


def headers_for(config: dict[str, Any], **extra: str) -> dict[str, str]:
    return {**portkey_ai.createHeaders(api_key="wp-gateway-key", config=config), **extra}


def make_llm(gateway: GatewayServer, **kwargs: Any) -> OpenAI:
    return OpenAI(
        model="gpt-4o",
        api_key="unused",
        api_base=gateway.v1,
        default_headers=headers_for(CONFIG),
        max_retries=0,
        **kwargs,
    )


def client(gateway: GatewayServer, config: dict[str, Any] | None = None, **extra: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="unused",
        base_url=gateway.v1,
        default_headers=headers_for(config or CONFIG, **extra),
        max_retries=0,
    )


def assert_signed_converse(bedrock: BedrockEmulator, *, stream: bool) -> dict[str, Any]:
    """The last call went to Converse for the config's model, signed with SigV4 (the emulator
    verified the signature), with nothing of the client's own keys."""
    recorded = bedrock.last
    operation = "converse-stream" if stream else "converse"
    assert (recorded.method, recorded.path) == ("POST", f"/model/{MODEL}/{operation}")
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in headers["authorization"]
    values = " ".join(headers.values())
    assert "unused" not in values and "wp-gateway-key" not in values
    assert not [name for name in headers if name.startswith("x-portkey-")]
    body: dict[str, Any] = recorded.json()
    return body


# -- LlamaIndex with the config ---------------------------------------------------------


def test_llamaindex_chat(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    response = make_llm(bedrock_gateway).chat(
        [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=QUESTION)]
    )

    assert response.message.content == f"Echo: {QUESTION}"
    body = assert_signed_converse(bedrock, stream=False)
    assert body["system"] == [{"text": "Be brief."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]


def test_llamaindex_stream_chat(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    responses = list(make_llm(bedrock_gateway).stream_chat([ChatMessage(role="user", content=QUESTION)]))

    deltas = [r.delta or "" for r in responses]
    assert len([d for d in deltas if d]) >= 3
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert_signed_converse(bedrock, stream=True)


def test_llamaindex_complete(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    response = make_llm(bedrock_gateway).complete(PROMPT)

    assert response.text == f"Echo: {PROMPT}"
    assert assert_signed_converse(bedrock, stream=False)["messages"][0]["content"] == [{"text": PROMPT}]


def test_llamaindex_stream_complete(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    responses = list(make_llm(bedrock_gateway).stream_complete(PROMPT))

    assert "".join(r.delta or "" for r in responses) == f"Echo: {PROMPT}"
    assert_signed_converse(bedrock, stream=True)


@pytest.fixture
async def allm(bedrock_gateway: GatewayServer) -> AsyncIterator[OpenAI]:
    async with httpx.AsyncClient() as http:
        yield make_llm(bedrock_gateway, async_http_client=http)


async def test_llamaindex_astream_chat(allm: OpenAI, bedrock: BedrockEmulator) -> None:
    responses = [r async for r in await allm.astream_chat([ChatMessage(role="user", content=QUESTION)])]

    assert "".join(r.delta or "" for r in responses) == f"Echo: {QUESTION}"
    assert_signed_converse(bedrock, stream=True)


async def test_llamaindex_achat(allm: OpenAI, bedrock: BedrockEmulator) -> None:
    response = await allm.achat([ChatMessage(role="user", content=QUESTION)])

    assert response.message.content == f"Echo: {QUESTION}"
    assert_signed_converse(bedrock, stream=False)


# -- auth variants ------------------------------------------------------------------------------


def test_aws_settings_as_portkey_headers(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    response = httpx.post(
        bedrock_gateway.v1 + "/chat/completions",
        headers={
            "x-portkey-provider": "bedrock",
            "x-portkey-aws-access-key-id": ACCESS_KEY_ID,
            "x-portkey-aws-secret-access-key": SECRET_ACCESS_KEY,
            "x-portkey-aws-region": "us-east-1",
        },
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"
    assert response.json()["provider"] == "bedrock"


def test_session_token_is_signed(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    config = {
        **CONFIG,
        "aws_access_key_id": SESSION_ACCESS_KEY_ID,
        "aws_secret_access_key": SESSION_SECRET,
        "aws_session_token": SESSION_TOKEN,
    }
    answer = client(bedrock_gateway, config).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "Echo: hi"
    headers = {k.lower(): v for k, v in bedrock.last.headers.items()}
    assert headers["x-amz-security-token"] == SESSION_TOKEN
    assert "x-amz-security-token" in headers["authorization"]


def test_temporary_keys_without_their_token_are_refused(bedrock_gateway: GatewayServer) -> None:
    config = {**CONFIG, "aws_access_key_id": SESSION_ACCESS_KEY_ID, "aws_secret_access_key": SESSION_SECRET}
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(bedrock_gateway, config).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert "bedrock error: The security token included in the request is invalid." in str(caught.value)


def test_wrong_secret_is_a_403_signature_mismatch(bedrock_gateway: GatewayServer) -> None:
    config = {**CONFIG, "aws_secret_access_key": "not-the-secret"}
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(bedrock_gateway, config).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 403
    assert "bedrock error: The request signature we calculated does not match" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


def test_bedrock_api_key_is_sent_as_bearer(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    config = {"provider": "bedrock", "api_key": API_KEY, "override_params": {"model": MODEL}}
    answer = client(bedrock_gateway, config).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "Echo: hi"
    headers = {k.lower(): v for k, v in bedrock.last.headers.items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert "x-amz-date" not in headers


def test_arn_model_id_travels_as_one_segment_and_verifies(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-v1:0"
    config = {**CONFIG, "override_params": {"model": arn}}
    answer = client(bedrock_gateway, config).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "Echo: hi"
    assert bedrock.last.path == (
        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-3-7-sonnet-v1:0"
        "/converse"
    )


def test_missing_region_names_the_config_field_and_header(bedrock_gateway: GatewayServer) -> None:
    adapter = BedrockAdapter()
    target = Target("bedrock", None, {"aws_access_key_id": "a", "aws_secret_access_key": "b"})
    with pytest.raises(BadRequest, match=r"'aws_region'.*x-portkey-aws-region"):
        adapter.build_request(Endpoint.CHAT, target, {"model": MODEL, "messages": [{"role": "user"}]}, None)
    # and through the gateway, as a 400
    config = {k: v for k, v in CONFIG.items() if k != "aws_region"}
    # the emulator URL replaces the host, but SigV4 still needs the region for its scope
    with pytest.raises(openai.BadRequestError) as caught:
        client(bedrock_gateway, config).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert "x-portkey-aws-region" in str(caught.value)


def test_missing_credentials_name_the_fields_and_headers() -> None:
    adapter = BedrockAdapter()
    params = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(BadRequest, match="aws_access_key_id.*x-portkey-aws-access-key-id"):
        adapter.build_request(
            Endpoint.CHAT, Target("bedrock", None, {"aws_region": "us-east-1"}), params, None
        )
    with pytest.raises(BadRequest, match="'aws_secret_access_key'.*x-portkey-aws-secret-access-key"):
        adapter.build_request(
            Endpoint.CHAT,
            Target("bedrock", None, {"aws_region": "us-east-1", "aws_access_key_id": "AKID"}),
            params,
            None,
        )


def test_public_url_and_signed_host_follow_the_region() -> None:
    target = Target(
        "bedrock",
        None,
        {"aws_access_key_id": "AKID", "aws_secret_access_key": "s", "aws_region": "eu-west-3"},
    )
    request = BedrockAdapter().build_request(
        Endpoint.CHAT, target, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, None
    )
    assert isinstance(request, UpstreamRequest)
    assert request.url == f"https://bedrock-runtime.eu-west-3.amazonaws.com/model/{MODEL}/converse"
    assert request.headers["host"] == "bedrock-runtime.eu-west-3.amazonaws.com"
    assert "/eu-west-3/bedrock/aws4_request" in request.headers["authorization"]


def test_aws_keys_win_over_the_request_bearer_unless_api_key_auth_is_asked() -> None:
    options = {"aws_access_key_id": "AKID", "aws_secret_access_key": "s", "aws_region": "us-east-1"}
    params = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    signed = BedrockAdapter().build_request(
        Endpoint.CHAT, Target("bedrock", Secret("unused"), options), params, None
    )
    bearer = BedrockAdapter().build_request(
        Endpoint.CHAT, Target("bedrock", Secret("k"), {**options, "aws_auth_type": "apiKey"}), params, None
    )
    assert isinstance(signed, UpstreamRequest) and isinstance(bearer, UpstreamRequest)
    assert signed.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert bearer.headers["authorization"] == "Bearer k"


# -- tools ---------------------------------------------------------------------------------------


def test_parallel_tool_calls_then_tool_results(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator
) -> None:
    sdk = client(bedrock_gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather and time in Paris?"}]
    first = sdk.chat.completions.create(model="x", messages=messages, tools=TOOLS, tool_choice="auto")

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"q": 0}, {"q": 1}]
    sent = bedrock.last.json()
    assert sent["toolConfig"]["toolChoice"] == {"auto": {}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"] == {
        "name": "get_weather",
        "inputSchema": {"json": TOOLS[0]["function"]["parameters"]},
        "description": "Weather of a city",
    }

    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
    ]
    second = sdk.chat.completions.create(model="x", messages=messages, tools=TOOLS)

    assert second.choices[0].message.content == "Echo: tool results: 18C noon"
    sent = bedrock.last.json()
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": calls[0].id, "content": [{"text": "18C"}]}},
        {"toolResult": {"toolUseId": calls[1].id, "content": [{"text": "noon"}]}},
    ]
    assert sent["messages"][1]["content"][0]["toolUse"]["input"] == {"q": 0}


def test_streamed_parallel_tool_calls(bedrock_gateway: GatewayServer) -> None:
    stream = client(bedrock_gateway).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "both"}], tools=TOOLS, stream=True
    )
    chunks = list(stream)

    fragments: dict[int, list[Any]] = {}
    for chunk in chunks:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            fragments.setdefault(call.index, []).append(call)
    assert sorted(fragments) == [0, 1]
    for index, parts in fragments.items():
        assert parts[0].id == f"tooluse_{index}{TOOLS[index]['function']['name']}"
        assert parts[0].function.name == TOOLS[index]["function"]["name"]
        assert all(p.id is None and p.function.name is None for p in parts[1:])
        assert orjson.loads("".join(p.function.arguments or "" for p in parts)) == {"q": index}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len({c.id for c in chunks}) == 1


def test_named_tool_choice_and_required(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    sdk = client(bedrock_gateway)
    answer = sdk.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "time?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in answer.choices[0].message.tool_calls or []] == ["get_time"]
    assert bedrock.last.json()["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}

    sdk.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="required"
    )
    assert bedrock.last.json()["toolConfig"]["toolChoice"] == {"any": {}}


def test_tool_choice_none_keeps_history_valid(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator
) -> None:
    sdk = client(bedrock_gateway)
    sdk.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="none"
    )
    assert "toolConfig" not in bedrock.last.json()

    history: list[Any] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    answer = sdk.chat.completions.create(model="x", messages=history, tools=TOOLS, tool_choice="none")
    assert answer.choices[0].message.content == "Echo: tool results: 18C"
    config = bedrock.last.json()["toolConfig"]
    assert "toolChoice" not in config and len(config["tools"]) == 2
    # with no tools at all, the ones used in the history are declared so Converse accepts it
    answer = sdk.chat.completions.create(model="x", messages=history)
    assert [t["toolSpec"]["name"] for t in bedrock.last.json()["toolConfig"]["tools"]] == ["get_weather"]


# -- request mapping -----------------------------------------------------------------------------


def test_images_are_sent_as_bytes(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    answer = client(bedrock_gateway).chat.completions.create(
        model="x",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            }
        ],
    )
    assert answer.choices[0].message.content == "Echo: What is this?"
    assert bedrock.last.json()["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PNG.split(",", 1)[1]}}
    }


def test_remote_image_urls_are_refused_with_a_reason(bedrock_gateway: GatewayServer) -> None:
    with pytest.raises(openai.BadRequestError, match="data URLs"):
        client(bedrock_gateway).chat.completions.create(
            model="x",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
            ],
        )


def test_sampling_and_limits(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    answer = client(bedrock_gateway).chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "one two three four five six"}],
        max_completion_tokens=3,
        temperature=1.5,
        top_p=0.5,
        stop=["never"],
        seed=7,
        user="user-1",
        extra_body={"top_k": 40},
    )
    sent = bedrock.last.json()
    assert sent["inferenceConfig"] == {
        "maxTokens": 3,
        "temperature": 1.0,
        "topP": 0.5,
        "stopSequences": ["never"],
    }
    assert sent["additionalModelRequestFields"] == {"top_k": 40}
    assert sent["requestMetadata"] == {"user": "user-1"}
    assert "seed" not in orjson.dumps(sent).decode()
    assert answer.choices[0].finish_reason == "length"
    assert answer.choices[0].message.content == "Echo: one two"


def test_response_format(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    sdk = client(bedrock_gateway)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    sdk.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "json"}],
        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}},
    )
    assert bedrock.last.json()["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": orjson.dumps(schema).decode(), "name": "thing"}},
        }
    }
    sdk.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "json"}], response_format={"type": "json_object"}
    )
    assert "JSON object" in bedrock.last.json()["system"][-1]["text"]


# -- answers: usage, finish reasons, thinking ----------------------------------------------------


def test_usage_adds_up_with_cache_tokens(bedrock_gateway: GatewayServer) -> None:
    answer = client(bedrock_gateway).chat.completions.create(
        model="x",
        messages=[
            {
                "role": "system",
                "content": [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "user", "content": "hi there"},
        ],
    )
    usage = answer.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == CACHE_READ_TOKENS
    assert usage.model_dump()["prompt_tokens_details"]["cache_creation_tokens"] == CACHE_WRITE_TOKENS
    # inputTokens counts "hi there Long context" (4) apart from the cache reads and writes
    assert usage.prompt_tokens == 4 + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS


def post_chat(gateway: GatewayServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions", headers=headers_for(CONFIG, **headers), json=body, timeout=10
    )


def test_strict_and_raw_finish_reasons(bedrock_gateway: GatewayServer) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    assert post_chat(bedrock_gateway, body).json()["choices"][0]["finish_reason"] == "stop"
    raw = post_chat(bedrock_gateway, body, **{"x-portkey-strict-open-ai-compliance": "false"})
    assert raw.json()["choices"][0]["finish_reason"] == "end_turn"


def test_non_strict_answers_carry_thinking_blocks(bedrock_gateway: GatewayServer) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled"}}
    raw = post_chat(bedrock_gateway, body, **{"x-portkey-strict-open-ai-compliance": "false"}).json()
    message = raw["choices"][0]["message"]
    assert message["content"] == "Echo: hi"
    assert message["content_blocks"][0] == {
        "type": "thinking",
        "thinking": "Thinking it over.",
        "signature": "sig-1",
    }
    strict = post_chat(bedrock_gateway, body).json()
    assert "content_blocks" not in strict["choices"][0]["message"]


def test_malformed_output_is_an_error_not_a_stop(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator
) -> None:
    bedrock.inject(BedrockFault(stop_reason="malformed_tool_use"))
    with pytest.raises(openai.APIStatusError) as caught:
        client(bedrock_gateway).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502
    assert "malformed_tool_use" in str(caught.value)


# -- streams ------------------------------------------------------------------------------------


def stream_body(include_usage: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "x", "messages": [{"role": "user", "content": "a b c"}], "stream": True}
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    return body


def sse_events(response: httpx.Response) -> list[Any]:
    return [
        line[6:] if line[6:] == "[DONE]" else orjson.loads(line[6:])
        for line in response.text.split("\n")
        if line.startswith("data: ")
    ]


def test_stream_usage_only_when_asked(bedrock_gateway: GatewayServer) -> None:
    with_usage = sse_events(post_chat(bedrock_gateway, stream_body(True)))
    assert with_usage[-1] == "[DONE]"
    usage_chunk = with_usage[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert with_usage[-3]["choices"][0]["finish_reason"] == "stop"
    assert all(e["usage"] is None for e in with_usage[:-2])
    assert with_usage[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}

    without = sse_events(post_chat(bedrock_gateway, stream_body(None)))
    assert without[-1] == "[DONE]"
    assert all("usage" not in e for e in without[:-1])
    assert without[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_raw_finish_reason(bedrock_gateway: GatewayServer) -> None:
    events = sse_events(
        post_chat(bedrock_gateway, stream_body(None), **{"x-portkey-strict-open-ai-compliance": "false"})
    )
    assert events[-2]["choices"][0]["finish_reason"] == "end_turn"


@pytest.mark.parametrize(
    ("fault", "messages"),
    [
        (
            BedrockFault(stream_events=3, exception="throttlingException"),
            ("bedrock error: Too many requests",),
        ),
        (
            BedrockFault(
                stream_events=3, exception="modelStreamErrorException", exception_message="Model stream broke"
            ),
            ("bedrock error: Model stream broke",),
        ),
        (BedrockFault(stream_events=3, corrupt_crc=True), ("event stream from Bedrock is corrupted",)),
        # the gateway may see the reset before EOF: either way the client gets an error
        (BedrockFault(stream_events=3, cut=True), ("before the answer was complete", "broke mid-stream")),
    ],
    ids=["exception-frame", "model-stream-error", "crc", "cut"],
)
def test_mid_stream_failures_raise_in_the_sdk(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator, fault: BedrockFault, messages: tuple[str, ...]
) -> None:
    bedrock.inject(fault)
    stream = client(bedrock_gateway).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received).startswith("Echo: one")
    assert any(message in str(caught.value) for message in messages), str(caught.value)


def test_stream_error_status_is_translated(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    bedrock.inject(
        BedrockFault(
            status=429,
            json={"message": "Too many requests, please wait before trying again."},
            headers={"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"},
        )
    )
    with pytest.raises(openai.RateLimitError) as caught:
        list(
            client(bedrock_gateway).chat.completions.create(
                model="x", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert caught.value.status_code == 429
    assert caught.value.body == {
        "message": "bedrock error: Too many requests, please wait before trying again.",
        "type": "ThrottlingException",
        "param": None,
        "code": None,
    }


def test_validation_error_from_bedrock(bedrock_gateway: GatewayServer) -> None:
    # an assistant turn first: Converse refuses it, and the refusal is passed on as a 400
    with pytest.raises(openai.BadRequestError) as caught:
        client(bedrock_gateway).chat.completions.create(
            model="x", messages=[{"role": "assistant", "content": "hello"}]
        )
    assert "bedrock error: A conversation must start with a user message" in str(caught.value)


# -- Titan embeddings --------------------------------------------------------------------------

TITAN = {**CONFIG, "override_params": {"model": "amazon.titan-embed-text-v2:0"}}


def test_titan_embeddings_fan_out_one_call_per_input(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator
) -> None:
    sdk = client(bedrock_gateway, TITAN)
    result = sdk.embeddings.create(model="x", input=["alpha", "beta gamma", "delta"], dimensions=256)

    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(d.embedding) == 256 for d in result.data)
    assert result.usage.prompt_tokens == result.usage.total_tokens == 1 + 2 + 1
    assert sorted(r.json()["inputText"] for r in bedrock.requests) == ["alpha", "beta gamma", "delta"]
    assert {r.path for r in bedrock.requests} == {"/model/amazon.titan-embed-text-v2:0/invoke"}
    by_text = {r.json()["inputText"]: r for r in bedrock.requests}
    one = sdk.embeddings.create(model="x", input="beta gamma", dimensions=256)
    assert one.data[0].embedding == result.data[1].embedding
    assert by_text["beta gamma"].json() == {"inputText": "beta gamma", "dimensions": 256}


def test_titan_embeddings_as_base64(bedrock_gateway: GatewayServer) -> None:
    raw = httpx.post(
        bedrock_gateway.v1 + "/embeddings",
        headers=headers_for(TITAN),
        json={"model": "x", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 256},
        timeout=10,
    ).json()
    floats = client(bedrock_gateway, TITAN).embeddings.create(
        model="x", input="a", dimensions=256, encoding_format="float"
    )
    decoded = struct.unpack("<256f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_one_failed_titan_call_fails_the_request(
    bedrock_gateway: GatewayServer, bedrock: BedrockEmulator
) -> None:
    bedrock.inject(
        BedrockFault(
            status=400,
            json={"Message": "Malformed input request"},
            headers={"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/"},
        )
    )
    with pytest.raises(openai.BadRequestError, match="bedrock error: Malformed input request"):
        client(bedrock_gateway, TITAN).embeddings.create(model="x", input=["a", "b"])


# -- pure translations --------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), texts), min_size=1, max_size=10))
def test_any_text_conversation_translates_without_losing_text(turns: list[tuple[str, str]]) -> None:
    body = converse_request({"messages": [{"role": role, "content": text} for role, text in turns]})

    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))  # alternating after merging
    assert [b["text"] for m in body["messages"] for b in m["content"]] == [text for _, text in turns]
    assert roles[0] == turns[0][0]


def test_system_and_developer_messages_are_hoisted_in_order() -> None:
    body = converse_request(
        {
            "messages": [
                {"role": "system", "content": "one"},
                {"role": "user", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "two"}]},
                {"role": "user", "content": "again"},
            ]
        }
    )
    assert body["system"] == [{"text": "one"}, {"text": "two"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi"}, {"text": "again"}]}]


def test_tool_ids_from_elsewhere_are_made_acceptable_consistently() -> None:
    odd = "call/with spaces#1"
    body = converse_request(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": odd, "type": "function", "function": {"name": "f", "arguments": ""}}
                    ],
                },
                {"role": "tool", "tool_call_id": odd, "content": ""},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
    )
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] == "call_with_spaces_1"
    assert use["input"] == {}
    assert result["content"] == []  # Converse refuses an empty text block
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object", "properties": {}}
    }


def test_invalid_tool_arguments_are_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        converse_request(
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
                        ],
                    },
                ]
            }
        )


@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.none() | st.integers(0, 10**6),
    st.none() | st.integers(0, 10**6),
)
def test_usage_always_adds_up(inp: int, out: int, read: int | None, write: int | None) -> None:
    raw: dict[str, Any] = {"inputTokens": inp, "outputTokens": out}
    if read is not None:
        raw["cacheReadInputTokens"] = read
    if write is not None:
        raw["cacheWriteInputTokens"] = write
    usage = converse_usage(raw)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == inp + (read or 0) + (write or 0)
    assert usage["prompt_tokens_details"]["cached_tokens"] == (read or 0)


@pytest.mark.parametrize(
    ("reason", "strict_value"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_finish_reason_map(reason: str, strict_value: str) -> None:
    assert finish_reason(reason, strict=True) == strict_value
    assert finish_reason(reason, strict=False) == reason


def test_answer_with_text_and_tool_use() -> None:
    data = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_Ab12",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 25, "outputTokens": 40, "totalTokens": 65},
    }
    answer = chat_response(data, {"model": MODEL}, strict=True)
    message = answer["choices"][0]["message"]
    assert message["content"] == "Checking."
    assert message["tool_calls"] == [
        {
            "id": "tooluse_Ab12",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert answer["model"] == MODEL and answer["provider"] == "bedrock"
    assert answer["usage"]["total_tokens"] == 65
    with pytest.raises(ProviderError):
        chat_response({**data, "stopReason": "malformed_model_output"}, {"model": MODEL}, strict=False)


@pytest.mark.parametrize(
    ("headers", "body", "expected_type", "expected_message"),
    [
        (
            {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
            b'{"message":"Too many requests"}',
            "ThrottlingException",
            "Too many requests",
        ),
        (
            {},
            b'{"Message":"Bad input","__type":"com.amazon#ValidationException"}',
            "ValidationException",
            "Bad input",
        ),
        (
            {},
            b"<html>Bad gateway</html>",
            None,
            "Invalid response received from bedrock: <html>Bad gateway</html>",
        ),
    ],
)
def test_error_translation(
    headers: dict[str, str], body: bytes, expected_type: str | None, expected_message: str
) -> None:
    error = orjson.loads(BedrockAdapter().translate_error(400, body, headers))
    assert error["provider"] == "bedrock"
    assert error["error"]["type"] == expected_type
    assert error["error"]["message"] == f"bedrock error: {expected_message}"


# -- the stream translator on its own -------------------------------------------------------------

STREAM = b"".join(
    [
        event_frame("messageStart", {"role": "assistant"}, 8),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Check"}}, 3),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ing."}}, 2),
        event_frame("contentBlockStop", {"contentBlockIndex": 0}, 1),
        event_frame(
            "contentBlockStart",
            {
                "contentBlockIndex": 1,
                "start": {"toolUse": {"toolUseId": "tooluse_Ab12", "name": "get_weather"}},
            },
            4,
        ),
        event_frame(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}}, 2
        ),
        event_frame(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}, 1
        ),
        event_frame("contentBlockStop", {"contentBlockIndex": 1}, 3),
        event_frame("messageStop", {"stopReason": "tool_use"}, 6),
        event_frame("metadata", {"usage": {"inputTokens": 25, "outputTokens": 40, "totalTokens": 65}}, 2),
    ]
)
USAGE_PARAMS = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True}}


def run_translator(data: bytes, cuts: list[int], params: dict[str, Any] = USAGE_PARAMS) -> list[Any]:
    translator = ConverseStreamTranslator(params, strict=True)
    out = b""
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        out += translator.feed(data[start:cut])
        start = cut
    out += translator.close()
    events: list[Any] = []
    for block in out.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[6:]
            events.append(payload if payload == "[DONE]" else orjson.loads(payload))
    return events


def comparable(events: list[Any]) -> list[Any]:
    return [
        e if e == "[DONE]" else {k: v for k, v in e.items() if k not in ("id", "created")} for e in events
    ]


def test_reference_event_sequence_translates() -> None:
    events = run_translator(STREAM, [])

    deltas = [e["choices"][0]["delta"] for e in events[:-2]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d.get("content") for d in deltas[1:3]] == ["Check", "ing."]
    assert deltas[3] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "tooluse_Ab12",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    assert [d["tool_calls"][0]["function"]["arguments"] for d in deltas[4:6]] == ['{"city":', '"Paris"}']
    assert events[6]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[7]["usage"]["total_tokens"] == 65 and events[7]["choices"] == []
    assert events[8] == "[DONE]"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_stream_translation_does_not_depend_on_read_boundaries(cuts: list[int]) -> None:
    assert comparable(run_translator(STREAM, cuts)) == comparable(run_translator(STREAM, []))


def test_a_crc_error_ends_the_stream_with_an_error_after_the_good_frames() -> None:
    first = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ok"}})
    events = run_translator(first + corrupt(first) + STREAM, [])
    assert events[1]["choices"][0]["delta"] == {"content": "ok"}
    assert "corrupted" in events[2]["error"]["message"]
    assert events[-1] == "[DONE]" and len(events) == 4  # role, ok, error, [DONE]


def test_exception_frame_becomes_an_error_event() -> None:
    first = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ok"}})
    events = run_translator(first + exception_frame("internalServerException", "boom") + STREAM, [])
    assert events[2]["error"] == {
        "message": "bedrock error: boom",
        "type": "internalServerException",
        "param": None,
        "code": None,
    }
    assert events[-1] == "[DONE]" and len(events) == 4  # role, ok, error, [DONE]


def test_a_stream_without_message_stop_is_an_error() -> None:
    first = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ok"}})
    events = run_translator(first, [])
    assert "before the answer was complete" in events[-2]["error"]["message"]


def test_embedding_fan_out_request_shape() -> None:
    target = Target(
        "bedrock",
        None,
        {"aws_access_key_id": "AKID", "aws_secret_access_key": "s", "aws_region": "us-east-1"},
    )
    fan = BedrockAdapter().build_request(
        Endpoint.EMBED, target, {"model": "amazon.titan-embed-text-v1", "input": ["a", "b"]}, None
    )
    assert isinstance(fan, FanOut) and len(fan.requests) == 2
    combined = orjson.loads(
        fan.combine(
            [b'{"embedding":[0.5],"inputTextTokenCount":2}', b'{"embedding":[0.25],"inputTextTokenCount":3}']
        )
    )
    assert combined["data"] == [
        {"object": "embedding", "index": 0, "embedding": [0.5]},
        {"object": "embedding", "index": 1, "embedding": [0.25]},
    ]
    assert combined["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    with pytest.raises(BadRequest, match="Titan"):
        BedrockAdapter().build_request(
            Endpoint.EMBED, target, {"model": "cohere.embed-v3", "input": "a"}, None
        )


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_the_url_is_sent_exactly_as_signed(model: str) -> None:
    """The path we sign is the path the upstream client writes on the request line."""
    if model in (".", "..") or "/./" in f"/{model}/" or "/../" in f"/{model}/":
        with pytest.raises(BadRequest, match="not a valid bedrock model id"):
            wire_path("/model/" + model + "/x")
        return
    client = HTTPClient(limit=1, connect_timeout_s=1)
    path = f"/model/{model_segment(model)}/converse"
    assert client.request_target(f"http://127.0.0.1:9{path}") == path
    proxied = wire_path("/model/" + model.replace("/", "%2F") + "/x")
    assert client.request_target("http://127.0.0.1:9" + proxied) == proxied


def test_region_is_read_from_a_bedrock_custom_host() -> None:
    target = Target(
        "bedrock",
        None,
        {"aws_access_key_id": "AKID", "aws_secret_access_key": "s"},
        custom_host="https://bedrock-runtime.eu-central-1.amazonaws.com",
    )
    request = BedrockAdapter().build_request(
        Endpoint.CHAT, target, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, None
    )
    assert isinstance(request, UpstreamRequest)
    assert request.url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/model/")
    assert "/eu-central-1/bedrock/aws4_request" in request.headers["authorization"]


def test_passthrough_auth() -> None:
    keys = {"aws_access_key_id": "AKID", "aws_secret_access_key": "s", "aws_region": "us-east-1"}
    adapter = BedrockAdapter()
    url, headers = adapter.proxy_request(
        Target("bedrock", Secret("k"), {"aws_region": "us-east-1"}), "POST", "/x"
    )
    assert (url, headers) == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/x",
        {"authorization": "Bearer k"},
    )
    url, headers = adapter.proxy_request(Target("bedrock", None, keys), "GET", "/async-invoke?maxResults=5")
    assert url == "https://bedrock-runtime.us-east-1.amazonaws.com/async-invoke?maxResults=5"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    body = b'{"inputText": "hi"}'
    url, headers = adapter.proxy_request(Target("bedrock", None, keys), "POST", "/model/m/invoke", body)
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")


def test_unmodeled_error_frame_becomes_an_error_event() -> None:
    frame = encode_frame(
        [
            (":message-type", STRING, "error"),
            (":error-code", STRING, "InternalFailure"),
            (":error-message", STRING, "Something broke"),
        ],
        b"",
    )
    events = run_translator(event_frame("messageStart", {"role": "assistant"}) + frame, [])
    assert events[1]["error"]["message"] == "bedrock error: Something broke"
    assert events[1]["error"]["type"] == "InternalFailure"
    assert events[-1] == "[DONE]"


def test_signed_passthrough_with_a_body(bedrock_gateway: GatewayServer, bedrock: BedrockEmulator) -> None:
    # POST /v1/<path> goes to Bedrock as it is, SigV4-signed over its body; the emulator checks it.
    r = httpx.post(
        bedrock_gateway.v1 + "/model/amazon.titan-embed-text-v2:0/invoke",
        headers=headers_for({k: v for k, v in CONFIG.items() if k != "override_params"}),
        content=b'{"inputText": "hello"}',
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["embedding"]) > 0
    assert bedrock.requests[-1].body == b'{"inputText": "hello"}'
