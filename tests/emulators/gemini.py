"""An emulator of Google's Gemini API (AI Studio) and of Vertex AI's publisher models
(reference/providers.md §4, §5, §12), in one aiohttp app:

* ``/v1beta/models/{model}:generateContent | :streamGenerateContent | :batchEmbedContents |
  :embedContent`` with the key in ``x-goog-api-key`` (or ``?key=``);
* ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent |
  :streamGenerateContent | :predict`` and ``.../publishers/anthropic/models/{model}:rawPredict |
  :streamRawPredict`` with ``Authorization: Bearer <access token>``.

Streams are SSE with CRLF line ends when ``alt=sse`` is asked, a streamed JSON array otherwise;
errors are google.rpc.Status bodies (Anthropic-shaped for Claude request errors). The request is
checked where a translation can go wrong (roles, alternation, empty parts, function responses
answering the previous turn's calls, schema keywords Gemini rejects, unknown fields). Answers are
deterministic: ``"Echo: "`` and the last user text; with function declarations (and the last
turn not a function response) it calls up to two of them; ``maxOutputTokens`` counts words.

Faults (``inject``): a status with a body (``json`` or ``text``) and headers; with status 200 a
``text`` body is sent raw, a ``json`` body is the whole answer of a non-streaming call or, in a
stream, one extra ``data:`` event sent after ``stream_events`` normal events (0 by default);
``cut`` closes a stream after ``stream_events`` events; ``reset`` drops the connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections import deque
from typing import Any

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256

from tests.emulators import anthropic as claude
from tests.emulators.openai import embed
from tests.emulators.server import Fault, Recorded, ServerThread

API_KEY = "AIza-emulator-key"
ACCESS_TOKEN = "ya29.emulator-token"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
THOUGHT = "Thinking it over."
SIGNATURE = "c2lnbmF0dXJlLWVtdQ=="
RESPONSE_ID = "resp-emu1"

# fmt: off
REQUEST_KEYS = frozenset({
    "contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
    "cachedContent",
})
GENERATION_KEYS = frozenset({
    "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount", "seed",
    "presencePenalty", "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseLogprobs", "logprobs", "thinkingConfig", "responseModalities",
})
# The OpenAPI subset of Gemini's Schema object; anything else is "Unknown name".
SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})
# fmt: on
SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.\-]{0,63}$")


def status_error(code: int, status: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """A google.rpc.Status error body."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def words(text: str) -> int:
    return max(1, len(text.split()))


class InvalidArgument(Exception):
    pass


# -- request checks ---------------------------------------------------------------------------


def check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise InvalidArgument(f"Invalid value at '{where}': a schema must be an object")
    for key in schema:
        if key not in SCHEMA_KEYS:
            raise InvalidArgument(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
            )
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.lower() not in SCHEMA_TYPES):
        raise InvalidArgument(f"Invalid value at '{where}.type': {orjson.dumps(kind).decode()}")
    if not all(isinstance(v, str) for v in schema.get("enum") or ()):
        raise InvalidArgument(f"* GenerateContentRequest.{where}.enum: only allowed for STRING type")
    properties = schema.get("properties")
    if properties is not None:
        if not properties and str(kind).lower() == "object":
            raise InvalidArgument(
                f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
            )
        for name, sub in properties.items():
            check_schema(sub, f"{where}.properties[{name}]")
    for name in schema.get("required") or ():
        if name not in (properties or {}):
            raise InvalidArgument(
                f"* GenerateContentRequest.{where}.required[{name}]: property is not defined"
            )
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    for i, branch in enumerate(schema.get("anyOf") or ()):
        check_schema(branch, f"{where}.any_of[{i}]")


