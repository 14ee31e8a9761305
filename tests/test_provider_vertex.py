"""Vertex AI (provider ``vertex-ai``) through Wayport, against the Gemini emulator's Vertex paths:
Gemini models on ``publishers/google`` and Claude models on ``publishers/anthropic``.

The access token travels as the client's ``Authorization: Bearer`` (the issue's configuration
has no ``api_key``); project and region come from the config or the ``x-portkey-vertex-*``
headers. The emulator accepts only the right token and the Vertex body shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import orjson
import portkey_ai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from tests.conftest import GatewayServer
from tests.emulators.anthropic import error as anthropic_error_body
from tests.emulators.gemini import ACCESS_TOKEN, SIGNATURE, GeminiEmulator, retry_info, status_error
from tests.emulators.openai import embed
from tests.emulators.server import Fault, Recorded
from tests.test_provider_google import error_message, sse_payloads
from wayport.errors import BadRequest
from wayport.gateway.retry import RetryRunner
from wayport.providers.base import Endpoint, FanOut, Secret, Target, UpstreamRequest
from wayport.providers.google_auth import ServiceAccount, TokenSource
from wayport.providers.vertex_ai import VertexAIAdapter
from wayport.settings import Settings

GEMINI = "gemini-1.5-pro"
CLAUDE = "claude-3-5-sonnet@20240620"
LOCATION = "/v1/projects/p/locations/us-central1"
ISSUE_CONFIG: dict[str, Any] = {
    "provider": "vertex-ai",
    "vertex_project_id": "p",
    "vertex_region": "us-central1",
}
QUESTION = "What is your name"
PROMPT = "Paul Graham is "
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def vertex() -> Iterator[GeminiEmulator]:
    emulator = GeminiEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def vertex_gateway(
    vertex: GeminiEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = Settings(
        auth=False,
        data_dir=tmp_path_factory.mktemp("wayport-vertex"),
        base_urls={"vertex-ai": vertex.url},
        trusted_hosts=("127.0.0.1", "localhost"),
    )
    server = GatewayServer(settings, retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.05)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(vertex: GeminiEmulator) -> None:
    vertex.reset()


def config_for(model: str, **extra: Any) -> dict[str, Any]:
    return {**ISSUE_CONFIG, "override_params": {"model": model, "max_tokens": 64}, **extra}


def headers_for(model: str, *, strict: bool = True) -> dict[str, str]:
    headers: dict[str, str] = portkey_ai.createHeaders(config=config_for(model))
    if not strict:
        headers["x-portkey-strict-open-ai-compliance"] = "false"
    return headers


def client(
    gateway: GatewayServer, model: str, *, strict: bool = True, token: str = ACCESS_TOKEN
) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.v1, api_key=token, default_headers=headers_for(model, strict=strict), max_retries=0
    )


def make_llm(gateway: GatewayServer, model: str, **kwargs: Any) -> OpenAI:
    """LlamaIndex as in the issue: the access token is LlamaIndex's own api_key."""
    return OpenAI(
        model="gpt-4o",
        api_key=ACCESS_TOKEN,
        api_base=gateway.v1,
        default_headers=headers_for(model),
        max_retries=0,
        **kwargs,
    )


def assert_vertex_request(recorded: Recorded, model: str, user_text: str, *, stream: bool) -> None:
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    assert headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert not [name for name in headers if name.startswith("x-portkey-")]
    body = recorded.json()
    if model.startswith("claude"):
        method = "streamRawPredict" if stream else "rawPredict"
        assert recorded.path == f"{LOCATION}/publishers/anthropic/models/{model}:{method}"
        assert recorded.query == ""
        assert body["anthropic_version"] == "vertex-2023-10-16"
        assert "model" not in body
        assert body["max_tokens"] == 64
        assert body["messages"][-1] == {"role": "user", "content": user_text}
    else:
        method = "streamGenerateContent" if stream else "generateContent"
        assert recorded.path == f"{LOCATION}/publishers/google/models/{model}:{method}"
        assert recorded.query == ("alt=sse" if stream else "")
        assert body["generationConfig"]["maxOutputTokens"] == 64
        assert body["contents"][-1] == {"role": "user", "parts": [{"text": user_text}]}


# -- LlamaIndex, Gemini and Claude models ----------------------------------------------------------

MODELS = pytest.mark.parametrize("model", [GEMINI, CLAUDE])


@MODELS
def test_llamaindex_chat(vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str) -> None:
    response = make_llm(vertex_gateway, model).chat([ChatMessage(role="user", content=QUESTION)])

    assert response.message.content == f"Echo: {QUESTION}"
    assert_vertex_request(vertex.last, model, QUESTION, stream=False)


