"""An emulator of Mistral's API (reference/providers.md §7): ``POST /v1/chat/completions`` (JSON and
OpenAI-style SSE ending in ``data: [DONE]``), ``POST /v1/embeddings`` and ``GET /v1/models``, with
bearer auth.

It is as strict as Mistral: any field Mistral does not know (top level, per message role, per tool
call) is a 422 ``extra_forbidden`` with the object ``message``; a tool-call id that is not exactly
9 of ``[a-zA-Z0-9]`` is Mistral's 400; a tool result must answer an earlier call. Answers are
deterministic (``"Echo: "`` and the last user text; with tools and the last turn from the user,
up to two calls with 9-character ids) and the stream's last chunk carries ``usage`` whether or not
it was asked for, as Mistral does.

Knobs: ``finish_reason`` forces the next answers' finish reason (``model_length``, ``error``).
Faults (``inject``): a status with a Mistral error body and headers; a stream cut after
``stream_events`` chunks; a ``Fault`` with status 200 and a ``json`` body writes that object as
a ``data:`` event after ``stream_events`` chunks and stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.server import Fault, Recorded, ServerThread

API_KEY = "mistral-emulator-key"
CREATED = 1_700_000_000
VALID_ID = re.compile(r"[a-zA-Z0-9]{9}")

CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
    }
)
MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"},
}
TOOL_CALL_FIELDS = {"id", "type", "function", "index"}
EMBED_FIELDS = frozenset({"model", "input", "output_dimension", "output_dtype"})


class Rejected(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def error_body(message: Any, type_: str = "invalid_request_error", code: Any = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_, "param": None, "code": code}


def extra_forbidden(loc: list[Any], value: Any) -> Rejected:
    detail = {
        "type": "extra_forbidden",
        "loc": ["body", *loc],
        "msg": "Extra inputs are not permitted",
        "input": value,
    }
    return Rejected(422, error_body({"detail": [detail]}))


def words(text: str) -> int:
    return max(1, len(text.split()))


def text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def validate_chat(body: Any) -> None:
    if not isinstance(body, dict):
        raise Rejected(400, error_body("Invalid JSON body"))
    for field in body:
        if field not in CHAT_FIELDS:
            raise extra_forbidden([field], body[field])
    if body.get("tool_choice") not in (None, "auto", "none", "any", "required") and not isinstance(
        body.get("tool_choice"), dict
    ):
        raise Rejected(
            422, error_body({"detail": [{"type": "enum", "loc": ["body", "tool_choice"], "msg": "bad"}]})
        )
    call_ids: set[str] = set()
    for i, message in enumerate(body.get("messages") or ()):
        role = message.get("role")
        if role not in MESSAGE_FIELDS:
            detail = {"type": "union_tag_invalid", "loc": ["body", "messages", i], "msg": f"role {role!r}"}
            raise Rejected(422, error_body({"detail": [detail]}))
        for field in message:
            if field not in MESSAGE_FIELDS[role]:
                raise extra_forbidden(["messages", i, role, field], message[field])
        for call in message.get("tool_calls") or ():
            for field in call:
                if field not in TOOL_CALL_FIELDS:
                    raise extra_forbidden(["messages", i, role, "tool_calls", 0, field], call[field])
            _check_id(call.get("id"))
            call_ids.add(call["id"])
        if role == "tool":
            _check_id(message.get("tool_call_id"))
            if message["tool_call_id"] not in call_ids:
                raise Rejected(400, error_body(f"Unexpected tool call id {message['tool_call_id']}"))


def _check_id(value: Any) -> None:
    if not isinstance(value, str) or not VALID_ID.fullmatch(value):
        raise Rejected(
            400,
            error_body(
                f"Tool call id was {value} but must be a-z, A-Z, 0-9, with a length of 9.", code="3280"
            ),
        )


def tool_id(i: int) -> str:
    return hashlib.sha256(f"call-{i}".encode()).hexdigest()[:8] + "Z"


def answer(body: dict[str, Any], forced: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(message, usage) of the answer to a valid request; the finish reason is in the message."""
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    prompt = sum(words(text_of(m.get("content"))) for m in messages)
    message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": None, "prefix": False}
    if tools and messages[-1].get("role") == "user" and body.get("tool_choice") != "none":
        message["tool_calls"] = [
            {
                "id": tool_id(i),
                "type": "function",
                "function": {"name": t["function"]["name"], "arguments": orjson.dumps({"q": i}).decode()},
                "index": i,
            }
            for i, t in enumerate(tools[:2])
        ]
        finish, completion = "tool_calls", 8
    else:
        source = (
            text_of(messages[-1].get("content")) if messages[-1].get("role") != "tool" else "tool results"
        )
        message["content"] = "Echo: " + source
        finish, completion = "stop", words(message["content"])
    message["finish"] = forced or finish
    return message, {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class MistralEmulator:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.finish_reason: str | None = None
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        self.server = ServerThread(app)

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def start(self) -> MistralEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.finish_reason = None

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def _preamble(self, request: web.Request) -> tuple[Any, Fault | None] | web.Response:
        raw = await request.read()
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), raw)
        )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return web.json_response({"message": "Unauthorized", "request_id": "req-emu"}, status=401)
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status != 200:
            body = fault.json if fault.json is not None else error_body("Internal error", "internal_error")
            return web.json_response(body, status=fault.status, headers=fault.headers)
        try:
            return (orjson.loads(raw) if raw else None), fault
        except orjson.JSONDecodeError:
            return web.json_response(error_body("Invalid JSON body"), status=400)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, fault = pre
        try:
            validate_chat(body)
        except Rejected as exc:
            return web.json_response(exc.body, status=exc.status)
        message, usage = answer(body, self.finish_reason)
        finish = message.pop("finish")
        limits = {"x-ratelimit-remaining-req-minute": "59", "mistral-correlation-id": "corr-emu"}
        if body.get("stream"):
            return await self._stream(request, body["model"], message, finish, usage, fault, limits)
        return web.json_response(
            {
                "id": "cmpl-e5cc70bb28c444948073e77776eb30ef",
                "object": "chat.completion",
                "created": CREATED,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
            headers=limits,
        )

    async def _stream(
        self,
        request: web.Request,
        model: str,
        message: dict[str, Any],
        finish: str,
        usage: dict[str, Any],
        fault: Fault | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        head = {
            "id": "cmpl-stream-emu",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
            return {
                **head,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }

        events = [chunk({"role": "assistant", "content": ""})]
        if message["tool_calls"]:
            events.append(chunk({"tool_calls": message["tool_calls"]}))
        else:
            for n, piece in enumerate(message["content"].split(" ")):
                events.append(chunk({"content": piece if n == 0 else " " + piece}))
        events.append(chunk({"content": ""}, finish, usage=usage))  # usage unasked, on the last chunk

        response = web.StreamResponse(headers={"content-type": "text/event-stream", **headers})
        await response.prepare(request)
        for i, event in enumerate(events):
            if fault is not None and fault.stream_events is not None and i >= fault.stream_events:
                if fault.stall_s:
                    await asyncio.sleep(fault.stall_s)
                if fault.cut and request.transport is not None:
                    request.transport.abort()
                    return response
                if fault.json is not None:
                    await response.write(b"data: " + orjson.dumps(fault.json) + b"\n\n")
                await response.write_eof()
                return response
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, _ = pre
        for field in body:
            if field not in EMBED_FIELDS:
                exc = extra_forbidden([field], body[field])
                return web.json_response(exc.body, status=exc.status)
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        dims = int(body.get("output_dimension") or 8)
        data = [
            {"object": "embedding", "embedding": _vector(str(t), dims), "index": i}
            for i, t in enumerate(inputs or [])
        ]
        tokens = sum(words(str(t)) for t in inputs or [])
        return web.json_response(
            {
                "id": "emb-emu",
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), b"")
        )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return web.json_response({"message": "Unauthorized", "request_id": "req-emu"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "codestral-latest", "object": "model"}]})


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dims)]
