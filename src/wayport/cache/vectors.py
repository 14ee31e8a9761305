"""An in-memory exact nearest-neighbour index by cosine similarity, split by partition.

Vectors are normalised once when added, so similarity is a dot product. Search is exact and
linear in the number of live entries of the request's partition (same model, parameters, system
prompt, tools, tenant...), which keeps it small in practice. Pure Python: about 10 µs per
384-dimension entry; an array library would make that a single matrix product.
"""

from __future__ import annotations

import math
import operator
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_MAX_ENTRIES = 50_000
# Search is linear in a partition's size (about 12 ms for 1 000 entries of 384 dimensions in pure
# Python): a partition keeps its newest entries only.
DEFAULT_MAX_PER_PARTITION = 1_000


@dataclass(frozen=True, slots=True)
class Neighbour:
    """An indexed entry close to the query: its cache key, its text and the cosine similarity."""

    key: str
    text: str
    similarity: float


@dataclass(slots=True)
class _Item:
    vector: array[float]
    text: str
    expires_at: float


def normalised(vector: Sequence[float]) -> array[float] | None:
    """``vector`` scaled to length 1 (as float32), or ``None`` for a zero vector."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return array("f", (x / norm for x in vector))


def _dot(a: array[float], b: array[float]) -> float:
    return float(sum(map(operator.mul, a, b)))


class CosineIndex:
    """Vectors by partition, each entry living until its expiry; at most ``max_entries`` in all
    and ``max_per_partition`` per partition, the oldest dropped first. ``clock`` returns
    monotonic seconds."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        max_per_partition: int = DEFAULT_MAX_PER_PARTITION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_per_partition < 1:
            raise ValueError("the index needs room for at least one entry")
        self.max_entries = max_entries
        self.max_per_partition = max_per_partition
        self._clock = clock
        self._partitions: dict[str, dict[str, _Item]] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._order)

    def add(self, partition: str, key: str, text: str, vector: Sequence[float], ttl_s: float) -> bool:
        """Index ``key`` (replacing an entry of the same key); ``False`` for a zero vector."""
        unit = normalised(vector)
        if unit is None:
            return False
        self.remove(partition, key)
        items = self._partitions.setdefault(partition, {})
        while len(items) >= self.max_per_partition:
            self.remove(partition, next(iter(items)))  # dicts keep insertion order: the oldest
            items = self._partitions.setdefault(partition, {})
        items[key] = _Item(unit, text, self._clock() + ttl_s)
        self._order[(partition, key)] = None
        while len(self._order) > self.max_entries:
            (old_partition, old_key), _ = self._order.popitem(last=False)
            self._drop(old_partition, old_key)
        return True

    def search(
        self, partition: str, vector: Sequence[float], min_similarity: float, limit: int = 5
    ) -> list[Neighbour]:
        """Entries of ``partition`` at least ``min_similarity`` close to ``vector``, best first."""
        items = self._partitions.get(partition)
        query = normalised(vector)
        if not items or query is None:
            return []
        now = self._clock()
        found: list[Neighbour] = []
        expired: list[str] = []
        for key, item in items.items():
            if item.expires_at <= now:
                expired.append(key)
                continue
            similarity = _dot(query, item.vector)
            if similarity >= min_similarity:
                found.append(Neighbour(key, item.text, similarity))
        for key in expired:
            self.remove(partition, key)
        found.sort(key=lambda n: n.similarity, reverse=True)
        return found[:limit]

    def remove(self, partition: str, key: str) -> None:
        slot = (partition, key)
        if slot in self._order:
            del self._order[slot]
            self._drop(partition, key)

    def clear(self) -> None:
        self._partitions.clear()
        self._order.clear()

    def _drop(self, partition: str, key: str) -> None:
        items = self._partitions.get(partition)
        if items is not None:
            items.pop(key, None)
            if not items:
                del self._partitions[partition]
