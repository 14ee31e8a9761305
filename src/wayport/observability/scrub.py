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
# provider key shapes: (the literal a key starts with, the rest of its pattern)
_KEY_SHAPES = (
    ("sk-", "[A-Za-z0-9_-]{16,}"),
    ("AIza", "[0-9A-Za-z_-]{30,}"),
    ("gsk_", "[A-Za-z0-9]{20,}"),
    ("xai-", "[A-Za-z0-9]{20,}"),
    ("pplx-", "[A-Za-z0-9]{20,}"),
    ("hf_", "[A-Za-z0-9]{20,}"),
    ("nvapi-", "[A-Za-z0-9_-]{20,}"),
    ("AKIA", "[0-9A-Z]{16}"),
    ("ASIA", "[0-9A-Z]{16}"),
    ("ghp_", "[A-Za-z0-9]{30,}"),
    ("xox", "[abp]-[A-Za-z0-9-]{10,}"),
)
_TOKEN_VALUE = re.compile(
    r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}|bearer\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\?" + _QUERY_SECRET + r"|&" + _QUERY_SECRET
    + "".join(f"|{re.escape(start)}{rest}" for start, rest in _KEY_SHAPES)
)  # fmt: skip
# Every match of _TOKEN_VALUE contains one of these: a substring search for each (under 1 ns per
# character) rules most text out before the regex runs.
_TOKEN_LITERALS = (
    "Bearer", "bearer", "key=", "token=", "Token=", "sig=", "ignature=", "redential=", "password=",
    *(start for start, _ in _KEY_SHAPES),
)  # fmt: skip

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
    if text.startswith("data:"):
        return text if _sse_is_clean(text) else _redact_sse(_redact_tokens(text))
    text = _redact_tokens(text)
    if ":" not in text and "=" not in text:
        return text  # no JSON object, no ``key: value`` or ``key=value`` pair: nothing named to redact
    if text.lstrip()[:1] in ("{", "["):
        return _redact_json(text)
    return _redact_pairs(text, _BARE_KEY if len(text) <= _BARE_SCAN_LIMIT else _JSON_KEY)


def _redact_tokens(text: str) -> str:
    if any(literal in text for literal in _TOKEN_LITERALS):
        return _TOKEN_VALUE.sub(_redact_token, text)
    return text


def _sse_is_clean(text: str) -> bool:
    """True when an event stream certainly holds nothing to redact: a quick check that lets the
    usual stream (JSON events, no key shapes, no credential-named keys) skip :func:`_redact_sse`,
    which parses every event.

    Every line must be blank, ``data: [DONE]`` or ``data: {…``. Escaped backslashes and quotes are
    masked; then every JSON key (and every ``"key":`` the pair scan of a cut-off event would find)
    is a piece of text between two quotes that is followed by a colon. The distinct pieces are
    few, so each is checked: a credential-like name or an escape sequence is suspect, and a
    suspect piece that is ever followed by a colon fails the check. No match of ``_TOKEN_VALUE``
    spans a quote, so the token search needs to see only the distinct pieces too.
    """
    for line in text.split("\n"):
        payload = line[5:].strip()
        if line and not (line.startswith("data:") and (payload[:1] == "{" or payload == "[DONE]")):
            return False
    if "\\" in text:
        text = text.replace("\\\\", "\x01\x01").replace('\\"', "\x01\x01")
    pieces = set(text.split('"'))
    joined = "\x00".join(pieces)
    if any(literal in joined for literal in _TOKEN_LITERALS):
        return False
    for piece in pieces:
        if len(piece) <= _SHORT_PIECE:
            if _suspect(piece) and _before_colon(piece, text):
                return False
        elif _before_colon(piece, text) and _suspect(piece):
            return False
    return True


# Pieces up to this long are checked for a credential-like name first (the name check is cached
# and the usual key is short); longer ones for a following colon first (a substring search).
_SHORT_PIECE = 64
_QUOTE_COLON = re.compile(r'"\s*:')


def _suspect(piece: str) -> bool:
    return "\x01" in piece or "\\" in piece or is_secret_key(piece)


def _before_colon(piece: str, text: str) -> bool:
    """Whether ``piece`` is somewhere followed by a quote and a colon (over-approximate: a longer
    piece ending with it counts too)."""
    start = text.find(piece + '"')
    while start != -1:
        if _QUOTE_COLON.match(text, start + len(piece)):
            return True
        start = text.find(piece + '"', start + 1)
    return False


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
