"""Provider ``ollama``: OpenAI-shaped clients reach Ollama's native ``/api/chat`` through Wayport.

The issue's configuration — ``custom_host`` as the server root, the model in ``override_params``,
no key — pointed at the Ollama emulator (``tests/emulators/ollama.py``), which speaks NDJSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import wayport
from tests.conftest import GatewayServer
from tests.emulators.ollama import THINKING, OllamaEmulator, embed_vector
from tests.emulators.server import Fault
from tests.provider_harness import (
    config_headers,
    content_of,
    llamaindex_llm,
    openai_client,
    provider_gateway,
    sse_payloads,
)
from tests.provider_harness import raw_stream as stream_payloads
from wayport.errors import BadRequest
from wayport.providers.base import Endpoint, Secret, Target
from wayport.providers.ollama import OllamaAdapter, OllamaStream, chat_request, chat_response

QUESTION = "What is your name"
PNG_B64 = "iVBORw0KGgo="
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    }
    for name in ("get_weather", "get_time")
]
LAX = {"x-portkey-strict-open-ai-compliance": "false"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[OllamaEmulator]:
    emulator = OllamaEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def ollama_gateway(
    emulator: OllamaEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    with provider_gateway(tmp_path_factory.mktemp("wayport-ollama"), "ollama", emulator.base_url) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(emulator: OllamaEmulator) -> None:
    emulator.reset()


def issue_config(emulator: OllamaEmulator, **changes: Any) -> dict[str, Any]:
    """The issue's config, with the emulator as the Ollama server."""
    return {
        "provider": "ollama",
        "custom_host": emulator.base_url,
        "override_params": {"model": "llama3"},
        **changes,
    }


def client(gateway: GatewayServer, config: dict[str, Any], **extra: str) -> openai.OpenAI:
    return openai_client(gateway, config, **extra)


def llm(gateway: GatewayServer, emulator: OllamaEmulator, **kwargs: Any) -> OpenAI:
    return llamaindex_llm(gateway, issue_config(emulator), **kwargs)


def raw_stream(
    gateway: GatewayServer, config: dict[str, Any], body: dict[str, Any], **extra: str
) -> list[Any]:
    return stream_payloads(gateway, config_headers(config, **extra), body)


def ask(text: str = QUESTION) -> list[Any]:
    return [{"role": "user", "content": text}]


# -- LlamaIndex, the configuration of the issue ----------------------------------------------------


def assert_native_chat(emulator: OllamaEmulator, text: str, *, stream: bool) -> None:
    recorded = emulator.last
    assert (recorded.method, recorded.path) == ("POST", "/api/chat")
    body = recorded.json()
    assert body["model"] == "llama3"
    assert body["stream"] is stream  # always explicit: Ollama streams by default
    assert body["messages"][-1] == {"role": "user", "content": text}
    assert not [h for h in recorded.headers if h.lower().startswith("x-portkey-")]


def test_llamaindex_chat(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    response = llm(ollama_gateway, emulator).chat([ChatMessage(role="user", content=QUESTION)])
    assert response.message.content == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=False)


def test_llamaindex_stream_chat(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    responses = list(llm(ollama_gateway, emulator).stream_chat([ChatMessage(role="user", content=QUESTION)]))
    deltas = [r.delta for r in responses if r.delta]
    assert len(deltas) >= 3
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=True)


def test_llamaindex_complete(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    assert llm(ollama_gateway, emulator).complete("Paul Graham is ").text == "Echo: Paul Graham is "
    assert_native_chat(emulator, "Paul Graham is ", stream=False)


def test_llamaindex_stream_complete(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    responses = list(llm(ollama_gateway, emulator).stream_complete("Paul Graham is "))
    assert responses[-1].text == "Echo: Paul Graham is "
    assert_native_chat(emulator, "Paul Graham is ", stream=True)


async def test_llamaindex_async(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    async with httpx.AsyncClient() as http:
        model = llm(ollama_gateway, emulator, async_http_client=http)
        response = await model.acomplete("Paul Graham is ")
        streamed = [r async for r in await model.astream_chat([ChatMessage(role="user", content=QUESTION)])]
    assert response.text == "Echo: Paul Graham is "
    assert streamed[-1].message.content == f"Echo: {QUESTION}"
    assert_native_chat(emulator, QUESTION, stream=True)


# -- tools -----------------------------------------------------------------------------------------


def test_parallel_tool_calls_then_tool_results(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator
) -> None:
    sdk = client(ollama_gateway, issue_config(emulator))
    first = sdk.chat.completions.create(model="x", messages=ask("Weather and time?"), tools=TOOLS)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"  # Ollama said "stop"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"q": 0}),
        ("get_time", {"q": 1}),
    ]
    assert emulator.last.json()["tools"][0] == {
        "type": "function",
        "function": {k: TOOLS[0]["function"][k] for k in ("name", "description", "parameters")},
    }

    history: list[Any] = [
        *ask("Weather and time?"),
        choice.message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)),
    ]
    second = sdk.chat.completions.create(model="x", messages=history, tools=TOOLS)
    assert second.choices[0].message.content == "Echo: tool results"
    assert second.choices[0].finish_reason == "stop"
    sent = emulator.last.json()["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": c.id, "function": {"index": i, "name": c.function.name, "arguments": {"q": i}}}
            for i, c in enumerate(calls)
        ],
    }
    assert sent[2:] == [
        {"role": "tool", "content": f"result {i}", "tool_call_id": c.id, "tool_name": c.function.name}
        for i, c in enumerate(calls)
    ]


