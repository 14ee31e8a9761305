"""A deterministic, dependency-free embedder: hashed word counts (a lexical "embedding").

It knows no synonyms, so it is no substitute for a sentence model; it serves the tests (same
text, same vector, in every process) and setups that want near-duplicate matching without
loading a model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from wayport.cache.agreement import FUNCTION_WORDS

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Words (lower-cased, function words dropped) hashed into ``dimensions`` signed buckets.

    Two texts with the same content words get the same vector, so the cosine of a question and
    the same question with one more content word is about ``n / sqrt(n * (n + 1))``.
    """

    def __init__(self, dimensions: int = 256, *, max_chars: int = 2000) -> None:
        self.dimensions = dimensions
        self.max_chars = max_chars
        self.name = f"hashing-v1-{dimensions}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vector(text) for text in texts]

    def vector(self, text: str) -> list[float]:
        out = [0.0] * self.dimensions
        for word in _WORD.findall(text.lower()):
            if word in FUNCTION_WORDS:
                continue
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "big") % self.dimensions
            out[bucket] += 1.0 if digest[4] & 1 else -1.0
        return out
