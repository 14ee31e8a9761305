"""The semantic cache through a real gateway with the real local model (the `semantic` extra):
paraphrases hit, negations and other entities do not, everything but the question partitions,
agent turns never hit, streams and JSON share entries; plus the model's precision on a small
paraphrase/negation/other-entity set, and (with WAYPORT_MEASURE_SEMANTIC=1) hit and miss latency.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.openai import OpenAIEmulator
from wayport.cache import (
    Entry,
    MemoryBackend,
    ResponseCache,
    SemanticCache,
    cache_key,
)
from wayport.cache.local_embedder import LocalEmbedder, semantic_extra_installed
from wayport.cache.semantic import EmbedderUnavailable
from wayport.cache.semantic_sync import STREAM
from wayport.settings import Settings

if not semantic_extra_installed():
    pytest.skip(
        "the semantic extra is not installed (pip install 'wayport[semantic]')", allow_module_level=True
    )

FRANCE = "What is the capital of France?"
PARAPHRASE = "capital city of France?"
THRESHOLD = Settings().semantic_cache_threshold


def semantic_config(**cache: Any) -> dict[str, str]:
    config = {"provider": "openai", "api_key": "sk-s", "cache": {"mode": "semantic", **cache}}
    return {"x-portkey-config": orjson.dumps(config).decode()}


def fresh_headers(**cache: Any) -> dict[str, str]:
    """A semantic config in a namespace of its own, so tests never see each other's entries."""
    return {**semantic_config(**cache), "x-portkey-cache-namespace": f"t-{uuid.uuid4().hex}"}


def chat(
    question: str, *, system: str | None = "You are a geography tutor.", **params: Any
) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    return {"model": "gpt-4o-mini", "temperature": 0, "messages": messages, **params}


def post(gateway: GatewayServer, body: Any, headers: dict[str, str], **extra: str) -> httpx.Response:
    r = httpx.post(gateway.v1 + "/chat/completions", json=body, headers={**headers, **extra}, timeout=30)
    assert r.status_code == 200, r.text
    return r


def status(r: httpx.Response) -> str:
    return r.headers["x-portkey-cache-status"]


def content(r: httpx.Response) -> str:
    text: str = r.json()["choices"][0]["message"]["content"]
    return text


def semantic_of(gateway: GatewayServer) -> SemanticCache:
    semantic = gateway.app.cache.semantic
    assert semantic is not None, "the app did not build a semantic cache although the extra is installed"
    return semantic


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def remember(gateway: GatewayServer, body: Any, headers: dict[str, str]) -> httpx.Response:
    """Ask a question the cache does not know and wait until its answer is indexed."""
    semantic = semantic_of(gateway)
    indexed = len(semantic.index)
    r = post(gateway, body, headers)
    assert status(r) == "SEMANTIC MISS"
    wait_until(lambda: len(semantic.index) > indexed and gateway.app.cache.pending == 0)
    return r


@pytest.fixture
def sem(gateway: GatewayServer) -> GatewayServer:
    """The session gateway with its model loaded (once per process; the first semantic request
    would start the load in the background and skip the semantic lookup meanwhile)."""
    embedder = semantic_of(gateway).embedder
    assert isinstance(embedder, LocalEmbedder)
    embedder.load()
    return gateway


# -- through the gateway ------------------------------------------------------------------------


