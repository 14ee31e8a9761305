"""An emulator of Ollama's native API (reference/providers.md §10.1, §12): ``POST /api/chat`` (JSON,
or NDJSON ``application/x-ndjson`` — the default when ``stream`` is absent, as in Ollama),
``POST /api/embed``, ``GET /api/tags`` and the OpenAI shim's ``GET /v1/models``.

It checks what Ollama's Go decoder would refuse (content that is not a string, images that are not
bare base64, tool-call arguments that are not objects, ``options`` that is not an object), knows
its pulled models (others are a 404 "try pulling it first"), refuses ``think`` for models that
cannot think, and answers deterministically: ``"Echo: "`` and the last user text, cut by
``options.num_predict`` (words, ``done_reason: length``) and ``options.stop``. With tools and the
last turn from the user it calls up to two of them (``done_reason: stop``, as Ollama does); with
``format`` it answers JSON; with ``think`` it thinks first.

``api_key`` (None locally) makes it demand ``Authorization: Bearer <key>`` as ollama.com does.
Faults (``inject``): a status with an ``{"error": …}`` body; a stream cut after ``stream_events``
lines; a ``Fault`` with status 200 and a ``json`` body writes that object as a line after
``stream_events`` lines (a mid-stream ``{"error": …}``) and stops.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.server import Fault, Recorded, ServerThread

MODELS = ("llama3:latest", "llama3.2:latest", "qwen3:latest", "all-minilm:latest")
THINKING_MODELS = ("qwen3",)
THINKING = "Let me think about that."
CREATED_AT = "2025-01-01T00:00:00.123456Z"


class InvalidRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def words(text: str) -> int:
    return len(text.split())


def known(model: Any) -> str:
    name = str(model or "")
    full = name if ":" in name else name + ":latest"
    if full not in MODELS:
        raise InvalidRequest(f'model "{name}" not found, try pulling it first', 404)
    return name


def validate_chat(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("invalid request body")
    model = known(body.get("model"))
    if not isinstance(body.get("options", {}), dict):
        raise InvalidRequest("json: cannot unmarshal string into Go struct field ChatRequest.options")
    fmt = body.get("format")
    if fmt is not None and fmt != "json" and not isinstance(fmt, dict):
        raise InvalidRequest(f"invalid format: {fmt!r}")
    if body.get("think") and not model.startswith(THINKING_MODELS):
        raise InvalidRequest(f'"{model}" does not support thinking')
    for message in body.get("messages") or ():
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f"invalid role: {message.get('role')!r}")
        if not isinstance(message.get("content", ""), str):
            raise InvalidRequest(
                "json: cannot unmarshal array into Go struct field Message.messages.content of type string"
            )
        for image in message.get("images") or ():
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("illegal base64 data at input byte 4") from None
        for call in message.get("tool_calls") or ():
            if not isinstance((call.get("function") or {}).get("arguments"), dict):
                raise InvalidRequest(
                    "json: cannot unmarshal string into Go struct field ToolCallFunction"
                    ".messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments"
                )


def _last_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The final (non-streaming) answer for a valid chat request."""
    messages = body.get("messages") or []
    options = body.get("options") or {}
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if body.get("think"):
        message["thinking"] = THINKING
    done_reason = "stop"
    tools = body.get("tools") or []
    if tools and messages and messages[-1].get("role") == "user":
        message["tool_calls"] = [
            {
                "id": f"call_{i}emu",
                "function": {"index": i, "name": t["function"]["name"], "arguments": {"q": i}},
            }
            for i, t in enumerate(tools[:2])
        ]
        output = 4 * len(message["tool_calls"])
    else:
        source = _last_text(messages) if messages[-1].get("role") != "tool" else "tool results"
        text = "Echo: " + source
        images = sum(len(m.get("images") or ()) for m in messages)
        if images:
            text += f" ({images} images)"
        if body.get("format") is not None:
            text = orjson.dumps({"echo": source}).decode()
        limit = options.get("num_predict")
        if isinstance(limit, int) and 0 <= limit < words(text):
            text, done_reason = " ".join(text.split()[:limit]), "length"
        for stop in options.get("stop") or ():
            if stop in text:
                text = text[: text.index(stop)]
        message["content"] = text
        output = words(text)
    prompt = sum(words(str(m.get("content") or "x")) or 1 for m in messages)
    return {
        "model": body["model"],
        "created_at": CREATED_AT,
        "message": message,
        "done": True,
        "done_reason": done_reason,
        "total_duration": 885095291,
        "load_duration": 3753500,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 328493000,
        "eval_count": output,
        "eval_duration": 552222000,
    }


