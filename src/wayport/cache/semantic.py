"""The semantic cache: a question asked in other words gets the cached answer, but only when
nothing else about the request differs and the words agree.

A request takes part when it is a chat or text completion whose last turn is a user's text
question (not a tool result), whose tools, if any, are not forced (``tool_choice`` ``required``
or a named function), with at most ``max_messages`` non-system turns and a question no longer
than the embedder takes. Everything but that last question (provider, model, every parameter,
system prompt, earlier turns, tools, metadata or namespace, workspace, the embedder) forms the
*partition*, which must match exactly; within it the nearest cached question by cosine
similarity is a hit when it reaches ``threshold`` and passes ``texts_agree``.

The answers themselves are ordinary entries of the ``ResponseCache`` (under the exact key of the
request that produced them); the vectors live in a per-process ``CosineIndex``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from wayport.cache.agreement import texts_agree
from wayport.cache.entry import Entry
from wayport.cache.key import cache_key
from wayport.cache.response_cache import ResponseCache, clamp_max_age
from wayport.cache.vectors import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_PER_PARTITION, CosineIndex, Neighbour

log = logging.getLogger("wayport.cache")

DEFAULT_THRESHOLD = 0.95
DEFAULT_MAX_MESSAGES = 4
SEMANTIC_ENDPOINTS = frozenset({"chatComplete", "complete"})
SYSTEM_ROLES = frozenset({"system", "developer"})
# How many neighbours above the threshold are tried before giving up (stale or disagreeing ones).
CANDIDATES = 5


class Embedder(Protocol):
    """Turns texts into vectors for the semantic cache (an extension point).

    ``name`` is part of every partition, so vectors of different models never meet; change it
    when the model changes. Texts longer than ``max_chars`` are never sent. ``embed`` may run a
    local model (off the event loop) or call an embeddings provider; an exception makes the
    request skip the semantic cache, never fail.
    """

    name: str
    max_chars: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@runtime_checkable
class WarmingEmbedder(Protocol):
    """An embedder that needs time before its first vector (a local model that loads lazily).

    ``ready()`` says whether ``embed`` answers at once; when it does not, it starts getting ready
    in the background. Lookups do not wait: they skip the semantic search until it is ready
    (stores, which run off the request path, wait in ``embed``).
    """

    def ready(self) -> bool: ...


class EmbedderUnavailable(Exception):
    """Raised by ``Embedder.embed`` for texts it cannot embed, now or at all: a text longer than
    the model takes, or a model that failed to load and has already said so. The request skips
    the semantic cache quietly (no warning, not counted as an error)."""


@dataclass(slots=True)
class SemanticRequest:
    """A request that may use the semantic cache: its exact key, its partition and the question."""

    exact_key: str
    partition: str
    text: str
    # filled by ``SemanticCache.lookup`` so ``store`` need not embed the question again
    vector: list[float] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A semantic hit: the cached answer, the key it is stored under, and how close it was."""

    entry: Entry
    key: str
    text: str
    similarity: float


