"""The semantic cache: which requests take part, what they must share, and which neighbours hit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from wayport.cache import (
    Entry,
    HashingEmbedder,
    MemoryBackend,
    ResponseCache,
    SemanticCache,
    SemanticRequest,
    cache_key,
    texts_agree,
)
from wayport.cache.vectors import CosineIndex

FRANCE = "What is the capital of France?"
SYSTEM = {"role": "system", "content": "You are a geography tutor."}


def answer(text: str) -> Entry:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": None,
    }
    entry = Entry.from_response(orjson.dumps(body))
    assert entry is not None
    return entry


def chat(question: str, *, system: dict[str, Any] | None = SYSTEM, **params: Any) -> dict[str, Any]:
    messages = ([system] if system else []) + [{"role": "user", "content": question}]
    return {"model": "gpt-4o-mini", "temperature": 0, "messages": messages, **params}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedEmbedder:
    """Vectors whose cosine to the anchor question is set per text: here, the similarities
    all-MiniLM-L6-v2 gave on this machine (reference/semantic-cache-measurements.md)."""

    name = "scripted-minilm"
    max_chars = 1000

    def __init__(self, anchor: str, similarities: dict[str, float]) -> None:
        self.axes = {anchor: 0, **{text: i + 1 for i, text in enumerate(similarities)}}
        self.similarities = {anchor: 1.0, **similarities}
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for text in texts:
            vector = [0.0] * (len(self.axes) + 1)
            s = self.similarities[text]
            vector[self.axes[text]] = math.sqrt(max(0.0, 1 - s * s))
            vector[0] = s
            out.append(vector)
        return out


MINILM = ScriptedEmbedder(
    FRANCE,
    {
        "capital city of France?": 0.907,
        "What is not the capital of France?": 0.898,
        "What is the capital of Germany?": 0.663,
        "Tell me a joke about pirates": 0.069,
    },
)


class BrokenEmbedder:
    name = "broken"
    max_chars = 1000

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise RuntimeError("model not loaded")


def make(embedder: Any = None, **kwargs: Any) -> SemanticCache:
    kwargs.setdefault("clock", Clock())
    return SemanticCache(ResponseCache(MemoryBackend()), embedder or HashingEmbedder(), **kwargs)


def request_of(cache: SemanticCache, params: dict[str, Any], **kwargs: Any) -> SemanticRequest | None:
    args: dict[str, Any] = {
        "provider": "openai",
        "endpoint": "chatComplete",
        "metadata": {},
        "namespace": None,
    }
    args.update(kwargs)
    exact = cache_key(params=params, **args)
    return cache.request(exact_key=exact, params=params, **args)


async def remember(cache: SemanticCache, params: dict[str, Any], text: str, **kwargs: Any) -> None:
    request = request_of(cache, params, **kwargs)
    assert request is not None
    assert await cache.lookup(request) is None
    assert await cache.store(request, answer(text), None, kwargs.get("namespace"))


async def ask(cache: SemanticCache, params: dict[str, Any], **kwargs: Any) -> str | None:
    request = request_of(cache, params, **kwargs)
    assert request is not None
    match = await cache.lookup(request)
    if match is None:
        return None
    content: str = orjson.loads(match.entry.body)["choices"][0]["message"]["content"]
    return content


# -- which requests take part -----------------------------------------------------------------


def test_a_user_question_takes_part() -> None:
    request = request_of(make(), chat(FRANCE))
    assert request is not None and request.text == FRANCE


def test_tool_results_and_assistant_turns_never_take_part() -> None:
    cache = make()
    tool_turn = chat(FRANCE)
    tool_turn["messages"] += [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Paris"},
    ]
    assert request_of(cache, tool_turn) is None
    prefill = chat(FRANCE)
    prefill["messages"].append({"role": "assistant", "content": "The capital is"})
    assert request_of(cache, prefill) is None


def test_forced_tool_calls_never_take_part() -> None:
    cache = make()
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    assert request_of(cache, chat(FRANCE, tools=tools, tool_choice="required")) is None
    forced = {"type": "function", "function": {"name": "lookup"}}
    assert request_of(cache, chat(FRANCE, tools=tools, tool_choice=forced)) is None
    assert request_of(cache, chat(FRANCE, tools=tools, tool_choice="auto")) is not None
    assert request_of(cache, chat(FRANCE, tools=tools)) is not None


def test_long_conversations_and_long_questions_do_not_take_part() -> None:
    cache = make()
    turns = [{"role": r, "content": "x"} for r in ("user", "assistant", "user", "assistant")]
    long_chat = {"model": "m", "messages": [SYSTEM, *turns, {"role": "user", "content": FRANCE}]}
    assert request_of(cache, long_chat) is None
    long_chat["messages"] = long_chat["messages"][2:]  # system + 3 turns + the question: 4 turns
    assert request_of(cache, long_chat) is not None
    assert request_of(cache, chat("word " * 500)) is None  # longer than the embedder takes


def test_only_text_questions_on_chat_and_completions_take_part() -> None:
    cache = make()
    image = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x"}},
    ]
    assert request_of(cache, chat(image)) is None  # type: ignore[arg-type]
    parts = [{"type": "text", "text": "What is the capital"}, {"type": "text", "text": "of France?"}]
    assert request_of(cache, chat(parts)) is not None  # type: ignore[arg-type]
    assert request_of(cache, {"model": "e", "input": FRANCE}, endpoint="embed") is None
    prompt = request_of(cache, {"model": "i", "prompt": FRANCE}, endpoint="complete")
    assert prompt is not None and prompt.text == FRANCE
    assert request_of(cache, {"model": "i", "prompt": ["a", "b"]}, endpoint="complete") is None


def test_everything_but_the_question_partitions() -> None:
    cache = make()

    def partition(params: dict[str, Any], **kwargs: Any) -> str:
        request = request_of(cache, params, **kwargs)
        assert request is not None
        return request.partition

    base = partition(chat(FRANCE))
    assert partition(chat("Something else entirely")) == base
    assert partition(chat(FRANCE, system={"role": "system", "content": "Answer in French."})) != base
    assert partition(chat(FRANCE, temperature=0.7)) != base
    assert partition(chat(FRANCE, model="gpt-4o")) != base
    assert partition(chat(FRANCE, tools=[{"type": "function", "function": {"name": "f"}}])) != base
    assert partition(chat(FRANCE), metadata={"_user": "b"}) != base
    assert partition(chat(FRANCE), namespace="n") != base
    assert partition(chat(FRANCE), workspace="ws") != base
    assert partition(chat(FRANCE), provider="groq") != base
    other_model = make(HashingEmbedder(128))
    request = request_of(other_model, chat(FRANCE))
    assert request is not None and request.partition != base


# -- which neighbours hit -----------------------------------------------------------------------


async def test_a_paraphrase_hits_and_a_negation_or_another_entity_does_not() -> None:
    cache = make(MINILM, threshold=0.85)
    await remember(cache, chat(FRANCE), "Paris")
    assert await ask(cache, chat("capital city of France?")) == "Paris"
    assert await ask(cache, chat("What is not the capital of France?")) is None
    assert await ask(cache, chat("What is the capital of Germany?")) is None
    assert await ask(cache, chat("Tell me a joke about pirates")) is None
    assert cache.cache.stats.semantic_hits == 1 and cache.cache.stats.semantic_misses == 4


async def test_without_the_word_check_a_negation_would_hit() -> None:
    cache = make(MINILM, threshold=0.85, check_words=False)
    await remember(cache, chat(FRANCE), "Paris")
    assert await ask(cache, chat("What is not the capital of France?")) == "Paris"  # the failure it prevents


async def test_the_default_threshold_takes_only_very_close_questions() -> None:
    cache = make(MINILM)
    await remember(cache, chat(FRANCE), "Paris")
    assert await ask(cache, chat("capital city of France?")) is None  # 0.907 < 0.95
    lexical = make()
    await remember(lexical, chat(FRANCE), "Paris")
    assert await ask(lexical, chat("Capital of France?")) == "Paris"


async def test_a_hit_reports_its_similarity_and_source() -> None:
    cache = make(MINILM, threshold=0.85)
    await remember(cache, chat(FRANCE), "Paris")
    request = request_of(cache, chat("capital city of France?"))
    assert request is not None
    match = await cache.lookup(request)
    assert match is not None and match.similarity == pytest.approx(0.907, abs=1e-3)
    assert match.text == FRANCE and match.key == request_of(cache, chat(FRANCE)).exact_key  # type: ignore[union-attr]


async def test_a_different_system_prompt_or_temperature_does_not_hit() -> None:
    cache = make(threshold=0.8)
    await remember(cache, chat(FRANCE), "Paris")
    assert await ask(cache, chat("capital city of France?")) == "Paris"
    assert (
        await ask(cache, chat("capital city of France?", system={"role": "system", "content": "Lie."}))
        is None
    )
    assert await ask(cache, chat("capital city of France?", temperature=1.2)) is None


async def test_an_answer_deleted_from_the_backend_is_no_longer_a_hit() -> None:
    cache = make(threshold=0.8)
    await remember(cache, chat(FRANCE), "Paris", namespace="geo")
    assert await ask(cache, chat("capital city of France?"), namespace="geo") == "Paris"
    await cache.cache.delete_namespace("geo")
    assert await ask(cache, chat("capital city of France?"), namespace="geo") is None
    assert len(cache.index) == 0


async def test_indexed_questions_expire_with_their_answers() -> None:
    clock = Clock()
    cache = make(threshold=0.8, clock=clock)
    request = request_of(cache, chat(FRANCE))
    assert request is not None
    await cache.store(request, answer("Paris"), 120, None)
    clock.now += 121
    assert await ask(cache, chat("capital city of France?")) is None
    assert len(cache.index) == 0


async def test_a_refresh_replaces_the_neighbours_it_would_have_matched() -> None:
    cache = make(threshold=0.8)
    await remember(cache, chat(FRANCE), "Paris (old)")
    fresh = request_of(cache, chat("capital city of France?"))
    assert fresh is not None
    assert await cache.store(fresh, answer("Paris (new)"), None, None, refresh=True)
    assert len(cache.index) == 1
    assert await ask(cache, chat("Which is the capital of France?")) == "Paris (new)"


async def test_the_question_is_embedded_once_per_request() -> None:
    embedder = ScriptedEmbedder(FRANCE, {})
    cache = make(embedder)
    await remember(cache, chat(FRANCE), "Paris")
    assert embedder.calls == 1


async def test_a_failing_embedder_skips_the_semantic_cache_without_failing() -> None:
    cache = make(BrokenEmbedder())
    request = request_of(cache, chat(FRANCE))
    assert request is not None
    assert await cache.lookup(request) is None
    assert await cache.store(request, answer("Paris"), None, None)  # still an exact entry
    assert await cache.cache.lookup(request.exact_key) is not None
    assert cache.cache.stats.errors == 2


async def test_errors_are_not_stored_or_indexed() -> None:
    cache = make()
    request = request_of(cache, chat(FRANCE))
    assert request is not None
    assert not await cache.store(request, Entry(b"{}", "chat.completion", status=500), None, None)
    assert len(cache.index) == 0


def test_a_threshold_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        make(threshold=1.5)


# -- the word check and the index ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (FRANCE, "capital city of France?", True),
        (FRANCE, "What's France's capital?", True),
        ("How do I reverse a list in Python?", "How can I reverse a Python list?", True),
        (FRANCE, "What is not the capital of France?", False),
        ("Is Paris the capital of France?", "Isn't Paris the capital of France?", False),
        (FRANCE, "What is the capital of Germany?", False),
        ("Is an elephant bigger than a mouse?", "Is an elephant smaller than a mouse?", False),
        ("Top 3 films of 1999", "Top 5 films of 1999", False),
        ("what is the function of money?", "can you explain what function of TV is?", False),
        ("largest city in France", "second largest city in France", False),
        (FRANCE, "former royal capital of France", False),
    ],
)
def test_questions_agree_only_when_their_words_do(a: str, b: str, same: bool) -> None:
    assert texts_agree(a, b) is same
    assert texts_agree(b, a) is same


def test_the_index_keeps_the_newest_entries_and_ranks_by_similarity() -> None:
    index = CosineIndex(max_entries=2)
    assert not index.add("p", "zero", "z", [0.0, 0.0], 60)
    index.add("p", "a", "a", [1.0, 0.0], 60)
    index.add("p", "b", "b", [0.8, 0.6], 60)
    assert [n.key for n in index.search("p", [1.0, 0.1], 0.5)] == ["a", "b"]
    assert index.search("other", [1.0, 0.0], 0.5) == []
    index.add("p", "c", "c", [0.0, 1.0], 60)
    assert len(index) == 2 and [n.key for n in index.search("p", [1.0, 0.0], 0.0)] == ["b", "c"]


def test_a_partition_keeps_only_its_newest_entries() -> None:
    index = CosineIndex(max_per_partition=2)
    for key in ("a", "b", "c"):
        index.add("p", key, key, [1.0, 0.0], 60)
    index.add("q", "d", "d", [1.0, 0.0], 60)
    assert [n.key for n in index.search("p", [1.0, 0.0], 0.5)] == ["b", "c"]
    assert len(index) == 3