@MODELS
def test_llamaindex_stream_chat(vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str) -> None:
    responses = list(
        make_llm(vertex_gateway, model).stream_chat([ChatMessage(role="user", content=QUESTION)])
    )

    deltas = [r.delta or "" for r in responses]
    assert len([d for d in deltas if d]) >= 3
    assert "".join(deltas) == f"Echo: {QUESTION}"
    assert_vertex_request(vertex.last, model, QUESTION, stream=True)


@MODELS
def test_llamaindex_complete(vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str) -> None:
    response = make_llm(vertex_gateway, model).complete(PROMPT)

    assert response.text == f"Echo: {PROMPT}"
    assert_vertex_request(vertex.last, model, PROMPT, stream=False)


@MODELS
def test_llamaindex_stream_complete(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str
) -> None:
    responses = list(make_llm(vertex_gateway, model).stream_complete(PROMPT))

    assert "".join(r.delta or "" for r in responses) == f"Echo: {PROMPT}"
    assert_vertex_request(vertex.last, model, PROMPT, stream=True)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@MODELS
async def test_llamaindex_achat(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, http: httpx.AsyncClient, model: str
) -> None:
    llm = make_llm(vertex_gateway, model, async_http_client=http)
    response = await llm.achat([ChatMessage(role="user", content=QUESTION)])

    assert response.message.content == f"Echo: {QUESTION}"
    assert_vertex_request(vertex.last, model, QUESTION, stream=False)


# -- tools ---------------------------------------------------------------------------------------------


@MODELS
def test_parallel_tool_calls_then_results(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str
) -> None:
    sdk = client(vertex_gateway, model)
    question = {"role": "user", "content": "weather and time?"}
    first = sdk.chat.completions.create(model="gpt-4o", messages=[question], tools=[WEATHER, TIME])

    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"q": 0}, {"q": 1}]

    results = [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
    ]
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    second = sdk.chat.completions.create(
        model="gpt-4o", messages=[question, assistant, *results], tools=[WEATHER, TIME]
    )

    assert second.choices[0].finish_reason == "stop"
    if model == GEMINI:
        assert (
            second.choices[0].message.content
            == 'Results: get_weather={"output":"18C"}, get_time={"output":"noon"}'
        )
        assert vertex.last.json()["contents"][1]["parts"][0]["thoughtSignature"] == SIGNATURE
    else:
        assert second.choices[0].message.content == "Echo: tool results received"
        results_turn = vertex.last.json()["messages"][-1]["content"]
        assert [b["tool_use_id"] for b in results_turn] == [calls[0].id, calls[1].id]


@MODELS
def test_streamed_parallel_tool_calls(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str
) -> None:
    stream = client(vertex_gateway, model).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER, TIME], stream=True
    )
    chunks = list(stream)

    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        fragments = (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []
        for fragment in fragments:
            call = calls.setdefault(fragment.index, {"name": "", "arguments": ""})
            if fragment.function and fragment.function.name:
                call["name"] += fragment.function.name
            if fragment.function and fragment.function.arguments:
                call["arguments"] += fragment.function.arguments
    assert calls == {
        0: {"name": "get_weather", "arguments": '{"q":0}'},
        1: {"name": "get_time", "arguments": '{"q":1}'},
    }
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


# -- usage, finish reasons, streams ---------------------------------------------------------------


@MODELS
def test_usage_adds_up(vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str) -> None:
    vertex.cached_tokens = 6
    response = client(vertex_gateway, model).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi there"}]
    )

    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == 3  # "Echo: hi there"
    if model == GEMINI:
        assert usage.prompt_tokens == 2 + 6
        assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 6


@pytest.mark.parametrize(("model", "raw"), [(GEMINI, "STOP"), (CLAUDE, "end_turn")])
def test_non_strict_passes_the_raw_finish_reason(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str, raw: str
) -> None:
    loose = client(vertex_gateway, model, strict=False).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    strict = client(vertex_gateway, model).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )

    assert loose.choices[0].finish_reason == raw
    assert strict.choices[0].finish_reason == "stop"