def test_streamed_tool_calls(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    chunks = raw_stream(
        ollama_gateway, issue_config(emulator), {"model": "x", "messages": ask(), "tools": TOOLS}
    )
    assert chunks[-1] == "[DONE]"
    fragments = [tc for c in chunks[:-1] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [(f["index"], f["type"], f["function"]["name"]) for f in fragments] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    assert [orjson.loads(f["function"]["arguments"]) for f in fragments] == [{"q": 0}, {"q": 1}]
    assert len({f["id"] for f in fragments}) == 2
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_choice_none_and_named(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    sdk = client(ollama_gateway, issue_config(emulator))
    none = sdk.chat.completions.create(model="x", messages=ask(), tools=TOOLS, tool_choice="none")
    assert "tools" not in emulator.last.json()
    assert none.choices[0].message.content == f"Echo: {QUESTION}"

    named = sdk.chat.completions.create(
        model="x",
        messages=ask(),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [t["function"]["name"] for t in emulator.last.json()["tools"]] == ["get_time"]
    assert [c.function.name for c in named.choices[0].message.tool_calls or []] == ["get_time"]


# -- request mapping -------------------------------------------------------------------------------


def test_images_go_as_bare_base64(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]
    response = client(ollama_gateway, issue_config(emulator)).chat.completions.create(
        model="x", messages=[{"role": "user", "content": content}]
    )
    assert response.choices[0].message.content == "Echo: What is this? (1 images)"
    assert emulator.last.json()["messages"] == [
        {"role": "user", "content": "What is this?", "images": [PNG_B64]}
    ]


def test_image_links_are_a_clear_400(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError, match="base64 data URLs"):
        client(ollama_gateway, issue_config(emulator)).chat.completions.create(
            model="x", messages=[{"role": "user", "content": content}]
        )
    assert emulator.requests == []


def test_sampling_fields_move_into_options(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    client(ollama_gateway, issue_config(emulator)).chat.completions.create(
        model="x",
        messages=[{"role": "developer", "content": "Be brief."}, *ask()],
        temperature=0.2,
        top_p=0.9,
        seed=42,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        max_completion_tokens=50,
        stop="\n\n",
        user="u-1",
        extra_body={"top_k": 40, "keep_alive": "5m", "options": {"num_ctx": 8192}},
    )
    assert emulator.last.json() == {
        "model": "llama3",
        "messages": [{"role": "system", "content": "Be brief."}, *ask()],
        "stream": False,
        "options": {
            "num_ctx": 8192,
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "seed": 42,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "num_predict": 50,
            "stop": ["\n\n"],
        },
        "keep_alive": "5m",
    }


@pytest.mark.parametrize(
    ("response_format", "native"),
    [
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "e", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
    ],
)
def test_response_format_is_format(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator, response_format: Any, native: Any
) -> None:
    response = client(ollama_gateway, issue_config(emulator)).chat.completions.create(
        model="x", messages=ask(), response_format=response_format
    )
    assert emulator.last.json()["format"] == native
    assert orjson.loads(response.choices[0].message.content or "") == {"echo": QUESTION}


# -- answers ---------------------------------------------------------------------------------------


def test_usage_adds_up(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    response = client(ollama_gateway, issue_config(emulator)).chat.completions.create(
        model="x", messages=ask()
    )
    usage = response.usage
    assert usage is not None
    assert usage.prompt_tokens == len(QUESTION.split())  # prompt_eval_count
    assert usage.completion_tokens == len(f"Echo: {QUESTION}".split())  # eval_count
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert response.model == "llama3"
    data = response.model_dump()
    assert data["provider"] == "ollama"


@pytest.mark.parametrize(("strict", "expected"), [(True, "length"), (False, "length")])
def test_num_predict_cut_is_length(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator, strict: bool, expected: str
) -> None:
    extra = {} if strict else LAX
    config = issue_config(emulator, override_params={"model": "llama3", "max_tokens": 2})
    response = client(ollama_gateway, config, **extra).chat.completions.create(model="x", messages=ask())
    assert response.choices[0].finish_reason == expected
    assert response.choices[0].message.content == "Echo: What"


def test_thinking_with_reasoning_effort(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    config = issue_config(emulator, override_params={"model": "qwen3"})
    body = {"model": "x", "messages": ask(), "reasoning_effort": "high"}
    headers = {**wayport.createHeaders(config=config), **LAX}
    data = httpx.post(ollama_gateway.v1 + "/chat/completions", json=body, headers=headers).json()
    assert emulator.last.json()["think"] == "high"
    message = data["choices"][0]["message"]
    assert message["content"] == f"Echo: {QUESTION}"
    assert message["content_blocks"] == [
        {"type": "thinking", "thinking": THINKING},
        {"type": "text", "text": f"Echo: {QUESTION}"},
    ]
    strict = client(ollama_gateway, config).chat.completions.create(
        model="x", messages=ask(), reasoning_effort="high"
    )
    assert "content_blocks" not in strict.choices[0].message.model_dump()

    chunks = raw_stream(ollama_gateway, config, body, **LAX)
    thoughts = "".join(
        b["delta"]["thinking"]
        for c in chunks[:-1]
        for b in c["choices"][0]["delta"].get("content_blocks", [])
    )
    assert thoughts == THINKING
    assert content_of(chunks) == f"Echo: {QUESTION}"


# -- streams ---------------------------------------------------------------------------------------


def test_stream_chunks_share_id_and_start_with_the_role(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator
) -> None:
    chunks = raw_stream(ollama_gateway, issue_config(emulator), {"model": "x", "messages": ask()})
    events = chunks[:-1]
    assert chunks[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len({(e["id"], e["created"], e["model"], e["provider"]) for e in events}) == 1
    assert content_of(chunks) == f"Echo: {QUESTION}"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in e for e in events)


def test_include_usage_gives_one_usage_chunk(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    body = {"model": "x", "messages": ask(), "stream_options": {"include_usage": True}}
    chunks = raw_stream(ollama_gateway, issue_config(emulator), body)
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (4, 5)
    assert usage["total_tokens"] == 9
    assert all(c["usage"] is None for c in chunks[:-2])


def test_error_line_mid_stream_is_an_error_event(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator
) -> None:
    emulator.inject(
        Fault(stream_events=3, json={"error": "an error was encountered while running the model"})
    )
    chunks = raw_stream(ollama_gateway, issue_config(emulator), {"model": "x", "messages": ask()})
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["error"]["message"] == "ollama error: an error was encountered while running the model"
    assert content_of(chunks[:-2]) == "Echo: What is"

    emulator.inject(Fault(stream_events=3, json={"error": "out of memory"}))
    with pytest.raises(openai.APIError, match="out of memory"):
        for _ in client(ollama_gateway, issue_config(emulator)).chat.completions.create(
            model="x", messages=ask(), stream=True
        ):
            pass


def test_stream_cut_is_an_error_event(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    emulator.inject(Fault(stream_events=3, cut=True))
    chunks = raw_stream(ollama_gateway, issue_config(emulator), {"model": "x", "messages": ask()})
    assert chunks[-1] == "[DONE]" and "error" in chunks[-2]


# -- errors, auth, hosts ---------------------------------------------------------------------------


def test_missing_model_is_a_404_with_ollamas_message(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator
) -> None:
    config = issue_config(emulator, override_params={"model": "mistral"})
    with pytest.raises(openai.NotFoundError) as info:
        client(ollama_gateway, config).chat.completions.create(model="x", messages=ask())
    assert info.value.status_code == 404
    assert info.value.response.json()["error"]["message"] == (
        'ollama error: model "mistral" not found, try pulling it first'
    )


def test_a_configured_key_is_sent_as_bearer(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    emulator.api_key = "ollama-cloud-key"
    config = issue_config(emulator, api_key="ollama-cloud-key")
    response = client(ollama_gateway, config).chat.completions.create(model="x", messages=ask())
    assert response.choices[0].message.content == f"Echo: {QUESTION}"
    assert emulator.last.headers["Authorization"] == "Bearer ollama-cloud-key"

    with pytest.raises(openai.AuthenticationError, match="ollama error: unauthorized"):
        client(ollama_gateway, issue_config(emulator, api_key="wrong")).chat.completions.create(
            model="x", messages=ask()
        )


def test_no_key_no_authorization(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    headers = wayport.createHeaders(config=issue_config(emulator))
    r = httpx.post(
        ollama_gateway.v1 + "/chat/completions", json={"model": "x", "messages": ask()}, headers=headers
    )
    assert r.status_code == 200
    assert "Authorization" not in emulator.last.headers


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/api", "/api/"])
def test_custom_host_may_end_in_v1_or_api(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator, suffix: str
) -> None:
    config = issue_config(emulator, custom_host=emulator.base_url + suffix)
    client(ollama_gateway, config).chat.completions.create(model="x", messages=ask())
    assert emulator.last.path == "/api/chat"


def test_base_url_setting_without_custom_host(
    ollama_gateway: GatewayServer, emulator: OllamaEmulator
) -> None:
    config = {"provider": "ollama", "override_params": {"model": "llama3"}}
    client(ollama_gateway, config).chat.completions.create(model="x", messages=ask())
    assert emulator.last.path == "/api/chat"


# -- embeddings and passthrough --------------------------------------------------------------------


def test_embeddings_through_the_sdk(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    config = issue_config(emulator, override_params={"model": "all-minilm"})
    response = client(ollama_gateway, config).embeddings.create(
        model="x", input=["hello", "good bye"], dimensions=4
    )
    assert emulator.last.path == "/api/embed"
    assert emulator.last.json() == {"model": "all-minilm", "input": ["hello", "good bye"], "dimensions": 4}
    assert [d.embedding for d in response.data] == [
        pytest.approx(embed_vector("hello", 4), abs=1e-6),
        pytest.approx(embed_vector("good bye", 4), abs=1e-6),
    ]
    assert response.usage.prompt_tokens == response.usage.total_tokens == 3


def test_models_and_native_passthrough(ollama_gateway: GatewayServer, emulator: OllamaEmulator) -> None:
    headers = wayport.createHeaders(config=issue_config(emulator))
    models = httpx.get(ollama_gateway.v1 + "/models", headers=headers)
    assert models.json()["data"][0]["id"] == "llama3:latest"
    assert emulator.last.path == "/v1/models"
    tags = httpx.get(ollama_gateway.v1 + "/api/tags", headers=headers)
    assert tags.json()["models"][0]["name"] == "llama3:latest"
    assert emulator.last.path == "/api/tags"


# -- pure translation ------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), texts), min_size=1, max_size=8))
def test_any_text_conversation_keeps_roles_and_texts(turns: list[tuple[str, str]]) -> None:
    body = chat_request(
        {"model": "m", "messages": [{"role": r, "content": t} for r, t in turns]}, stream=True
    )
    assert [(m["role"], m["content"]) for m in body["messages"]] == turns
    assert body["stream"] is True


@given(st.lists(texts, min_size=1, max_size=6), st.integers(1, 9))
def test_stream_translation_does_not_depend_on_how_bytes_arrive(pieces: list[str], step: int) -> None:
    lines = [{"model": "m", "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
    lines.append(
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
    )
    wire = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    translator = OllamaStream({"model": "m"}, strict=True)
    out = (
        b"".join(translator.feed(wire[i : i + step]) for i in range(0, len(wire), step)) + translator.close()
    )
    chunks = sse_payloads(out.decode())
    assert chunks[-1] == "[DONE]"
    assert content_of(chunks) == "".join(pieces)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_without_done_line_is_an_error() -> None:
    translator = OllamaStream({"model": "m"}, strict=True)
    out = translator.feed(b'{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}\n')
    out += translator.close()
    chunks = sse_payloads(out.decode())
    assert content_of(chunks[:-2]) == "Hi"
    assert "before it was done" in chunks[-2]["error"]["message"]


def test_tool_call_arguments_must_be_a_json_object() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}
    with pytest.raises(BadRequest, match="not valid JSON"):
        chat_request(
            {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]},
            stream=False,
        )


def test_absent_counts_are_zero_and_raw_reasons_pass_when_not_strict() -> None:
    data = {
        "model": "m",
        "message": {"role": "assistant", "content": "x"},
        "done": True,
        "done_reason": "unload",
    }
    answer = chat_response(data, {"model": "m"}, strict=False)
    assert answer["usage"]["total_tokens"] == 0
    assert answer["choices"][0]["finish_reason"] == "unload"
    assert chat_response(data, {"model": "m"}, strict=True)["choices"][0]["finish_reason"] == "stop"


def test_adapter_sends_no_key_by_default_and_the_url_root() -> None:
    adapter = OllamaAdapter()
    request = adapter.build_request(
        Endpoint.CHAT, Target("ollama", None, {}), {"model": "m", "messages": ask()}, None
    )
    assert request.url == "http://localhost:11434/api/chat"
    assert "authorization" not in request.headers
    keyed = Target("ollama", Secret("k"), {}, "https://ollama.com/api")
    request = adapter.build_request(Endpoint.EMBED, keyed, {"model": "m", "input": "a"}, None)
    assert (request.url, request.headers["authorization"]) == ("https://ollama.com/api/embed", "Bearer k")