def question_of(endpoint: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The question a request asks and its parameters with the question masked out, or ``None``
    when the request is not eligible (see the module)."""
    if endpoint == "complete":
        prompt = params.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt.strip():
            return None
        return prompt, {**params, "prompt": None}
    if endpoint != "chatComplete":
        return None
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user":
        return None  # a tool result, a function result or an assistant prefill
    if params.get("tools") or params.get("functions"):
        choice = params.get("tool_choice", params.get("function_call"))
        if choice == "required" or isinstance(choice, dict):
            return None  # the caller forces a call: an agent step, never replayed from a neighbour
    text = _text_of(last.get("content"))
    if text is None or not text.strip():
        return None
    masked = [*messages[:-1], {**last, "content": None}]
    return text, {**params, "messages": masked}


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                return None  # an image, audio or file: the question is not only its words
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def _turns(params: Mapping[str, Any]) -> int:
    messages = params.get("messages")
    if not isinstance(messages, list):
        return 1
    return sum(1 for m in messages if not (isinstance(m, dict) and m.get("role") in SYSTEM_ROLES))


Announce = Callable[[str, str, str, Sequence[float], float], Awaitable[None]]


class SemanticCache:
    """Nearest-neighbour lookups over a ``ResponseCache``; see the module for the rules.

    The gateway, for a request with ``cache.mode == "semantic"``: looks up the exact key first
    (``ResponseCache.lookup``); on a miss builds a ``SemanticRequest`` with ``request`` (``None``
    means: simple caching only) and calls ``lookup``; after a fresh 2xx answer, calls ``store``
    (``refresh=True`` under ``x-portkey-cache-force-refresh``, which also forgets the neighbours
    the request would have matched).
    """

    def __init__(
        self,
        cache: ResponseCache,
        embedder: Embedder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        check_words: bool = True,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_per_partition: int = DEFAULT_MAX_PER_PARTITION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"the semantic threshold must be in (0, 1], got {threshold}")
        self.cache = cache
        self.embedder = embedder
        self.threshold = threshold
        self.max_messages = max_messages
        self.check_words = check_words
        self.index = CosineIndex(max_entries, max_per_partition=max_per_partition, clock=clock)
        self._ready = embedder.ready if isinstance(embedder, WarmingEmbedder) else None
        # Told of every question indexed here, so other nodes can index it too (SemanticSync).
        self.announce: Announce | None = None

    def request(
        self,
        *,
        exact_key: str,
        provider: str,
        endpoint: str,
        params: Mapping[str, Any],
        metadata: Mapping[str, Any],
        namespace: str | None,
        workspace: str | None = None,
        target: str | None = None,
    ) -> SemanticRequest | None:
        """The semantic side of a request, or ``None`` when it is not eligible."""
        if str(endpoint) not in SEMANTIC_ENDPOINTS or _turns(params) > self.max_messages:
            return None
        found = question_of(str(endpoint), params)
        if found is None:
            return None
        text, masked = found
        if len(text) > self.embedder.max_chars:
            return None
        base = cache_key(
            provider=provider,
            endpoint=endpoint,
            params=masked,
            metadata=metadata,
            namespace=namespace,
            workspace=workspace,
            target=target,
        )
        partition = hashlib.sha256(f"{base}\x00{self.embedder.name}".encode()).hexdigest()
        return SemanticRequest(exact_key, partition, text)

    async def lookup(self, request: SemanticRequest) -> SemanticMatch | None:
        """The closest agreeing cached answer in the request's partition (counted as a semantic
        hit or miss)."""
        match = await self._find(request)
        if match is None:
            self.cache.stats.semantic_misses += 1
        else:
            self.cache.stats.semantic_hits += 1
        return match

    async def store(
        self,
        request: SemanticRequest,
        entry: Entry,
        max_age_s: int | None,
        namespace: str | None,
        *,
        refresh: bool = False,
    ) -> bool:
        """Store ``entry`` under the request's exact key and index its question. With
        ``refresh``, the neighbours this request would have matched are forgotten first."""
        if not await self.cache.store(request.exact_key, entry, max_age_s, namespace):
            return False
        vector = request.vector or await self._embed(request.text)
        if vector is None:
            return True  # stored for exact hits; not findable by meaning
        request.vector = vector
        if refresh:
            for neighbour in self._neighbours(request, vector):
                self.index.remove(request.partition, neighbour.key)
        ttl = clamp_max_age(max_age_s)
        self.index.add(request.partition, request.exact_key, request.text, vector, ttl)
        if self.announce is not None:
            await self.announce(request.partition, request.exact_key, request.text, vector, ttl)
        return True

    async def _find(self, request: SemanticRequest) -> SemanticMatch | None:
        if request.vector is None and self._ready is not None and not self._ready():
            return None  # the model is still loading: a miss now rather than a request kept waiting
        vector = request.vector or await self._embed(request.text)
        if vector is None:
            return None
        request.vector = vector
        for neighbour in self._neighbours(request, vector):
            entry = await self.cache.fetch(neighbour.key)
            if entry is None:  # expired, evicted or deleted in the backend
                self.index.remove(request.partition, neighbour.key)
                continue
            return SemanticMatch(entry, neighbour.key, neighbour.text, neighbour.similarity)
        return None

    def _neighbours(self, request: SemanticRequest, vector: list[float]) -> list[Neighbour]:
        found = self.index.search(request.partition, vector, self.threshold, CANDIDATES)
        if self.check_words:
            found = [n for n in found if texts_agree(request.text, n.text)]
        return found

    async def _embed(self, text: str) -> list[float] | None:
        try:
            (vector,) = await self.embedder.embed([text])
        except EmbedderUnavailable as exc:
            log.debug("not embedded by %s: %s", self.embedder.name, exc)
            return None
        except Exception:
            # Any embedder failure (a model error, an embeddings provider down) only means this
            # request skips the semantic cache.
            self.cache.stats.errors += 1
            log.warning(
                "the embedder %s failed; skipping the semantic cache", self.embedder.name, exc_info=True
            )
            return None
        return vector

    def clear(self) -> None:
        """Forget every indexed question (the answers stay in the backend until they expire)."""
        self.index.clear()