def stream_events(gateway: GatewayServer, model: str, **body: Any) -> list[Any]:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        headers={**headers_for(model), "Authorization": f"Bearer {ACCESS_TOKEN}"},
        json={
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": "one two three"}],
            **body,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sse_payloads(response.text)


@MODELS
def test_stream_usage_only_when_asked(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, model: str
) -> None:
    with_usage = stream_events(vertex_gateway, model, stream_options={"include_usage": True})
    without = stream_events(vertex_gateway, model)

    usage = with_usage[-2]["usage"]
    assert with_usage[-2]["choices"] == []
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert without[-1] == "[DONE]"
    assert not [e for e in without[:-1] if "usage" in e]


@pytest.mark.parametrize(
    ("model", "fault_body", "message"),
    [
        (
            GEMINI,
            status_error(429, "RESOURCE_EXHAUSTED", "Resource exhausted."),
            "vertex-ai error: Resource exhausted.",
        ),
        (CLAUDE, anthropic_error_body("overloaded_error", "Overloaded"), "vertex-ai error: Overloaded"),
    ],
)
def test_upstream_error_mid_stream(
    vertex_gateway: GatewayServer,
    vertex: GeminiEmulator,
    model: str,
    fault_body: dict[str, Any],
    message: str,
) -> None:
    vertex.inject(Fault(json=fault_body, stream_events=3))
    events = stream_events(vertex_gateway, model)

    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["message"] == message
    assert not [e for e in events[:-2] if e["choices"][0]["finish_reason"]]


# -- errors and settings ----------------------------------------------------------------------------


def test_wrong_token_is_googles_401(vertex_gateway: GatewayServer) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        client(vertex_gateway, GEMINI, token="ya29.expired").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )

    assert raised.value.status_code == 401
    assert raised.value.type == "UNAUTHENTICATED"
    assert error_message(raised.value).startswith(
        "vertex-ai error: Request had invalid authentication credentials."
    )


