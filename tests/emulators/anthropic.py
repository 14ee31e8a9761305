"""An emulator of Anthropic's Messages API (reference/providers.md §3): ``POST /v1/messages``, JSON
and SSE (``event: message_start`` … ``message_stop`` with ``ping`` in between), Anthropic's error
shape, ``x-api-key`` and the mandatory ``anthropic-version`` header.

It checks the request the way the API does where a translation could go wrong (roles, required
``max_tokens``, temperature range, tool results answering the previous turn's tool uses, tool
results first in their turn, non-empty text) and answers deterministically: ``"Echo: "`` and the
last user text. With tools (and the last turn not a tool result) it calls up to two of them;
with ``thinking`` it thinks first; with ``output_config.format`` it answers JSON. Stop sequences
and ``max_tokens`` (in words) cut the answer as the API would.

Faults (``inject``): a status with an Anthropic error body, headers such as ``retry-after``, a
stream cut after ``stream_events`` events, and — for a stream, a ``Fault`` with status 200 and a
``json`` body — an ``event: error`` with that body after ``stream_events`` events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.server import Fault, Recorded, ServerThread

API_KEY = "sk-ant-emulator"
# the versions the API accepts, including the one the current anthropic SDK sends
VERSIONS = frozenset({"2023-06-01", "2023-01-01", "2026-10-21"})
THINKING = "Let me think about that."


def error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_emu"}


def words(text: str) -> int:
    return max(1, len(text.split()))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if b.get("type") == "text")


def _has_cache_control(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(_has_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_cache_control(v) for v in value)
    return False


class InvalidRequest(Exception):
    pass


def validate(body: Any) -> None:
    """The checks the real API makes that a translator can fail."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be an object")
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise InvalidRequest(f"{field}: Field required")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise InvalidRequest("temperature: range: 0..1")
    messages = body["messages"]
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    previous_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            raise InvalidRequest(f"messages.{i}: content must be a non-empty string or list")
        seen_other = False
        uses: set[str] = set()
        for block in blocks:
            kind = block.get("type")
            if kind == "text" and not block.get("text"):
                raise InvalidRequest(f"messages.{i}: text content blocks must be non-empty")
            if kind == "tool_use":
                if role != "assistant" or not isinstance(block.get("input"), dict):
                    raise InvalidRequest(
                        f"messages.{i}: tool_use blocks need an assistant turn and an input object"
                    )
                uses.add(block["id"])
            if kind == "tool_result":
                if role != "user" or seen_other:
                    raise InvalidRequest(f"messages.{i}: tool_result blocks must come first in a user turn")
                if block.get("tool_use_id") not in previous_tool_uses:
                    raise InvalidRequest(
                        f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
            else:
                seen_other = True
            if kind == "image" and block.get("source", {}).get("type") not in ("base64", "url"):
                raise InvalidRequest(f"messages.{i}: image source type must be base64 or url")
        previous_tool_uses = uses
    for tool in body.get("tools") or ():
        if "input_schema" not in tool or "name" not in tool:
            raise InvalidRequest("tools: each tool needs 'name' and 'input_schema'")


class AnthropicEmulator:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.models)
        self.server = ServerThread(app)

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def start(self) -> AnthropicEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- plumbing --------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        recorded = Recorded(
            request.method, request.path, request.query_string, dict(request.headers), await request.read()
        )
        self.requests.append(recorded)
        return recorded

    @staticmethod
    def _auth_error(request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != API_KEY:
            return web.json_response(error("authentication_error", "invalid x-api-key"), status=401)
        version = request.headers.get("anthropic-version")
        if not version:
            return web.json_response(
                error("invalid_request_error", "anthropic-version: header is required"), status=400
            )
        if version not in VERSIONS:
            return web.json_response(
                error("invalid_request_error", f"anthropic-version: invalid version {version}"), status=400
            )
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        if fault.text is not None:
            return web.Response(
                status=fault.status, text=fault.text, content_type=fault.content_type, headers=fault.headers
            )
        return web.Response(
            status=fault.status,
            body=orjson.dumps(fault.json),
            content_type="application/json",
            headers=fault.headers,
        )

    # -- endpoints -------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        await self._record(request)
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        return web.json_response(
            {
                "data": [{"type": "model", "id": "claude-3-opus-20240229", "display_name": "Claude 3 Opus"}],
                "has_more": False,
                "first_id": "claude-3-opus-20240229",
                "last_id": "claude-3-opus-20240229",
            }
        )

    async def messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status != 200:
            return self._fault_response(fault)
        try:
            body = recorded.json()
            validate(body)
        except (orjson.JSONDecodeError, InvalidRequest) as exc:
            return web.json_response(error("invalid_request_error", str(exc)), status=400)
        message = answer(body)
        if body.get("stream"):
            return await self._stream(request, message, fault)
        return web.json_response(message, headers={"request-id": "req_emu"})

    async def _stream(
        self, request: web.Request, message: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream; charset=utf-8", "request-id": "req_emu"}
        )
        await response.prepare(request)
        limit = fault.stream_events if fault is not None else None
        for i, (name, payload) in enumerate(stream_events(message)):
            if limit is not None and i >= limit:
                assert fault is not None
                if fault.json is not None:
                    await response.write(b"event: error\ndata: " + orjson.dumps(fault.json) + b"\n\n")
                elif fault.cut and request.transport is not None:
                    request.transport.abort()
                    return response
                break
            await response.write(f"event: {name}\ndata: ".encode() + orjson.dumps(payload) + b"\n\n")
        await response.write_eof()
        return response


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The deterministic ``message`` for a validated request."""
    messages = body["messages"]
    last = messages[-1]
    last_text = _text_of(last["content"]) if last["role"] == "user" else ""
    content: list[dict[str, Any]] = []
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        content.append({"type": "thinking", "thinking": THINKING, "signature": "c2lnbmF0dXJl"})
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    answers_tools = isinstance(last["content"], list) and any(
        b.get("type") == "tool_result" for b in last["content"]
    )
    stop_reason, stop_sequence = "end_turn", None
    if tools and not answers_tools and choice.get("type") != "none":
        chosen = [t for t in tools if t["name"] == choice["name"]] if choice.get("type") == "tool" else tools
        for i, tool in enumerate(chosen[: 1 if choice.get("disable_parallel_tool_use") else 2]):
            content.append({"type": "tool_use", "id": f"toolu_0{i}", "name": tool["name"], "input": {"q": i}})
        stop_reason = "tool_use"
    else:
        text = "Echo: " + (last_text or "tool results received")
        output_format = (body.get("output_config") or {}).get("format")
        if output_format:
            text = orjson.dumps({"echo": text}).decode()
        for stop in body.get("stop_sequences") or ():
            if stop in text:
                text, stop_reason, stop_sequence = text[: text.index(stop)], "stop_sequence", stop
                break
        limit = int(body["max_tokens"])
        if len(text.split(" ")) > limit:
            text, stop_reason = " ".join(text.split(" ")[:limit]), "max_tokens"
        content.append({"type": "text", "text": text})
    input_tokens = sum(words(_text_of(m["content"]) or "x") for m in messages)
    output_tokens = sum(words(b.get("text") or b.get("thinking") or "x") for b in content)
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }
    if _has_cache_control(body):
        usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"] = 20, 100
    if thinking.get("type") == "enabled":
        usage["output_tokens_details"] = {"thinking_tokens": words(THINKING)}
    return {
        "id": "msg_emu01",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def stream_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of ``message``, as the API sends them (with a ``ping`` after the start)."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            pieces = block["text"].split(" ")
            for i, piece in enumerate(pieces):
                delta = {"type": "text_delta", "text": piece if i == 0 else " " + piece}
                events.append(
                    ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                )
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            for delta in (
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ):
                events.append(
                    ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                )
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            arguments = orjson.dumps(block["input"]).decode()
            for fragment in ("", arguments[:3], arguments[3:]):
                delta = {"type": "input_json_delta", "partial_json": fragment}
                events.append(
                    ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
    final_usage = {k: v for k, v in usage.items() if k != "service_tier"}
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": final_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