def test_a_paraphrase_is_a_semantic_hit(sem: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    headers = fresh_headers()
    first = remember(sem, chat(FRANCE), headers)
    hits = sem.app.cache.cache.stats.semantic_hits
    r = post(sem, chat(PARAPHRASE), headers)
    assert status(r) == "SEMANTIC HIT"
    assert content(r) == content(first) == f"Echo: {FRANCE}"
    assert len(openai_emulator.requests) == 1
    assert sem.app.cache.cache.stats.semantic_hits == hits + 1
    assert status(post(sem, chat(FRANCE), headers)) == "HIT"  # exact first


def test_negations_and_other_entities_are_semantic_misses(
    sem: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = fresh_headers()
    remember(sem, chat(FRANCE), headers)
    for question in ("What is the capital of Germany?", "What is not the capital of France?"):
        r = post(sem, chat(question), headers)
        assert status(r) == "SEMANTIC MISS", question
        assert content(r) == f"Echo: {question}"
    assert len(openai_emulator.requests) == 3


def test_another_system_prompt_temperature_or_metadata_misses(
    sem: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = fresh_headers()
    remember(sem, chat(FRANCE), headers)
    assert status(post(sem, chat(PARAPHRASE, system="Answer in French."), headers)) == "SEMANTIC MISS"
    assert status(post(sem, chat(PARAPHRASE, temperature=0.7), headers)) == "SEMANTIC MISS"
    assert status(post(sem, chat(PARAPHRASE, model="gpt-4o"), headers)) == "SEMANTIC MISS"
    assert len(openai_emulator.requests) == 4


def test_tool_result_turns_and_forced_tool_calls_never_hit(
    sem: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = fresh_headers()
    tools = [{"type": "function", "function": {"name": "capital_of", "parameters": {"type": "object"}}}]
    call = {"id": "call_0", "type": "function", "function": {"name": "capital_of", "arguments": "{}"}}

    def agent_turn(question: str, result: str) -> dict[str, Any]:
        body = chat(question, tools=tools)
        body["messages"] += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_0", "content": result},
        ]
        return body

    remember(sem, chat(FRANCE, tools=tools, tool_choice="auto"), headers)
    # a tool result is an agent step: only an exact repeat is served from the cache
    assert status(post(sem, agent_turn(FRANCE, "Paris"), headers)) == "MISS"
    assert status(post(sem, agent_turn(PARAPHRASE, "Paris"), headers)) == "MISS"
    assert status(post(sem, agent_turn(FRANCE, "Paris."), headers)) == "MISS"
    # a forced call is too, even for a paraphrase of a cached question
    assert status(post(sem, chat(PARAPHRASE, tools=tools, tool_choice="required"), headers)) == "MISS"
    assert len(openai_emulator.requests) == 5
    wait_until(lambda: sem.app.cache.pending == 0)
    assert status(post(sem, agent_turn(FRANCE, "Paris"), headers)) == "HIT"


def test_a_stream_hits_an_entry_written_without_one(
    sem: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = fresh_headers()
    remember(sem, chat(FRANCE), headers)
    client = openai.OpenAI(base_url=sem.v1, api_key="unused", default_headers=headers)
    raw = client.chat.completions.with_raw_response.create(stream=True, **chat(PARAPHRASE))
    assert raw.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == f"Echo: {FRANCE}"
    assert len(openai_emulator.requests) == 1


def test_a_streamed_answer_is_indexed_once_complete(
    sem: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = fresh_headers()
    semantic = semantic_of(sem)
    indexed = len(semantic.index)
    client = openai.OpenAI(base_url=sem.v1, api_key="unused", default_headers=headers)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(stream=True, **chat(FRANCE))
        if c.choices
    )
    wait_until(lambda: len(semantic.index) > indexed and sem.app.cache.pending == 0)
    r = post(sem, chat(PARAPHRASE), headers)
    assert status(r) == "SEMANTIC HIT" and content(r) == streamed
    assert len(openai_emulator.requests) == 1


def test_a_refresh_replaces_the_neighbours_it_would_have_matched(
    sem: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    headers = fresh_headers()
    semantic = semantic_of(sem)
    remember(sem, chat(FRANCE), headers)
    indexed = len(semantic.index)
    r = post(sem, chat(PARAPHRASE), headers, **{"x-portkey-cache-force-refresh": "true"})
    assert status(r) == "REFRESH"
    # the paraphrase is indexed and the question it replaced is forgotten: same count
    wait_until(lambda: sem.app.cache.pending == 0)
    assert len(semantic.index) == indexed
    again = post(sem, chat("Which city is the capital of France?"), headers)
    assert status(again) == "SEMANTIC HIT" and content(again) == f"Echo: {PARAPHRASE}"
    assert len(openai_emulator.requests) == 2


def test_without_an_embedder_semantic_configs_are_cached_exactly(
    gateway: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = gateway.app.cache
    semantic, said = cache.semantic, cache._said_no_semantic
    cache.semantic, cache._said_no_semantic = None, False
    try:
        headers = fresh_headers()
        with caplog.at_level(logging.WARNING, logger="wayport.cache"):
            assert status(post(gateway, chat(FRANCE), headers)) == "MISS"
            wait_until(lambda: cache.pending == 0)
            assert status(post(gateway, chat(FRANCE), headers)) == "HIT"
            assert status(post(gateway, chat(PARAPHRASE), headers)) == "MISS"
        warnings = [r for r in caplog.records if "'semantic' extra" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        cache.semantic, cache._said_no_semantic = semantic, said


def test_the_model_is_not_loaded_for_requests_that_do_not_use_it(tmp_path: Path) -> None:
    """In a fresh process: building the app and serving simple-mode requests imports no torch."""
    script = textwrap.dedent(
        """
        import sys
        import httpx, orjson
        from tests.conftest import GatewayServer, emulator_settings
        from tests.emulators.openai import OpenAIEmulator

        emulator = OpenAIEmulator().start()
        server = GatewayServer(emulator_settings(emulator, __import__("pathlib").Path(sys.argv[1]))).start()
        try:
            assert server.app.cache.semantic is not None
            config = {"provider": "openai", "api_key": "k", "cache": {"mode": "simple"}}
            body = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
            r = httpx.post(server.v1 + "/chat/completions", json=body,
                           headers={"x-portkey-config": orjson.dumps(config).decode()})
            assert r.headers["x-portkey-cache-status"] == "MISS", r.headers
            heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
            print(",".join(heavy) or "none")
        finally:
            server.stop()
            emulator.stop()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "none"


# -- the embedder and the cache without the gateway --------------------------------------------


async def test_the_local_embedder_gives_normalised_vectors_and_refuses_long_texts() -> None:
    embedder = LocalEmbedder()
    await asyncio.to_thread(embedder.load)
    assert embedder.ready()
    (a, b) = await embedder.embed([FRANCE, PARAPHRASE])
    assert len(a) == 384
    assert sum(x * x for x in a) == pytest.approx(1.0, abs=1e-4)
    assert sum(x * y for x, y in zip(a, b, strict=True)) == pytest.approx(0.907, abs=0.01)
    with pytest.raises(EmbedderUnavailable):
        await embedder.embed(["word " * 300])  # 300 word pieces: more than the model's 256


async def test_concurrent_questions_are_encoded_in_one_batch_and_fail_alone() -> None:
    embedder = LocalEmbedder()
    await asyncio.to_thread(embedder.load)
    (alone,) = await embedder.embed([PARAPHRASE])
    questions = [f"What is the capital of country {n}?" for n in range(8)]
    results = await asyncio.gather(
        *(embedder.embed([q]) for q in questions),
        embedder.embed([PARAPHRASE]),
        embedder.embed(["word " * 300]),
        return_exceptions=True,
    )
    assert all(isinstance(r, list) and len(r) == 1 for r in results[:-1])
    together = results[-2]
    assert isinstance(together, list)
    assert sum(x * y for x, y in zip(alone, together[0], strict=True)) == pytest.approx(1.0, abs=1e-4)
    assert isinstance(results[-1], EmbedderUnavailable)


class LoadingEmbedder:
    """An embedder whose model is still loading: ``ready`` is false until ``loaded`` is set."""

    name = "loading"
    max_chars = 1000

    def __init__(self) -> None:
        self.loaded = asyncio.Event()
        self.asked = 0

    def ready(self) -> bool:
        self.asked += 1
        return self.loaded.is_set()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await self.loaded.wait()
        return [[1.0, 0.0] for _ in texts]


async def test_lookups_do_not_wait_for_a_loading_model_but_stores_do() -> None:
    embedder = LoadingEmbedder()
    cache = SemanticCache(ResponseCache(MemoryBackend()), embedder, threshold=0.9)
    params = chat(FRANCE)
    exact = cache_key(provider="openai", endpoint="chatComplete", params=params, metadata={}, namespace=None)
    request = cache.request(
        exact_key=exact,
        provider="openai",
        endpoint="chatComplete",
        params=params,
        metadata={},
        namespace=None,
    )
    assert request is not None
    assert await asyncio.wait_for(cache.lookup(request), 1) is None  # no wait
    assert embedder.asked == 1 and cache.cache.stats.semantic_misses == 1
    body = {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "Paris"}}]}
    entry = Entry.from_response(orjson.dumps(body))
    assert entry is not None
    store = asyncio.ensure_future(cache.store(request, entry, None, None))
    await asyncio.sleep(0.01)
    assert not store.done() and len(cache.index) == 0
    embedder.loaded.set()
    assert await store and len(cache.index) == 1


# -- precision on a small set (real model, default threshold) ----------------------------------

PARAPHRASES = [
    (FRANCE, PARAPHRASE),
    (FRANCE, "What's the capital of France?"),
    (FRANCE, "Which city is the capital of France?"),
    (FRANCE, "France's capital is which city?"),
    ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("What is the boiling point of water?", "Tell me the boiling point of water."),
    ("What is the boiling point of water?", "water boiling point?"),
    ("How many legs does a spider have?", "How many legs do spiders have?"),
    ("Explain how photosynthesis works.", "How does photosynthesis work?"),
    ("What are the symptoms of the flu?", "What are flu symptoms?"),
    ("How do I center a div in CSS?", "How can I center a div with CSS?"),
    ("Recommend a good book about history.", "Can you recommend a good history book?"),
    ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
    ("What is the speed of light?", "How fast is light?"),
]
NEGATIONS = [
    (FRANCE, "What is not the capital of France?"),
    (FRANCE, "What isn't the capital of France?"),
    ("Is Python a compiled language?", "Is Python not a compiled language?"),
    ("Which foods are safe for dogs?", "Which foods are not safe for dogs?"),
    ("Why does my code work?", "Why doesn't my code work?"),
    ("Should I take ibuprofen with food?", "Should I never take ibuprofen with food?"),
    ("What can I eat during pregnancy?", "What can't I eat during pregnancy?"),
    ("Does the train stop at Lyon?", "Does the train not stop at Lyon?"),
]
OTHER_ENTITIES = [
    (FRANCE, "What is the capital of Germany?"),
    ("Who wrote Hamlet?", "Who wrote Macbeth?"),
    ("How do I reverse a list in Python?", "How do I reverse a list in JavaScript?"),
    ("What is the boiling point of water?", "What is the boiling point of ethanol?"),
    ("How tall is the Eiffel Tower?", "How tall is the Empire State Building?"),
    ("What is the population of Tokyo?", "What is the population of Osaka?"),
    ("Convert 10 miles to kilometres.", "Convert 10 miles to metres."),
    ("How many legs does a spider have?", "How many legs does an ant have?"),
]
# One added or changed word that changes the answer: the hardest cases for a cosine threshold.
QUALIFIERS = [
    (FRANCE, "What was the capital of France?"),
    (FRANCE, "What is the former capital of France?"),
    ("How do I reverse a list in Python?", "How do I reverse a linked list in Python?"),
    ("What is the boiling point of water?", "What is the boiling point of salt water?"),
    ("How do I cook rice?", "How do I cook brown rice?"),
    ("What is the largest city in France?", "What is the smallest city in France?"),
    ("Is coffee healthy?", "Is coffee unhealthy?"),
    ("What is the tallest mountain in Europe?", "What is the second tallest mountain in Europe?"),
]


class Precomputed:
    """The local model's vectors for a fixed set of texts, computed in one batch."""

    name = LocalEmbedder.name
    max_chars = 2048

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


async def test_precision_on_paraphrases_negations_and_other_entities() -> None:
    groups = {
        "paraphrase": PARAPHRASES,
        "negation": NEGATIONS,
        "other entity": OTHER_ENTITIES,
        "qualifier": QUALIFIERS,
    }
    texts = sorted({t for pairs in groups.values() for pair in pairs for t in pair})
    embedder = LocalEmbedder()
    vectors = dict(zip(texts, await embedder.embed(texts), strict=True))
    cache = SemanticCache(ResponseCache(MemoryBackend()), Precomputed(vectors), threshold=THRESHOLD)
    hits: dict[str, list[bool]] = {}
    lines = [f"threshold {THRESHOLD}"]
    for group, pairs in groups.items():
        for n, (stored, asked) in enumerate(pairs):
            namespace = f"{group}-{n}"  # one partition per pair
            found = []
            for text in (stored, asked):
                params = chat(text)
                exact = cache_key(
                    provider="openai",
                    endpoint="chatComplete",
                    params=params,
                    metadata={},
                    namespace=namespace,
                )
                request = cache.request(
                    exact_key=exact,
                    provider="openai",
                    endpoint="chatComplete",
                    params=params,
                    metadata={},
                    namespace=namespace,
                )
                assert request is not None
                found.append(await cache.lookup(request))
                entry = Entry.from_response(
                    orjson.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": {}}]})
                )
                assert entry is not None
                await cache.store(request, entry, None, namespace)
            hit = found[1] is not None
            hits.setdefault(group, []).append(hit)
            cosine = sum(x * y for x, y in zip(vectors[stored], vectors[asked], strict=True))
            lines.append(f"  {group:12} {cosine:.3f} {'HIT ' if hit else 'miss'}  {stored!r} / {asked!r}")
    for group, got in hits.items():
        lines.append(f"{group}: {sum(got)} of {len(got)} hit")
    wrong = sum(sum(got) for group, got in hits.items() if group != "paraphrase")
    right = sum(hits["paraphrase"])
    lines.append(f"precision {right}/{right + wrong}, paraphrase recall {right}/{len(PARAPHRASES)}")
    print("\n" + "\n".join(lines))
    assert wrong == 0, "\n".join(lines)
    assert hits["paraphrase"][0], "the reference paraphrase must hit"
    assert right >= 9, "\n".join(lines)


# -- latency (measured only when asked: WAYPORT_MEASURE_SEMANTIC=1) ----------------------------


@pytest.fixture
def measuring() -> Iterator[None]:
    if not os.environ.get("WAYPORT_MEASURE_SEMANTIC"):
        pytest.skip("set WAYPORT_MEASURE_SEMANTIC=1 to measure hit and miss latency")
    yield


def test_measure_latency_of_hits_and_misses(
    measuring: None, sem: GatewayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = int(os.environ.get("WAYPORT_MEASURE_ROUNDS", "40"))
    headers = fresh_headers()
    simple = {**headers, **_simple_config()}
    timings: dict[str, list[float]] = {}
    with httpx.Client(base_url=sem.v1, timeout=30) as client:

        def timed(name: str, body: Any, hdrs: dict[str, str], expect: str) -> None:
            started = time.perf_counter()
            r = client.post("/chat/completions", json=body, headers=hdrs)
            elapsed = (time.perf_counter() - started) * 1000
            assert r.headers["x-portkey-cache-status"] == expect, (name, r.headers)
            timings.setdefault(name, []).append(elapsed)

        remember(sem, chat(FRANCE), headers)
        for _ in range(3):  # warm the connection and the code paths
            timed("warm", chat(FRANCE), headers, "HIT")
        for i in range(rounds):
            question = f"How many moons does planet {uuid.uuid4().hex[:8]} have? ({i})"
            timed("semantic miss (embed + emulator)", chat(question), headers, "SEMANTIC MISS")
            timed("simple miss (emulator)", chat(question + " (simple)"), simple, "MISS")
            timed("exact hit (semantic mode)", chat(FRANCE), headers, "HIT")
            timed("semantic hit", chat(PARAPHRASE), headers, "SEMANTIC HIT")
        wait_until(lambda: sem.app.cache.pending == 0)
        for _ in range(rounds):
            timed("simple hit", chat(FRANCE), simple, "HIT")
    timings.pop("warm")
    concurrent = asyncio.run(_concurrent_hits(sem, headers, rounds))
    with capsys.disabled():
        print(f"\nlatency through the gateway, {rounds} requests each (ms):")
        for name, values in timings.items():
            values.sort()
            p90 = values[int(len(values) * 0.9) - 1]
            print(f"  {name:34} p50 {statistics.median(values):6.2f}  p90 {p90:6.2f}")
        print(f"  {rounds} semantic hits sent at once: all answered in {concurrent:.0f} ms")


async def _concurrent_hits(gateway: GatewayServer, headers: dict[str, str], count: int) -> float:
    async with httpx.AsyncClient(base_url=gateway.v1, timeout=30) as client:
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(client.post("/chat/completions", json=chat(PARAPHRASE), headers=headers) for _ in range(count))
        )
        elapsed = (time.perf_counter() - started) * 1000
    assert all(r.headers["x-portkey-cache-status"] == "SEMANTIC HIT" for r in replies)
    return elapsed


def _simple_config() -> dict[str, str]:
    config = {"provider": "openai", "api_key": "sk-s", "cache": {"mode": "simple"}}
    return {"x-portkey-config": orjson.dumps(config).decode()}


def test_a_question_answered_on_one_node_is_a_semantic_hit_on_another(
    openai_emulator: OpenAIEmulator, tmp_path: Path
) -> None:
    url = os.environ.get("WAYPORT_TEST_REDIS_URL")
    if not url:
        pytest.skip("WAYPORT_TEST_REDIS_URL is not set (CI sets it; a Redis server is needed)")
    redis.Redis.from_url(url).delete(STREAM)  # entries of earlier runs would satisfy the wait below
    nodes = [
        GatewayServer(emulator_settings(openai_emulator, tmp_path / str(i), redis_url=url)).start()
        for i in range(2)
    ]
    try:
        for node in nodes:
            embedder = semantic_of(node).embedder
            assert isinstance(embedder, LocalEmbedder)
            embedder.load()
        headers = fresh_headers()
        remember(nodes[0], chat(FRANCE), headers)  # answered and indexed on the first node
        second = semantic_of(nodes[1])
        wait_until(lambda: len(second.index) > 0, timeout_s=10)  # announced through Redis
        r = post(nodes[1], chat(PARAPHRASE), headers)
        assert status(r) == "SEMANTIC HIT" and content(r) == f"Echo: {FRANCE}"
        assert len(openai_emulator.requests) == 1
    finally:
        for node in nodes:
            node.stop()
