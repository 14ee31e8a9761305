"""An emulator of OpenAI's HTTP API (reference/providers.md §1): chat completions (with tool
calls), legacy completions, embeddings and models, JSON and SSE, with the OpenAI error shape.

It checks the bearer key, records every request and takes queued faults (``Fault``) so tests
can make it fail, stall or cut a stream. Answers are deterministic: the assistant repeats the
last user message after ``"Echo: "``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.server import Fault, Recorded, ServerThread

CREATED = 1_700_000_000


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


class OpenAIEmulator:
    def __init__(self, stream_gap_s: float = 0.0) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.stream_gap_s = stream_gap_s
        self.chaos: Chaos | None = None
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_route("*", "/v1/echo/{tail:.*}", self.echo)
        # Azure OpenAI's URL shape leads to the same handlers.
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        app.router.add_post("/openai/v1/chat/completions", self.chat)
        self.server = ServerThread(app)

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def start(self) -> OpenAIEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.stream_gap_s = 0.0
        self.chaos = None

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- plumbing --------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        body = await request.read()
        recorded = Recorded(request.method, request.path, request.query_string, dict(request.headers), body)
        self.requests.append(recorded)
        return recorded

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if request.path.startswith("/openai/"):
            ok = bool(request.headers.get("api-key")) or request.headers.get("authorization", "").startswith(
                "Bearer "
            )
        else:
            auth = request.headers.get("authorization", "")
            ok = auth.startswith("Bearer ") and len(auth) > 7 and auth != "Bearer OPENAI_API_KEY"
        if ok:
            return None
        return web.json_response(
            error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), status=401
        )

    async def _fault(self) -> Fault | None:
        if not self.faults:
            if self.chaos is None:
                return None
            fault = self.chaos.next_fault()
            if fault is None:
                return None
        else:
            fault = self.faults.popleft()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        return fault

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

    async def _preamble(self, request: web.Request) -> tuple[dict[str, Any], Fault | None] | web.Response:
        recorded = await self._record(request)
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        fault = await self._fault()
        if fault is not None and fault.reset:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("emulated reset")
        if fault is not None and (fault.status != 200 or fault.json is not None or fault.text is not None):
            return self._fault_response(fault)
        try:
            body = recorded.json()
        except orjson.JSONDecodeError:
            return web.json_response(
                error_body("We could not parse the JSON body.", "invalid_request_error"), 400
            )
        if not body.get("model"):
            return web.json_response(
                error_body("you must provide a model parameter", "invalid_request_error", param="model"), 400
            )
        return body, fault

    # -- endpoints -------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, fault = pre
        messages = body.get("messages") or []
        text = "Echo: " + last_user_text(messages)
        tools = body.get("tools")
        tool_calls = None
        if tools and messages and messages[-1].get("role") == "user" and body.get("tool_choice") != "none":
            tool_calls = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": t["function"]["name"], "arguments": orjson.dumps({"q": i}).decode()},
                }
                for i, t in enumerate(tools[:2] if body.get("parallel_tool_calls", True) else tools[:1])
            ]
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = 0 if tool_calls else count_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        model = body["model"]
        finish = "tool_calls" if tool_calls else "stop"
        if body.get("stream"):
            return await self._chat_stream(request, body, model, text, tool_calls, finish, usage, fault)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool_calls else text,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        answer = {
            "id": "chatcmpl-emu1",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_emu",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        return web.json_response(
            answer, headers={"x-request-id": "req_emu", "x-ratelimit-remaining-requests": "99"}
        )

    async def _chat_stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        model: str,
        text: str,
        tool_calls: list[dict[str, Any]] | None,
        finish: str,
        usage: dict[str, Any],
        fault: Fault | None,
    ) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-emu1", "object": "chat.completion.chunk", "created": CREATED, "model": model}
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**base, "choices": [choice], **extra}

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        if tool_calls:
            for i, call in enumerate(tool_calls):
                head = {"index": i, "id": call["id"], "type": "function"}
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {**head, "function": {"name": call["function"]["name"], "arguments": ""}}
                            ]
                        }
                    )
                )
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {"index": i, "function": {"arguments": call["function"]["arguments"]}}
                            ]
                        }
                    )
                )
        else:
            words = text.split(" ")
            for i, word in enumerate(words):
                events.append(chunk({"content": word if i == 0 else " " + word}))
        events.append(chunk({}, finish))
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        return await self._send_sse(request, events, fault)

    async def _send_sse(
        self, request: web.Request, events: list[dict[str, Any]], fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "x-request-id": "req_emu"}
        )
        await response.prepare(request)
        limit = fault.stream_events if fault is not None and fault.stream_events is not None else None
        for i, event in enumerate(events):
            if limit is not None and i >= limit:
                assert fault is not None
                if fault.stall_s:
                    await asyncio.sleep(fault.stall_s)
                if fault.cut:
                    transport = request.transport
                    if transport is not None:
                        transport.abort()
                    return response
                break
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
            if self.stream_gap_s:
                await asyncio.sleep(self.stream_gap_s)
        if limit is None or limit >= len(events):
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def completions(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, fault = pre
        prompt = body.get("prompt", "")
        prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        text = "Echo: " + prompt_text
        usage = {
            "prompt_tokens": count_tokens(prompt_text),
            "completion_tokens": count_tokens(text),
            "total_tokens": count_tokens(prompt_text) + count_tokens(text),
        }
        base = {"id": "cmpl-emu1", "object": "text_completion", "created": CREATED, "model": body["model"]}
        if body.get("stream"):
            events = [
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "text": (w if i == 0 else " " + w),
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
                for i, w in enumerate(text.split(" "))
            ]
            events.append(
                {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
            )
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({**base, "choices": [], "usage": usage})
            return await self._send_sse(request, events, fault)
        return web.json_response(
            {
                **base,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, _ = pre
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        dims = int(body.get("dimensions") or 8)
        data = [
            {"object": "embedding", "index": i, "embedding": embed(str(x), dims)} for i, x in enumerate(items)
        ]
        tokens = sum(count_tokens(str(x)) for x in items)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        await self._record(request)
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        names = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": n, "object": "model", "created": CREATED, "owned_by": "emu"} for n in names],
            }
        )

    async def echo(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": recorded.headers,
                "body": recorded.body.decode("utf-8", "replace"),
                "time": time.time(),
            }
        )


class Chaos:
    """Fails a share of requests at random, each in one of several ways (seeded, repeatable)."""

    def __init__(self, rate: float, seed: int, stall_s: float = 1.0) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.stall_s = stall_s
        self.injected: dict[str, int] = {}

    def next_fault(self) -> Fault | None:
        if self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(["500", "429", "503", "reset", "stall", "malformed", "cut"])
        self.injected[kind] = self.injected.get(kind, 0) + 1
        if kind in ("500", "429", "503"):
            return Fault(status=int(kind), json=error_body(f"chaos {kind}", "server_error"))
        if kind == "reset":
            return Fault(reset=True)
        if kind == "stall":
            return Fault(delay_s=self.stall_s)
        if kind == "malformed":
            return Fault(
                status=200, text='{"id": "chatcmpl-x", "choices": [', content_type="application/json"
            )
        return Fault(stream_events=1, cut=True)  # a stream cut after its first event (a JSON call ignores it)


def embed(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dims)]