def stream_lines(done: dict[str, Any]) -> list[dict[str, Any]]:
    """The NDJSON lines of an answer: thinking, then text word by word, tool calls, the done line."""
    head = {"model": done["model"], "created_at": CREATED_AT}
    message = done["message"]
    lines: list[dict[str, Any]] = []
    if message.get("thinking"):
        for n, piece in enumerate(message["thinking"].split(" ")):
            delta = {"role": "assistant", "content": "", "thinking": piece if n == 0 else " " + piece}
            lines.append({**head, "message": delta, "done": False})
    if message.get("content"):
        for n, piece in enumerate(message["content"].split(" ")):
            lines.append(
                {
                    **head,
                    "message": {"role": "assistant", "content": piece if n == 0 else " " + piece},
                    "done": False,
                }
            )
    if message.get("tool_calls"):
        lines.append(
            {
                **head,
                "message": {"role": "assistant", "content": "", "tool_calls": message["tool_calls"]},
                "done": False,
            }
        )
    final = {k: v for k, v in done.items() if k != "message"}
    lines.append({**final, "message": {"role": "assistant", "content": ""}})
    return lines


def embed_vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dims)]


class OllamaEmulator:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/v1/models", self.openai_models)
        self.server = ServerThread(app)

    @property
    def base_url(self) -> str:
        return self.server.url

    def start(self) -> OllamaEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.api_key = None

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
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "unauthorized"}, status=401)
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status != 200:
            body = fault.json if fault.json is not None else {"error": "internal error"}
            return web.json_response(body, status=fault.status, headers=fault.headers)
        try:
            return (orjson.loads(raw) if raw else None), fault
        except orjson.JSONDecodeError:
            return web.json_response(
                {"error": "invalid character 'x' looking for beginning of value"}, status=400
            )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, fault = pre
        try:
            validate_chat(body)
        except InvalidRequest as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        if not body.get("messages"):
            # Ollama loads the model and answers "load" for an empty conversation
            return web.json_response(
                {
                    "model": body["model"],
                    "created_at": CREATED_AT,
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "load",
                    "done": True,
                }
            )
        done = answer(body)
        if body.get("stream", True):  # Ollama streams unless told not to
            return await self._stream(request, stream_lines(done), fault)
        return web.json_response(done)

    async def _stream(
        self, request: web.Request, lines: list[dict[str, Any]], fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
        await response.prepare(request)
        for i, line in enumerate(lines):
            if fault is not None and fault.stream_events is not None and i >= fault.stream_events:
                if fault.stall_s:
                    await asyncio.sleep(fault.stall_s)
                if fault.cut and request.transport is not None:
                    request.transport.abort()
                    return response
                if fault.json is not None:
                    await response.write(orjson.dumps(fault.json) + b"\n")
                break
            await response.write(orjson.dumps(line) + b"\n")
        await response.write_eof()
        return response

    async def embed(self, request: web.Request) -> web.Response:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, _ = pre
        try:
            known(body.get("model"))
        except InvalidRequest as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return web.json_response({"error": "invalid input type"}, status=400)
        dims = int(body.get("dimensions") or 8)
        return web.json_response(
            {
                "model": body["model"],
                "embeddings": [embed_vector(t, dims) for t in inputs],
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(max(1, words(t)) for t in inputs),
            }
        )

    async def tags(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), b"")
        )
        return web.json_response({"models": [{"name": m, "model": m} for m in MODELS]})

    async def openai_models(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), b"")
        )
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "library"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})
