"""What the cache stores: one successful OpenAI-shaped answer, complete, plus how it was chunked.

A streamed answer is stored assembled (a ``chat.completion`` or ``text_completion``), not as its
chunk list: the chunk list repeats id, model and timestamps in every event and is tens of times
larger. What the chunking looked like is kept as ``pieces``: the length of every text delta, per
choice and field, so a stream replay cuts the text where the provider cut it.

On the wire an entry is ``MAGIC``, a 4-byte length, a small JSON header and the body bytes as
they are, so a non-stream hit sends the body without parsing it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

MAGIC = b"WPC1"
# The OpenAI ``object`` of each answer the cache keeps; images carry no ``object``.
CHAT = "chat.completion"
TEXT = "text_completion"
EMBEDDINGS = "list"
IMAGES = "image"
KINDS = frozenset({CHAT, TEXT, EMBEDDINGS, IMAGES})
# Response headers that describe the upstream call at that moment, not the answer: replaying them
# from the cache would mislead (rate limits, request ids, timings), and the gateway sets its own.
VOLATILE_HEADER_PREFIXES = (
    b"x-ratelimit-",
    b"anthropic-ratelimit-",
    b"x-portkey-",
    b"retry-after",
    b"x-request-id",
    b"request-id",
    b"openai-processing-ms",
    b"cf-",
    b"x-envoy-",
    b"date",
    b"content-type",
    b"content-length",
    b"set-cookie",
)

Pieces = dict[int, dict[str, list[int]]]


class CorruptEntry(ValueError):
    """Stored bytes that are not an entry of this version (treated as a miss)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached answer: the complete OpenAI-shaped JSON ``body`` of a 2xx response.

    ``kind`` is the answer's ``object`` (``chat.completion``, ``text_completion``, ``list`` for
    embeddings) or ``image``. ``pieces`` (choice index -> field -> delta lengths) is set when
    the answer was recorded from a stream. ``stored_at`` is a Unix time.
    """

    body: bytes
    kind: str
    status: int = 200
    headers: tuple[tuple[bytes, bytes], ...] = ()
    pieces: Pieces | None = field(default=None, compare=False)
    streamed: bool = False
    stored_at: float = 0.0

    @classmethod
    def from_response(
        cls, body: bytes, *, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> Entry | None:
        """The entry for a non-stream answer, or ``None`` when it must not be cached: a non-2xx
        status, a body that is not a JSON object, an ``error`` member (some providers answer
        errors with 200), no choices, or an answer of a kind the cache does not keep."""
        if not 200 <= status < 300:
            return None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        kind = answer_kind(data)
        if kind is None:
            return None
        return cls(body, kind, status, keep_headers(headers))

    def to_bytes(self) -> bytes:
        meta: dict[str, object] = {"k": self.kind, "s": self.status, "t": self.stored_at}
        if self.headers:
            meta["h"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers]
        if self.pieces is not None:
            meta["p"] = {str(i): fields for i, fields in self.pieces.items()}
        if self.streamed:
            meta["st"] = True
        head = orjson.dumps(meta)
        return MAGIC + len(head).to_bytes(4, "big") + head + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        if data[:4] != MAGIC or len(data) < 8:
            raise CorruptEntry("not a cache entry of this version")
        size = int.from_bytes(data[4:8], "big")
        try:
            meta = orjson.loads(data[8 : 8 + size])
            pieces = meta.get("p")
            return cls(
                body=data[8 + size :],
                kind=str(meta["k"]),
                status=int(meta["s"]),
                headers=tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in meta.get("h", ())),
                pieces={int(i): fields for i, fields in pieces.items()} if pieces is not None else None,
                streamed=bool(meta.get("st", False)),
                stored_at=float(meta.get("t", 0.0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptEntry(f"unreadable cache entry: {exc!r}") from None

    def stamped(self, stored_at: float | None = None) -> Entry:
        """This entry with its store time set (now by default)."""
        return Entry(
            self.body,
            self.kind,
            self.status,
            self.headers,
            self.pieces,
            self.streamed,
            time.time() if stored_at is None else stored_at,
        )


def answer_kind(data: object) -> str | None:
    """The kind of a parsed answer if the cache may keep it, else ``None``."""
    if not isinstance(data, dict) or "error" in data:
        return None
    obj = data.get("object")
    if obj in (CHAT, TEXT):
        choices = data.get("choices")
        return str(obj) if isinstance(choices, list) and choices else None
    if obj == EMBEDDINGS:
        return EMBEDDINGS if isinstance(data.get("data"), list) else None
    if obj is None and isinstance(data.get("data"), list) and "created" in data:
        return IMAGES
    return None


def keep_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """The response headers worth replaying with a cached answer (lower-cased names)."""
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if not lowered.startswith(VOLATILE_HEADER_PREFIXES):
            kept.append((lowered, value))
    return tuple(kept)