def check_part(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise InvalidArgument(f"Invalid value at '{where}': a part must be an object")
    fields = [f for f in DATA_FIELDS if f in part]
    unknown = [k for k in part if k not in DATA_FIELDS and k not in ("thought", "thoughtSignature")]
    if unknown:
        raise InvalidArgument(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': Cannot find field."
        )
    if len(fields) != 1:
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}.data: "
            "required oneof field 'data' must have one initialized field"
        )
    kind = fields[0]
    if kind == "text" and not part["text"]:
        raise InvalidArgument("Unable to submit request because it has an empty text parameter.")
    if kind == "inlineData":
        data = part["inlineData"]
        if not data.get("mimeType"):
            raise InvalidArgument(f"* GenerateContentRequest.{where}.inline_data.mime_type: required field")
        try:
            base64.b64decode(data.get("data", ""), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
            ) from None
    if kind == "fileData" and not part["fileData"].get("fileUri"):
        raise InvalidArgument(f"* GenerateContentRequest.{where}.file_data.file_uri: required field")
    if kind == "functionCall" and not isinstance(part["functionCall"].get("args", {}), dict):
        raise InvalidArgument(f"Invalid value at '{where}.function_call.args': a Struct is required")
    if kind == "functionResponse" and not isinstance(part["functionResponse"].get("response"), dict):
        raise InvalidArgument(f"Invalid value at '{where}.function_response.response': a Struct is required")
    return kind


def validate(body: Any, *, vertex: bool) -> None:
    """The checks Google makes that a translator can fail."""
    if not isinstance(body, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected an object.")
    for key in body:
        if key not in REQUEST_KEYS and not (vertex and key == "labels"):
            raise InvalidArgument(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
    previous_role = None
    previous_calls: list[str] = []
    for i, content in enumerate(contents):
        role = content.get("role")
        if vertex and role is None:
            raise InvalidArgument("Please use a valid role: user, model.")
        if role not in (None, "user", "model"):
            raise InvalidArgument(f"Please use a valid role: user, model. Got '{role}'.")
        role = role or "user"
        if role == previous_role:
            raise InvalidArgument("Please ensure that multiturn requests alternate between user and model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidArgument(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        kinds = [check_part(p, f"contents[{i}].parts[{j}]") for j, p in enumerate(parts)]
        calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
        responses = [p["functionResponse"].get("name") for p in parts if "functionResponse" in p]
        if calls and role != "model" or responses and role != "user":
            raise InvalidArgument(
                "Function calls belong to model turns and function responses to user turns."
            )
        if responses and sorted(responses) != sorted(previous_calls):
            raise InvalidArgument(
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn."
            )
        if "functionCall" in kinds and "thoughtSignature" not in next(
            p for p in parts if "functionCall" in p
        ):
            # what Gemini 3 says about a model turn whose first function call has no signature
            raise InvalidArgument(
                f"Function call is missing a thought_signature in functionCall parts. Content index {i}."
            )
        previous_role, previous_calls = role, calls
    system = body.get("systemInstruction")
    if system is not None:
        for j, part in enumerate(system.get("parts") or []):
            check_part(part, f"system_instruction.parts[{j}]")
    for t, tool in enumerate(body.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}]"
            if not FUNCTION_NAME.match(str(declaration.get("name", ""))):
                raise InvalidArgument(f"* GenerateContentRequest.{where}.name: Invalid function name.")
            if "parameters" in declaration:
                check_schema(declaration["parameters"], f"{where}.parameters")
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode", "AUTO")
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
        raise InvalidArgument(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})")
    config = body.get("generationConfig") or {}
    for key in config:
        if key not in GENERATION_KEYS:
            raise InvalidArgument(
                f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': "
                "Cannot find field."
            )
    if len(config.get("stopSequences") or ()) > 5:
        raise InvalidArgument(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 are allowed"
        )
    if "responseSchema" in config:
        check_schema(config["responseSchema"], "generation_config.response_schema")


# -- answers ----------------------------------------------------------------------------------


def _texts(parts: list[dict[str, Any]]) -> str:
    return " ".join(p["text"] for p in parts if "text" in p and not p.get("thought"))


def answer(body: dict[str, Any], model: str, *, vertex: bool, cached_tokens: int = 0) -> dict[str, Any]:
    """The deterministic ``GenerateContentResponse`` for a validated request."""
    contents = body["contents"]
    last = contents[-1]
    last_parts = last["parts"]
    answers_tools = any("functionResponse" in p for p in last_parts)
    config = body.get("generationConfig") or {}
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = calling.get("allowedFunctionNames")
    thinking = config.get("thinkingConfig")
    thinks = thinking is not None and thinking.get("thinkingBudget") != 0
    candidates = []
    output_tokens = 0
    for index in range(int(config.get("candidateCount") or 1)):
        parts: list[dict[str, Any]] = []
        if thinks and thinking.get("includeThoughts"):
            parts.append({"text": THOUGHT, "thought": True})
        finish = "STOP"
        if declarations and not answers_tools and calling.get("mode", "AUTO") != "NONE":
            chosen = [d for d in declarations if allowed is None or d["name"] in allowed]
            for i, declaration in enumerate(chosen[:2]):
                part: dict[str, Any] = {"functionCall": {"name": declaration["name"], "args": {"q": i}}}
                if i == 0:
                    part["thoughtSignature"] = SIGNATURE
                parts.append(part)
                output_tokens += 3
        else:
            if answers_tools:
                results = [p["functionResponse"] for p in last_parts if "functionResponse" in p]
                text = "Results: " + ", ".join(
                    f"{r['name']}={orjson.dumps(r['response']).decode()}" for r in results
                )
            else:
                text = "Echo: " + _texts(last_parts)
            if config.get("responseMimeType") == "application/json":
                text = orjson.dumps({"echo": text}).decode()
            for stop in config.get("stopSequences") or ():
                if stop in text:
                    text = text[: text.index(stop)]
            limit = config.get("maxOutputTokens")
            if limit is not None and len(text.split(" ")) > int(limit):
                text, finish = " ".join(text.split(" ")[: int(limit)]), "MAX_TOKENS"
            parts.append({"text": text})
            output_tokens += words(text)
        candidates.append(
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": finish,
                "index": index,
                "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}],
            }
        )
    system_parts = (body.get("systemInstruction") or {}).get("parts") or []
    prompt = sum(words(_texts(c["parts"]) or "x") for c in contents) + (
        words(_texts(system_parts)) if system_parts else 0
    )
    prompt += cached_tokens
    thoughts = words(THOUGHT) * len(candidates) if thinks else 0
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt + output_tokens + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached_tokens:
        meta["cachedContentTokenCount"] = cached_tokens
    response: dict[str, Any] = {
        "candidates": candidates,
        "usageMetadata": meta,
        "modelVersion": model,
        "responseId": RESPONSE_ID,
    }
    if vertex:
        response["createTime"] = "2026-01-01T00:00:00.000000Z"
        meta["trafficType"] = "ON_DEMAND"
    return response


