"""Identifiers: slugs like ``pc-<name>-<suffix>`` and references like ``pp-...@production``."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Reference", "iso", "new_id", "new_slug", "parse_reference", "slugify", "utcnow"]

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
SUFFIX_LENGTH = 6
MAX_NAME_PART = 40


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A UTC timestamp as the API writes it: ``2025-03-01T12:00:00.123456Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def slugify(name: str, fallback: str) -> str:
    """Lower-case ASCII letters and digits joined by ``-``, at most 40 characters."""
    slug = _NOT_SLUG.sub("-", name.lower()).strip("-")[:MAX_NAME_PART].strip("-")
    return slug or fallback


def new_slug(prefix: str, name: str, fallback: str) -> str:
    """``<prefix>-<slugified name>-<6 random base36 characters>``, e.g. ``pc-support-bot-k3x9q1``."""
    suffix = "".join(secrets.choice(_BASE36) for _ in range(SUFFIX_LENGTH))
    return f"{prefix}-{slugify(name, fallback)}-{suffix}"


@dataclass(frozen=True, slots=True)
class Reference:
    """A prompt (or partial) reference: ``key`` alone is the default (published) version;
    ``key@12`` a version number, ``key@latest`` the newest, ``key@production`` a label."""

    key: str
    version: int | None = None
    label: str | None = None

    @property
    def latest(self) -> bool:
        return self.label == "latest"

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.key}@{self.version}"
        return f"{self.key}@{self.label}" if self.label else self.key


def parse_reference(text: str) -> Reference:
    """Split ``id@selector``; a selector of digits is a version number, anything else a label."""
    key, _, selector = text.strip().partition("@")
    if not selector:
        return Reference(key)
    if selector.isdigit():
        return Reference(key, version=int(selector))
    return Reference(key, label=selector.lower())