def test_claude_errors_keep_anthropics_type(vertex_gateway: GatewayServer, vertex: GeminiEmulator) -> None:
    vertex.inject(Fault(status=529, json=anthropic_error_body("overloaded_error", "Overloaded")))
    response = httpx.post(
        vertex_gateway.v1 + "/chat/completions",
        headers={**headers_for(CLAUDE), "Authorization": f"Bearer {ACCESS_TOKEN}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 529
    assert response.json()["error"]["message"] == "vertex-ai error: Overloaded"
    assert response.json()["error"]["type"] == "overloaded_error"
    assert response.json()["provider"] == "vertex-ai"


def test_google_shaped_quota_error_on_a_claude_model(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator
) -> None:
    quota = status_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.", [retry_info("2.5s")])
    vertex.inject(Fault(status=429, json=quota))
    with pytest.raises(openai.RateLimitError) as raised:
        client(vertex_gateway, CLAUDE).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )

    assert raised.value.type == "RESOURCE_EXHAUSTED"
    assert error_message(raised.value) == "vertex-ai error: Quota exceeded for aiplatform. (retry after 2.5s)"
    # the delay from the body, as the headers clients and retry policies read
    headers = raised.value.response.headers
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("2500", "3")


def test_settings_from_headers(vertex_gateway: GatewayServer, vertex: GeminiEmulator) -> None:
    response = httpx.post(
        vertex_gateway.v1 + "/chat/completions",
        headers={
            "x-portkey-provider": "vertex-ai",
            "x-portkey-vertex-project-id": "proj-2",
            "x-portkey-vertex-region": "europe-west4",
            "Authorization": f"Bearer {ACCESS_TOKEN}",
        },
        json={"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"
    location = "/v1/projects/proj-2/locations/europe-west4"
    assert vertex.last.path == f"{location}/publishers/google/models/gemini-2.0-flash:generateContent"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"provider": "vertex-ai", "vertex_region": "us-central1"},
            "'vertex_project_id' (header x-portkey-vertex-project-id)",
        ),
        (
            {"provider": "vertex-ai", "vertex_project_id": "p"},
            "'vertex_region' (header x-portkey-vertex-region)",
        ),
        ({**ISSUE_CONFIG, "vertex_region": "us-central1.evil.com"}, "not a valid vertex_region"),
    ],
)
def test_missing_or_bad_settings_are_400s_naming_them(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, config: dict[str, Any], expected: str
) -> None:
    response = httpx.post(
        vertex_gateway.v1 + "/chat/completions",
        headers={**portkey_ai.createHeaders(config=config), "Authorization": f"Bearer {ACCESS_TOKEN}"},
        json={"model": GEMINI, "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 400
    assert expected in response.json()["message"]
    assert vertex.requests == []


def service_account(vertex: GeminiEmulator) -> dict[str, str]:
    """A service-account key as Google issues it, whose token_uri is the emulator's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    vertex.service_account = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-1",
        "private_key": pem.decode(),
        "client_email": "wayport@p.iam.gserviceaccount.com",
        "token_uri": vertex.token_uri,
    }


def test_a_service_account_key_is_exchanged_for_an_access_token(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator
) -> None:
    config = {**ISSUE_CONFIG, "vertex_service_account_json": service_account(vertex)}
    for _ in range(2):  # the second request reuses the token
        response = httpx.post(
            vertex_gateway.v1 + "/chat/completions",
            headers=portkey_ai.createHeaders(config=config),
            json={"model": GEMINI, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 200, response.text
        assert vertex.last.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    (claims,) = vertex.token_claims
    assert claims["header"] == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert (claims["iss"], claims["aud"]) == ("wayport@p.iam.gserviceaccount.com", vertex.token_uri)
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            {"type": "service_account", "private_key": "k"},
            "'vertex_service_account_json' has no client_email",
        ),
        ({"client_email": "a@b", "private_key": "not-a-pem-key"}, "is not a PEM RSA key"),
        ("{not json", "'vertex_service_account_json' is not valid JSON"),
    ],
)
def test_a_service_account_key_that_cannot_be_used_is_a_400_that_does_not_echo_it(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator, key: object, expected: str
) -> None:
    response = httpx.post(
        vertex_gateway.v1 + "/chat/completions",
        headers=portkey_ai.createHeaders(config={**ISSUE_CONFIG, "vertex_service_account_json": key}),
        json={"model": GEMINI, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 400 and expected in response.json()["message"]
    assert "not-a-pem-key" not in response.text and '"k"' not in response.text
    assert vertex.requests == [] and vertex.token_claims == []


def test_a_refused_token_request_is_a_401_naming_the_reason(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator
) -> None:
    account = service_account(vertex)
    account["client_email"] = "refused@p.iam.gserviceaccount.com"  # not the key cached above
    vertex.token_refusal = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    response = httpx.post(
        vertex_gateway.v1 + "/chat/completions",
        headers=portkey_ai.createHeaders(config={**ISSUE_CONFIG, "vertex_service_account_json": account}),
        json={"model": GEMINI, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert vertex.token_uri in message and "invalid_grant: Invalid JWT Signature." in message
    assert "PRIVATE KEY" not in response.text and vertex.requests == []


async def test_tokens_are_kept_until_near_expiry_and_minted_once_for_concurrent_requests() -> None:
    now = [1_000_000.0]
    posts: list[str] = []

    async def post(url: str, body: bytes, guarded: bool) -> tuple[int, bytes]:
        posts.append(url)
        await asyncio.sleep(0.01)
        return 200, orjson.dumps({"access_token": f"token-{len(posts)}", "expires_in": 3600})

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account = ServiceAccount.parse({"client_email": "a@b", "private_key": pem.decode()})
    assert account.token_uri == "https://oauth2.googleapis.com/token"  # Google's, when the key names none
    tokens = TokenSource(post, clock=lambda: now[0])
    assert await asyncio.gather(*(tokens.token(account) for _ in range(5))) == ["token-1"] * 5
    now[0] += 3600 - 301
    assert await tokens.token(account) == "token-1"
    now[0] += 2  # within five minutes of expiry: a new one
    assert await tokens.token(account) == "token-2"
    assert posts == ["https://oauth2.googleapis.com/token"] * 2
    # a caller that goes away mid-exchange does not take the exchange from the others
    now[0] += 3600
    first, second = asyncio.ensure_future(tokens.token(account)), asyncio.ensure_future(tokens.token(account))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "token-3" and first.cancelled()


def test_no_token_at_all(vertex_gateway: GatewayServer, vertex: GeminiEmulator) -> None:
    response = httpx.post(
        vertex_gateway.v1 + "/chat/completions",
        headers=portkey_ai.createHeaders(config=ISSUE_CONFIG),
        json={"model": GEMINI, "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 400
    assert "access token" in response.json()["message"]


# -- embeddings ------------------------------------------------------------------------------------


def embeddings(gateway: GatewayServer, model: str, inputs: list[str]) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/embeddings",
        headers={**portkey_ai.createHeaders(config=ISSUE_CONFIG), "Authorization": f"Bearer {ACCESS_TOKEN}"},
        json={"model": model, "input": inputs, "dimensions": 4, "encoding_format": "float"},
    )


def test_embeddings_with_token_usage(vertex_gateway: GatewayServer, vertex: GeminiEmulator) -> None:
    response = embeddings(vertex_gateway, "text-embedding-005", ["alpha beta", "gamma"])

    assert response.status_code == 200
    body = response.json()
    assert [d["embedding"] for d in body["data"]] == [embed("alpha beta", 4), embed("gamma", 4)]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert len(vertex.requests) == 1
    assert vertex.last.path == f"{LOCATION}/publishers/google/models/text-embedding-005:predict"
    assert vertex.last.json() == {
        "instances": [{"content": "alpha beta"}, {"content": "gamma"}],
        "parameters": {"outputDimensionality": 4},
    }


def test_gemini_embeddings_go_one_input_per_call(
    vertex_gateway: GatewayServer, vertex: GeminiEmulator
) -> None:
    inputs = ["one", "two words", "three little words"]
    response = embeddings(vertex_gateway, "gemini-embedding-001", inputs)

    assert response.status_code == 200
    body = response.json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert [d["embedding"] for d in body["data"]] == [embed(t, 4) for t in inputs]
    assert body["usage"]["total_tokens"] == 6
    assert sorted(len(r.json()["instances"]) for r in vertex.requests) == [1, 1, 1]


def test_sdk_embeddings_in_base64(vertex_gateway: GatewayServer, vertex: GeminiEmulator) -> None:
    result = client(vertex_gateway, "text-embedding-005").embeddings.create(
        model="text-embedding-005", input="alpha"
    )

    assert result.data[0].embedding == pytest.approx(embed("alpha", 8), abs=1e-6)


# -- URLs (pure) -------------------------------------------------------------------------------------


def target(**options: Any) -> Target:
    return Target("vertex-ai", Secret("ya29.t"), {"vertex_project_id": "p", **options})


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com"),
    ],
)
def test_public_hosts(region: str, host: str) -> None:
    request = VertexAIAdapter().build_request(
        Endpoint.CHAT,
        target(vertex_region=region),
        {"model": GEMINI, "messages": [{"role": "user", "content": "x"}]},
        None,
    )

    assert isinstance(request, UpstreamRequest)
    assert (
        request.url
        == f"{host}/v1/projects/p/locations/{region}/publishers/google/models/{GEMINI}:generateContent"
    )
    assert request.headers["authorization"] == "Bearer ya29.t"


def test_base_url_and_custom_host_replace_only_the_host() -> None:
    params = {"model": "anthropic." + CLAUDE, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    overridden = VertexAIAdapter("http://127.0.0.1:9/").build_request(
        Endpoint.CHAT, target(vertex_region="global"), params, None
    )
    custom = VertexAIAdapter("http://ignored").build_request(
        Endpoint.CHAT,
        Target(
            "vertex-ai",
            Secret("t"),
            {"vertex_project_id": "p", "vertex_region": "asia-east1"},
            "https://proxy.example/vx/",
        ),
        params,
        None,
    )

    assert isinstance(overridden, UpstreamRequest) and isinstance(custom, UpstreamRequest)
    tail = f"/publishers/anthropic/models/{CLAUDE}:streamRawPredict"
    assert overridden.url == "http://127.0.0.1:9/v1/projects/p/locations/global" + tail
    assert custom.url == "https://proxy.example/vx/v1/projects/p/locations/asia-east1" + tail
    assert orjson.loads(overridden.body or b"")["stream"] is True


def test_many_text_embeddings_are_batched_by_250() -> None:
    params = {"model": "text-embedding-005", "input": [f"t{i}" for i in range(251)]}
    request = VertexAIAdapter().build_request(
        Endpoint.EMBED, target(vertex_region="us-central1"), params, None
    )

    assert isinstance(request, FanOut)
    assert [len(orjson.loads(r.body or b"")["instances"]) for r in request.requests] == [250, 1]


def test_claude_models_have_no_embeddings() -> None:
    with pytest.raises(BadRequest, match="no embeddings"):
        VertexAIAdapter().build_request(
            Endpoint.EMBED, target(vertex_region="us-central1"), {"model": CLAUDE, "input": "x"}, None
        )


def test_fan_out_combines_raw_or_already_translated_answers() -> None:
    params = {"model": "gemini-embedding-001", "input": ["a", "b c"], "encoding_format": "float"}
    request = VertexAIAdapter().build_request(
        Endpoint.EMBED, target(vertex_region="us-central1"), params, None
    )
    raw = [
        orjson.dumps({"predictions": [{"embeddings": {"values": v, "statistics": {"token_count": n}}}]})
        for v, n in (([0.5, 1.0], 1), ([0.25, -1.0], 2))
    ]
    translated = [VertexAIAdapter().translate_response(Endpoint.EMBED, b, params, True) for b in raw]

    assert isinstance(request, FanOut) and len(request.requests) == 2
    combined = orjson.loads(request.combine(raw))
    assert orjson.loads(request.combine(translated)) == combined
    assert [(d["index"], d["embedding"]) for d in combined["data"]] == [(0, [0.5, 1.0]), (1, [0.25, -1.0])]
    assert combined["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