def stream_chunks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """``response`` as the stream sends it: text word by word, function calls whole, the finish
    reason on each candidate's last chunk and the full usage on the very last one."""
    meta = response["usageMetadata"]
    running = {"promptTokenCount": meta["promptTokenCount"], "totalTokenCount": meta["promptTokenCount"]}
    chunks: list[dict[str, Any]] = []
    for candidate in response["candidates"]:
        pieces: list[dict[str, Any]] = []
        for part in candidate["content"]["parts"]:
            if "text" in part and not part.get("thought"):
                split = part["text"].split(" ")
                pieces.extend({"text": w if i == 0 else " " + w} for i, w in enumerate(split))
            else:
                pieces.append(part)
        for i, piece in enumerate(pieces):
            entry: dict[str, Any] = {
                "content": {"role": "model", "parts": [piece]},
                "index": candidate["index"],
            }
            if i == len(pieces) - 1:
                entry["finishReason"] = candidate["finishReason"]
            chunks.append(
                {
                    "candidates": [entry],
                    "usageMetadata": running,
                    "modelVersion": response["modelVersion"],
                    "responseId": response["responseId"],
                }
            )
    chunks[-1] = {**chunks[-1], "usageMetadata": meta}
    return chunks


# -- the app ----------------------------------------------------------------------------------


