"""Secret scrubbing: what must never reach a stored log, a spool file or an export.

Two kinds of evidence mark a secret. A *name*: a mapping key, a header name or a ``key: value``
pair whose key looks like a credential (logfire's list, minus ``session`` because session ids are
routine, non-secret metadata in gateway logs). A *shape*: a value that looks like a bearer token or
a provider key (``sk-…``, ``AIza…``, ``AKIA…``) or a credential in a URL query (``?key=…``).
Scrubbing over-redacts rather than under-redacts; a redacted value reads ``[REDACTED]``.

Prose inside JSON strings (a user's message) is searched for key shapes only, not for
``password: …`` phrases: that is the user's content, not a credential the gateway handles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from wayport.providers.base import Secret

REDACTED = "[REDACTED]"

# Names of secrets. ``auth`` but not ``author(s)``; ``token`` but not the usage counters
# (``max_tokens``, ``prompt_tokens``, ``tokenizer``) that every LLM body carries.
_SENSITIVE_WORDS = (
    r"password|passwd|mysql_pwd|secret|auth(?!ors?\b)|credential|private[._ -]?key|api[._ -]?key"
    r"|cookie|social[._ -]?security|credit[._ -]?card|(?<![a-z])(?:csrf|xsrf|jwt|ssn)(?![a-z])"
    r"|(?<![a-z])token(?!s|izer|_count|_usage|_limit|_type|_id)|signature"
)
_SENSITIVE_KEY = re.compile(_SENSITIVE_WORDS, re.IGNORECASE)

# Shapes of secrets, found anywhere in text. Every alternative starts with a literal character so
# that the regex engine can skip ahead quickly; this pass costs about 10 ns per character.
_QUERY_SECRET = (
    r"(?:key|api[_-]?key|access[_-]?token|token|sig|signature|x-amz-signature|x-amz-security-token"
    r"|x-amz-credential|password|X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential)=[^&#\s\"'<>\\]+"
)
_TOKEN_VALUE = re.compile(
    r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}|bearer\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\?" + _QUERY_SECRET + r"|&" + _QUERY_SECRET + r"|sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}"
    r"|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|pplx-[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|nvapi-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}"
    r"|ghp_[A-Za-z0-9]{30,}|xox[abp]-[A-Za-z0-9-]{10,}"
)

# ``"key": value`` pairs in JSON that did not parse (a truncated body), and ``key: value`` /
# ``key=value`` pairs in short free text (error messages).
_JSON_KEY = re.compile(r'"([^"\\\n]{1,100})"\s*:\s*')
_BARE_KEY = re.compile(r'(?<![\w.-])"?([\w.-]{1,100})"?\s*[:=]\s*')
_VALUE_AFTER_KEY = re.compile(
    r"(?:Bearer|Basic|Digest|AWS4-HMAC-SHA256)\s+[^\n\"]*"  # an Authorization header's value
    r'|"(?:[^"\\\n]|\\.)*(?:"|$)'  # a JSON string, possibly cut off by truncation
    r"|\{[^{}]*(?:\}|$)"  # a flat object
    r"|\[[^\[\]]*(?:\]|$)"  # a flat array
    r"|[^\s,;&}\]\"]+"  # a bare word up to a delimiter
)
# Free text longer than this is scanned for JSON-style pairs only (the bare-word scan is slower).
_BARE_SCAN_LIMIT = 8192


@lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """True when a mapping key or header name looks like it holds a credential."""
    return _SENSITIVE_KEY.search(name) is not None


def scrub(value: Any) -> Any:
    """A copy of ``value`` with every secret replaced by ``[REDACTED]``.

    Mappings lose the values of credential-named keys, ``(name, value)`` pairs (header lists) the
    values of credential-named headers, strings their credential-shaped substrings (see
    :func:`scrub_text`). ``Secret`` objects become ``[REDACTED]``; other types pass through.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {key: REDACTED if _holds_secret(key, item) else scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and is_secret_key(value[0]):
            return [value[0], REDACTED]
        return [scrub(item) for item in value]
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, bytes | bytearray):
        return scrub_text(bytes(value).decode("utf-8", "replace"))
    return value


def _holds_secret(key: object, item: object) -> bool:
    return item is not None and isinstance(key, str) and is_secret_key(key)


def scrub_text(text: str) -> str:
    """``text`` with credential-shaped substrings and the values of credential-named keys redacted.

    JSON text (and each JSON event of an event stream) is parsed and its keys checked one by one;
    JSON cut off by truncation and other text are scanned for ``"key": value`` (and, when short,
    ``key: value`` / ``key=value``) pairs.
    """
    if not text:
        return text
    text = _TOKEN_VALUE.sub(_redact_token, text)
    if text.startswith("data:"):
        return _redact_sse(text)
    if text.lstrip()[:1] in ("{", "["):
        return _redact_json(text)
    return _redact_pairs(text, _BARE_KEY if len(text) <= _BARE_SCAN_LIMIT else _JSON_KEY)


def _redact_json(text: str) -> str:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _redact_pairs(text, _JSON_KEY)
    if _redact_keys_in_place(data):
        return orjson.dumps(data).decode()
    return text


def _redact_sse(text: str) -> str:
    """An event stream, line by line: parsing each JSON event is several times faster than
    scanning the whole stream as free text."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        payload = line[5:].strip() if line.startswith("data:") else ""
        if payload[:1] in ("{", "["):
            redacted = _redact_json(payload)
            if redacted is not payload:
                lines[i] = "data: " + redacted
        elif line:
            lines[i] = _redact_pairs(line, _BARE_KEY)
    return "\n".join(lines)


def _redact_token(match: re.Match[str]) -> str:
    found = match.group(0)
    if found[0] in "?&":
        return found[: found.index("=") + 1] + REDACTED
    if found[0] in "Bb":
        return found[:6] + " " + REDACTED
    # a key shape glued to a longer word (``task-…``) is not a key
    start = match.start()
    if start > 0 and (match.string[start - 1].isalnum() or match.string[start - 1] in "_-"):
        return found
    return REDACTED


def _redact_keys_in_place(data: Any) -> bool:
    changed = False
    if isinstance(data, dict):
        for key, item in data.items():
            if item is not None and is_secret_key(key):
                if item != REDACTED:
                    data[key] = REDACTED
                    changed = True
            elif isinstance(item, dict | list):
                changed = _redact_keys_in_place(item) or changed
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict | list):
                changed = _redact_keys_in_place(item) or changed
    return changed


def _redact_pairs(text: str, key_pattern: re.Pattern[str]) -> str:
    pieces: list[str] = []
    position = 0
    for match in key_pattern.finditer(text):
        if match.start() < position or not is_secret_key(match.group(1)):
            continue
        value = _VALUE_AFTER_KEY.match(text, match.end())
        if value is None:
            continue
        raw = value.group(0)
        if raw in (REDACTED, f'"{REDACTED}"'):
            continue
        pieces.append(text[position : match.end()])
        pieces.append(f'"{REDACTED}"' if raw[:1] in ('"', "{", "[") else REDACTED)
        position = value.end()
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)
