"""The quick path of stream scrubbing: it may only skip streams that the full scrub leaves as they are.

A streamed response body is scrubbed in the log writer, on the event loop. Most streams hold no
secret, so ``scrub_text`` first asks ``_sse_is_clean``; these tests hold it to never clearing a
stream from which the full, event-by-event scrub would remove something.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wayport.observability.scrub import (
    _TOKEN_LITERALS,
    _TOKEN_VALUE,
    _redact_sse,
    _redact_tokens,
    _sse_is_clean,
    scrub_text,
)


def full_scrub(text: str) -> str:
    return _redact_sse(_redact_tokens(text))


def chunk(content: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None, **extra}],
    }


def stream(*events: dict[str, Any], separators: tuple[str, str] = (",", ":")) -> str:
    lines = [f"data: {json.dumps(event, separators=separators)}\n\n" for event in events]
    return "".join(lines) + "data: [DONE]\n\n"


def test_the_usual_stream_is_cleared_even_when_its_prose_names_secrets() -> None:
    text = stream(chunk("Hello"), chunk(' the "token", a \\ secret:'), chunk("password: x\n"))
    assert _sse_is_clean(text)
    assert scrub_text(text) is text


def test_spaced_json_is_cleared_too() -> None:
    text = stream(chunk("hi"), separators=(", ", ": "))
    assert _sse_is_clean(text)


# each of these streams holds something the full scrub redacts
SECRET_STREAMS = {
    "credential-named key": stream(chunk("hi", api_key="k-1")),
    "key before a spaced colon": 'data: {"choices": [], "secret" : "s"}\n\n',
    "key with an escaped quote": stream({'my"password': "p"}),
    "key spelled with a unicode escape": 'data: {"api\\u005fkey": "k"}\n\n',
    "key after a value that starts with a colon": stream({"a": ":", ":token": "t"}),
    "key in a cut-off event": 'data: {"id": "x", "access_token": "abc',
    "provider key in the prose": stream(chunk("use sk-proj-abcdefghijklmnopqrstu")),
    "bearer token in the prose": stream(chunk("Authorization: Bearer abcdefghijk")),
    "key in the query of a url": stream(chunk("see https://x.io/v1?key=AIzaSyD-1234&alt=sse")),
    "bare pair outside the events": "event: x\nid: 1\ntoken: abc\ndata: {}\n\n",
    "bare pair on a line that only looks like data": "data: {}\nevent{ token: abc\n\n",
    "bare pair in data that is not JSON": "data: {}\n\ndata: token: abc\n\n",
}


def test_streams_holding_a_secret_take_the_full_scrub() -> None:
    for name, text in SECRET_STREAMS.items():
        assert not _sse_is_clean(text), name
        assert scrub_text(text) == full_scrub(text) != text, name


def test_every_match_of_the_token_pattern_holds_one_of_the_literals() -> None:
    # the literal list is what lets text skip the token regex: check it against the regex itself
    @settings(max_examples=300, deadline=None)
    @given(st.from_regex(_TOKEN_VALUE))
    def check(text: str) -> None:
        found = _TOKEN_VALUE.search(text)
        assert found is not None
        assert any(literal in found.group(0) for literal in _TOKEN_LITERALS), found.group(0)

    check()


KEYS = st.sampled_from(
    [
        "id", "content", "delta", "index", "role", "usage", "max_tokens", "author",  # harmless
        "api_key", "secret", "x-auth", "password", "token", "Signature",  # credential names
        'a"b', "back\\slash", ":token", "token:", " ", "", "sk-proj-abcdefghijklmnopqrstu",  # awkward
    ]
)  # fmt: skip
PROSE = list('ab :"\\{}[],\n\té') + ["token", "sk-", "key="]
TEXT = st.lists(st.sampled_from(PROSE), max_size=12).map("".join)
VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.integers(-5, 5) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
EVENTS = st.dictionaries(KEYS, VALUES, max_size=4)
EXTRA_LINES = ["", "event: chunk", "data: [DONE]", ": ping", "data: token: x"]


@st.composite
def event_streams(draw: st.DrawFn) -> str:
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]))
    ascii_only = draw(st.booleans())
    lines = []
    for event in draw(st.lists(EVENTS, min_size=1, max_size=4)):
        lines.append("data: " + json.dumps(event, separators=separators, ensure_ascii=ascii_only))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(EXTRA_LINES)))
    text = "\n".join(lines) + "\n\n"
    if draw(st.booleans()):
        text = text[: draw(st.integers(6, len(text)))]  # a body the log cut off
    return text


@settings(max_examples=600, deadline=None)
@given(event_streams())
def test_a_stream_the_quick_check_clears_is_one_the_full_scrub_leaves_alone(text: str) -> None:
    if _sse_is_clean(text):
        assert full_scrub(text) == text
    assert scrub_text(text) == full_scrub(text)