class GeminiEmulator:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.cached_tokens = 0
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1beta/models/{call}", self.studio)
        app.router.add_post("/token", self.token)
        # the service account whose JWTs /token accepts (its public key), the claims it saw, and
        # the answer it gives instead of a token when set: (status, JSON body)
        self.service_account: Any = None
        self.token_claims: list[dict[str, Any]] = []
        self.token_refusal: tuple[int, dict[str, Any]] | None = None
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{call}", self.vertex
        )
        self.server = ServerThread(app)

    @property
    def base_url(self) -> str:
        """The Gemini API base (``WAYPORT_BASE_URL_GOOGLE``)."""
        return self.server.url + "/v1beta"

    @property
    def url(self) -> str:
        """The Vertex host (``WAYPORT_BASE_URL_VERTEX_AI``)."""
        return self.server.url

    def start(self) -> GeminiEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.cached_tokens = 0
        self.token_claims.clear()
        self.token_refusal = None

    @property
    def token_uri(self) -> str:
        """Google's OAuth2 token endpoint, emulated: the JWT-bearer grant of a service account."""
        return self.server.url + "/token"

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if self.token_refusal is not None:
            status, body = self.token_refusal
            return web.json_response(body, status=status)
        header_part, claims_part, signature_part = str(form.get("assertion", "")).split(".")
        try:
            self.service_account.verify(
                _unb64(signature_part), f"{header_part}.{claims_part}".encode(), PKCS1v15(), SHA256()
            )
        except InvalidSignature:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
            )
        header, claims = orjson.loads(_unb64(header_part)), orjson.loads(_unb64(claims_part))
        self.token_claims.append({**claims, "header": header})
        return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- plumbing ---------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        recorded = Recorded(
            request.method, request.path, request.query_string, dict(request.headers), await request.read()
        )
        self.requests.append(recorded)
        return recorded

    async def _fault(self) -> Fault | None:
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        return fault

    @staticmethod
    def _fault_response(request: web.Request, fault: Fault) -> web.Response | None:
        """The fault's own answer, or ``None`` when it only shapes a stream."""
        if fault.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if fault.text is not None:
            return web.Response(
                status=fault.status, text=fault.text, content_type=fault.content_type, headers=fault.headers
            )
        if fault.status != 200:
            return web.Response(
                status=fault.status,
                body=orjson.dumps(fault.json),
                content_type="application/json",
                headers=fault.headers,
            )
        return None

    @staticmethod
    def _studio_auth(request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            message = (
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API."
            )
            return web.json_response(status_error(403, "PERMISSION_DENIED", message), status=403)
        if key != API_KEY:
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
            body = status_error(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [info]
            )
            return web.json_response(body, status=400)
        return None

    @staticmethod
    def _vertex_auth(request: web.Request) -> web.Response | None:
        if request.headers.get("authorization") == f"Bearer {ACCESS_TOKEN}":
            return None
        message = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        return web.json_response(status_error(401, "UNAUTHENTICATED", message), status=401)

    # -- routes -----------------------------------------------------------------------------

    async def studio(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        denied = self._studio_auth(request)
        if denied is not None:
            return denied
        model, _, method = request.match_info["call"].partition(":")
        return await self._google(request, recorded, model, method, vertex=False)

    async def vertex(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        denied = self._vertex_auth(request)
        if denied is not None:
            return denied
        model, _, method = request.match_info["call"].partition(":")
        publisher = request.match_info["publisher"]
        if publisher == "anthropic" and model.startswith("claude"):
            return await self._claude(request, recorded, model, method)
        if publisher != "google" or model.startswith("claude"):
            message = (
                f"Publisher Model `publishers/{publisher}/models/{model}` was not found "
                "or your project does not have access to it."
            )
            return web.json_response(status_error(404, "NOT_FOUND", message), status=404)
        return await self._google(request, recorded, model, method, vertex=True)

    async def _google(
        self, request: web.Request, recorded: Recorded, model: str, method: str, *, vertex: bool
    ) -> web.StreamResponse:
        if not (model.startswith("gemini") or "embedding" in model):
            version = "v1" if vertex else "v1beta"
            message = (
                f"models/{model} is not found for API version {version}, or is not supported for {method}."
            )
            return web.json_response(status_error(404, "NOT_FOUND", message), status=404)
        fault = await self._fault()
        if fault is not None:
            answered = self._fault_response(request, fault)
            if answered is not None:
                return answered
        try:
            body = recorded.json()
        except orjson.JSONDecodeError:
            return web.json_response(
                status_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), status=400
            )
        try:
            if method in ("batchEmbedContents", "embedContent", "predict"):
                return web.json_response(self._embed(body, model, method))
            if method not in ("generateContent", "streamGenerateContent"):
                return web.json_response(
                    status_error(404, "NOT_FOUND", f"Method {method} not found."), status=404
                )
            validate(body, vertex=vertex)
        except InvalidArgument as exc:
            return web.json_response(status_error(400, "INVALID_ARGUMENT", str(exc)), status=400)
        if fault is not None and fault.json is not None and method == "generateContent":
            return web.json_response(fault.json)
        response = answer(body, model, vertex=vertex, cached_tokens=self.cached_tokens)
        if method == "generateContent":
            return web.json_response(response, headers={"x-goog-request-id": "req-emu"})
        return await self._stream(
            request, stream_chunks(response), fault, sse=request.query.get("alt") == "sse"
        )

    async def _stream(
        self, request: web.Request, chunks: list[dict[str, Any]], fault: Fault | None, *, sse: bool
    ) -> web.StreamResponse:
        content_type = "text/event-stream" if sse else "application/json"
        response = web.StreamResponse(headers={"content-type": content_type, "x-goog-request-id": "req-emu"})
        await response.prepare(request)
        limit = None
        if fault is not None and (fault.stream_events is not None or fault.json is not None):
            limit = fault.stream_events or 0
        if not sse:
            await response.write(b"[")
        for i, chunk in enumerate(chunks):
            if limit is not None and i >= limit:
                break
            if sse:
                await response.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
            else:
                await response.write((b"" if i == 0 else b",\r\n") + orjson.dumps(chunk))
        if fault is not None and limit is not None:
            if fault.json is not None:
                await response.write(b"data: " + orjson.dumps(fault.json) + b"\r\n\r\n")
            elif fault.cut and request.transport is not None:
                request.transport.abort()
                return response
        if not sse:
            await response.write(b"]")
        await response.write_eof()
        return response

    def _embed(self, body: dict[str, Any], model: str, method: str) -> dict[str, Any]:
        if method == "predict":
            instances = body.get("instances") or []
            if model.startswith("gemini-embedding") and len(instances) > 1:
                raise InvalidArgument(
                    "Unable to submit request because batchSize must be 1 but the entered value was "
                    f"{len(instances)}. Update the batchSize value and try again."
                )
            dims = int((body.get("parameters") or {}).get("outputDimensionality") or 8)
            predictions = []
            for instance in instances:
                text = instance["content"]
                statistics = {"token_count": words(text), "truncated": False}
                predictions.append({"embeddings": {"values": embed(text, dims), "statistics": statistics}})
            return {
                "predictions": predictions,
                "metadata": {"billableCharacterCount": sum(len(i["content"]) for i in instances)},
            }
        requests = (
            body.get("requests") if method == "batchEmbedContents" else [{"model": f"models/{model}", **body}]
        )
        embeddings = []
        for i, item in enumerate(requests or []):
            if item.get("model") != f"models/{model}":
                raise InvalidArgument(
                    f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be models/{model}, "
                    f"the model of the request URL"
                )
            text = " ".join(p.get("text", "") for p in item["content"]["parts"])
            embeddings.append({"values": embed(text, int(item.get("outputDimensionality") or 8))})
        if method == "embedContent":
            return {"embedding": embeddings[0]}
        return {"embeddings": embeddings}

    async def _claude(
        self, request: web.Request, recorded: Recorded, model: str, method: str
    ) -> web.StreamResponse:
        fault = await self._fault()
        if fault is not None and fault.status != 200:
            answered = self._fault_response(request, fault)
            if answered is not None:
                return answered
        try:
            body = recorded.json()
            if method not in ("rawPredict", "streamRawPredict"):
                raise claude.InvalidRequest(
                    f"Claude models take rawPredict or streamRawPredict, not {method}"
                )
            if "model" in body:
                raise claude.InvalidRequest("model: Extra inputs are not permitted")
            if "anthropic_version" not in body:
                raise claude.InvalidRequest("anthropic_version: Field required")
            if body["anthropic_version"] != VERTEX_ANTHROPIC_VERSION:
                raise claude.InvalidRequest(
                    f"anthropic_version: Input should be '{VERTEX_ANTHROPIC_VERSION}'"
                )
            if bool(body.get("stream")) != (method == "streamRawPredict"):
                raise claude.InvalidRequest(
                    "stream: must be true for streamRawPredict and absent for rawPredict"
                )
            body = {**{k: v for k, v in body.items() if k != "anthropic_version"}, "model": model}
            claude.validate(body)
        except (orjson.JSONDecodeError, claude.InvalidRequest) as exc:
            return web.json_response(claude.error("invalid_request_error", str(exc)), status=400)
        message = claude.answer(body)
        if method == "rawPredict":
            return web.json_response(message)
        response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        limit = fault.stream_events if fault is not None else None
        for i, (name, payload) in enumerate(claude.stream_events(message)):
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


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
