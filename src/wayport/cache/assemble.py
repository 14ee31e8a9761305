"""Assembling the chunk events of an OpenAI stream into the complete answer, one event at a time.

The merge follows the openai SDK's own accumulation (``ChatCompletionStreamState``): strings
are concatenated, objects merged, lists of indexed objects (tool calls) merged by ``index``,
other lists extended. So the entry holds the message a streaming client reassembled.
"""

from __future__ import annotations

from typing import Any

from wayport.cache.entry import CHAT, TEXT, Pieces

CHUNK_OBJECTS = {"chat.completion.chunk": CHAT, "text_completion": TEXT}
# Top-level chunk fields that are per-chunk noise, never part of the answer.
IGNORED_TOP = frozenset({"object", "choices", "usage", "obfuscation"})
FIRST_WINS = frozenset({"id", "created", "model"})
CHOICE_FIELDS = frozenset({"index", "delta", "text", "logprobs", "finish_reason"})


class _Choice:
    __slots__ = ("extra", "finish_reason", "logprobs", "message", "pieces", "texts")

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        # top-level text fields of the delta (content, refusal, reasoning_content, or text)
        self.texts: dict[str, list[str]] = {}
        self.pieces: dict[str, list[int]] = {}
        self.logprobs: Any = None
        self.finish_reason: Any = None
        self.extra: dict[str, Any] = {}

    def add_text(self, name: str, value: str) -> None:
        parts = self.texts.get(name)
        if parts is None:
            parts = self.texts[name] = []
            self.pieces[name] = []
        if value:
            parts.append(value)
            self.pieces[name].append(len(value))

    def add_delta(self, delta: dict[str, Any]) -> None:
        message = self.message
        for name, value in delta.items():
            if value is None:
                message.setdefault(name, None)
            elif name == "role":
                message["role"] = value
            elif isinstance(value, str):
                self.add_text(name, value)
            else:
                message[name] = accumulate(message.get(name), value)


class ChunkAssembler:
    """Feed parsed chunk events with ``add``; ``result`` gives the complete answer.

    ``add`` returns ``False`` for an event that is not a chunk of the same OpenAI stream (the
    caller then gives up on caching it).
    """

    def __init__(self) -> None:
        self.kind: str | None = None
        self._object: Any = None
        self._top: dict[str, Any] = {}
        self._usage: Any = None
        self._choices: dict[int, _Choice] = {}

    def add(self, event: dict[str, Any]) -> bool:
        obj = event.get("object")
        if obj is not None and obj == self._object:
            kind = self.kind  # every chunk after the first
        else:
            kind = _kind_of(event)
            if kind is None or (self.kind is not None and kind != self.kind):
                return False
            self.kind, self._object = kind, obj
        choices = event.get("choices", ())
        if not isinstance(choices, list | tuple):
            return False
        top = self._top
        for name in event.keys() - IGNORED_TOP:
            value = event[name]
            if value is not None and (name not in FIRST_WINS or name not in top):
                top[name] = value
        usage = event.get("usage")
        if usage is not None:
            self._usage = usage
        for choice in choices:
            if not isinstance(choice, dict):
                return False
            index = choice.get("index", 0)
            if not isinstance(index, int):
                return False
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice()
            if kind == CHAT:
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    state.add_delta(delta)
                elif delta is not None:
                    return False
            else:
                text = choice.get("text")
                if isinstance(text, str):
                    state.add_text("text", text)
            _merge_choice(state, choice)
        return True

    def result(self) -> tuple[dict[str, Any], Pieces]:
        """The complete ``chat.completion`` / ``text_completion`` and the delta lengths."""
        kind = self.kind or CHAT
        top = self._top
        out: dict[str, Any] = {"id": top.get("id"), "object": kind, "created": top.get("created")}
        out["model"] = top.get("model")
        for name, value in top.items():
            if name not in FIRST_WINS:
                out[name] = value
        choices = []
        pieces: Pieces = {}
        for index in sorted(self._choices):
            state = self._choices[index]
            if kind == CHAT:
                choices.append(_chat_choice(index, state))
            else:
                text = "".join(state.texts.get("text", ()))
                choices.append({"text": text, "index": index, "logprobs": state.logprobs})
                choices[-1]["finish_reason"] = state.finish_reason
                choices[-1].update(state.extra)
            cuts = {name: lengths for name, lengths in state.pieces.items() if lengths}
            if cuts:
                pieces[index] = cuts
        out["choices"] = choices
        out["usage"] = self._usage
        return out, pieces


def _kind_of(event: dict[str, Any]) -> str | None:
    obj = event.get("object")
    if obj is not None:
        return CHUNK_OBJECTS.get(obj) if isinstance(obj, str) else None
    # Some OpenAI-compatible servers leave ``object`` out; the choices still tell.
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return TEXT if "text" in choices[0] and "delta" not in choices[0] else CHAT
    return CHAT if "usage" in event else None


def _merge_choice(state: _Choice, choice: dict[str, Any]) -> None:
    logprobs = choice.get("logprobs")
    if logprobs is not None:
        state.logprobs = accumulate(state.logprobs, logprobs)
    finish = choice.get("finish_reason")
    if finish is not None:
        state.finish_reason = finish
    for name in choice.keys() - CHOICE_FIELDS:
        value = choice[name]
        if value is not None:
            state.extra[name] = value


def _chat_choice(index: int, state: _Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": state.message.get("role") or "assistant", "content": None}
    for name, value in state.message.items():
        if name != "role":
            message[name] = value
    for name, parts in state.texts.items():
        message[name] = "".join(parts)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        ordered = sorted(calls, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        message["tool_calls"] = [
            {k: v for k, v in c.items() if k != "index"} if isinstance(c, dict) else c for c in ordered
        ]
    if message["content"] == "" and (calls or message.get("function_call")):
        message["content"] = None  # a tool-call answer has no content, as in a non-stream answer
    choice = {"index": index, "message": message, "logprobs": state.logprobs}
    choice["finish_reason"] = state.finish_reason
    choice.update(state.extra)
    return choice


def accumulate(acc: Any, new: Any) -> Any:
    """Merge a delta value into what was accumulated so far (the openai SDK's rules)."""
    if acc is None:
        return _copy(new)
    if isinstance(acc, str) and isinstance(new, str):
        return acc + new
    if isinstance(acc, dict) and isinstance(new, dict):
        for name, value in new.items():
            if value is None:
                acc.setdefault(name, None)
            elif name in ("index", "type") or acc.get(name) is None:
                acc[name] = _copy(value)
            elif name == "id":
                continue  # an id is sent once; a repeat must not double it
            else:
                acc[name] = accumulate(acc[name], value)
        return acc
    if isinstance(acc, list) and isinstance(new, list):
        if all(isinstance(item, dict) and "index" in item for item in new):
            by_index = {item.get("index"): item for item in acc if isinstance(item, dict)}
            for item in new:
                existing = by_index.get(item["index"])
                if existing is None:
                    copied = _copy(item)
                    acc.append(copied)
                    by_index[item["index"]] = copied
                else:
                    accumulate(existing, item)
        else:
            acc.extend(_copy(item) for item in new)
        return acc
    return _copy(new)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
