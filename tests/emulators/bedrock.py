"""An emulator of the Bedrock runtime (reference/providers.md §6, §12): Converse (JSON),
ConverseStream (binary ``application/vnd.amazon.eventstream`` frames) and Titan embeddings
through InvokeModel.

Every request must be signed: the SigV4 signature is recomputed with botocore's own signer
(``SigV4Auth`` over an ``AWSRequest`` built from what arrived: the raw path, the headers named in
``SignedHeaders`` and the body, at the request's ``X-Amz-Date``) and a mismatch gets Bedrock's 403
``InvalidSignatureException``. Bedrock API keys (``Authorization: Bearer``) are accepted too.

The assistant repeats the last user text after ``"Echo: "``; with tools and a user turn last it
calls the first two tools. Requests are checked the way Converse checks them (alternating roles,
no empty text, ``toolConfig`` required when the history has tool blocks, temperature in 0..1),
answered with Bedrock's ``ValidationException`` otherwise. Faults (``BedrockFault``) inject error
statuses, a replacement answer, an exception frame mid-stream, a corrupted CRC or a cut.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import struct
import uuid
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.emulators.server import Fault, Recorded, ServerThread

REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAWAYPORTEXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWAYPORTKEY"
SESSION_ACCESS_KEY_ID = "ASIAWAYPORTSESSION"
SESSION_SECRET = "session/secret+key"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//token=="
API_KEY = "ABSKwayport-bedrock-api-key"

BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
CACHE_READ_TOKENS = 7
CACHE_WRITE_TOKENS = 3
_PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream|invoke)")


@dataclass
class BedrockFault(Fault):
    """A ``Fault`` with Bedrock's stream failures: after ``stream_events`` frames, send an
    ``exception`` frame (``exception``), a frame with a corrupted CRC (``corrupt_crc``) or cut."""

    exception: str | None = None
    exception_message: str = "Too many requests, please wait before trying again."
    corrupt_crc: bool = False
    # replaces the stop reason of the answer (JSON and stream)
    stop_reason: str | None = None


# -- event-stream encoding -------------------------------------------------------------------

# header value type codes (reference §6.5)
BOOL_TRUE, BOOL_FALSE, INT8, INT16, INT32, INT64, BYTES, STRING, TIMESTAMP, UUID = range(10)
_INTS = {INT8: ">b", INT16: ">h", INT32: ">i", INT64: ">q"}


def encode_header(name: str, type_code: int, value: Any) -> bytes:
    """One header: name length, name, value type, value."""
    raw_name = name.encode()
    out = bytes([len(raw_name)]) + raw_name + bytes([type_code])
    if type_code in (BOOL_TRUE, BOOL_FALSE):
        return out
    if type_code in _INTS:
        return out + struct.pack(_INTS[type_code], value)
    if type_code in (BYTES, STRING):
        data = value.encode() if type_code == STRING else bytes(value)
        return out + struct.pack(">H", len(data)) + data
    if type_code == TIMESTAMP:
        millis = (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        return out + struct.pack(">q", millis)
    if type_code == UUID:
        return out + value.bytes
    raise ValueError(f"unknown header type {type_code}")


def encode_frame(headers: Sequence[tuple[str, int, Any]], payload: bytes) -> bytes:
    """A whole frame: prelude, prelude CRC, headers, payload, message CRC."""
    header_bytes = b"".join(encode_header(*header) for header in headers)
    total = 16 + len(header_bytes) + len(payload)
    prelude = struct.pack(">II", total, len(header_bytes))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + header_bytes + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event_frame(event_type: str, payload: dict[str, Any], padding: int = 0) -> bytes:
    """A ConverseStream event as Bedrock frames it, with its random-length ``p`` padding."""
    body = {**payload, "p": "abcdefghijklmnopqrstuvwxyz"[: padding % 27]}
    return encode_frame(
        [
            (":event-type", STRING, event_type),
            (":content-type", STRING, "application/json"),
            (":message-type", STRING, "event"),
        ],
        orjson.dumps(body),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame(
        [
            (":exception-type", STRING, exception_type),
            (":content-type", STRING, "application/json"),
            (":message-type", STRING, "exception"),
        ],
        orjson.dumps({"message": message}),
    )


def corrupt(frame: bytes) -> bytes:
    """The frame with its message CRC flipped."""
    return frame[:-4] + bytes(b ^ 0xFF for b in frame[-4:])


# -- the emulator ----------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def error(status: int, error_type: str, message: str, key: str = "message") -> web.Response:
    return web.json_response(
        {key: message},
        status=status,
        headers={"x-amzn-ErrorType": error_type + ERROR_TYPE_SUFFIX, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def validation(message: str) -> web.Response:
    return error(400, "ValidationException", message)


class BedrockEmulator:
    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.credentials = {
            ACCESS_KEY_ID: Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
            SESSION_ACCESS_KEY_ID: Credentials(SESSION_ACCESS_KEY_ID, SESSION_SECRET, SESSION_TOKEN),
        }
        self.api_keys = {API_KEY}
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> BedrockEmulator:
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

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path, _, query = request.raw_path.partition("?")
        self.requests.append(Recorded(request.method, path, query, dict(request.headers), body))
        denied = self._check_auth(request, body)
        if denied is not None:
            return denied
        match = _PATH.fullmatch(path)
        if request.method != "POST" or match is None:
            return error(404, "UnknownOperationException", "Unknown operation")
        model, operation = unquote(match.group(1)), match.group(2)
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and (fault.status != 200 or fault.json is not None or fault.text is not None):
            if fault.text is not None:
                return web.Response(
                    status=fault.status,
                    text=fault.text,
                    content_type=fault.content_type,
                    headers=fault.headers,
                )
            return web.Response(
                status=fault.status,
                body=orjson.dumps(fault.json),
                content_type="application/json",
                headers=fault.headers,
            )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error(400, "SerializationException", "Could not parse the request body as JSON")
        if not isinstance(data, dict):
            return validation("The request body must be a JSON object")
        bedrock_fault = fault if isinstance(fault, BedrockFault) else None
        if operation == "invoke":
            return self._invoke(model, data)
        problem = check_converse(data)
        if problem is not None:
            return validation(problem)
        answer = converse_answer(data)
        if bedrock_fault is not None and bedrock_fault.stop_reason:
            answer["stopReason"] = bedrock_fault.stop_reason
        if operation == "converse":
            return web.json_response(answer, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        return await self._stream(request, answer, fault)

    def _check_auth(self, request: web.Request, body: bytes) -> web.Response | None:
        auth = request.headers.get("Authorization")
        if not auth:
            return error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        if auth.startswith("Bearer "):
            if auth[7:] in self.api_keys:
                return None
            return error(
                403, "AccessDeniedException", "Authentication failed: Please make sure your API Key is valid."
            )
        fields = dict(re.findall(r"(Credential|SignedHeaders|Signature)=([^,\s]+)", auth))
        if not auth.startswith("AWS4-HMAC-SHA256 ") or len(fields) != 3:
            return error(
                403,
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
            )
        key_id, date, region, service, terminator = (fields["Credential"].split("/") + [""] * 5)[:5]
        credentials = self.credentials.get(key_id)
        if credentials is None:
            return error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if service != "bedrock" or terminator != "aws4_request":
            return error(
                403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'."
            )
        if region != self.region:
            return error(403, "InvalidSignatureException", "Credential should be scoped to a valid region. ")
        amz_date = request.headers.get("X-Amz-Date", "")
        signed = fields["SignedHeaders"].split(";")
        if not amz_date or "host" not in signed or "x-amz-date" not in signed or date != amz_date[:8]:
            return error(403, "IncompleteSignatureException", "Date, host and x-amz-date must be signed.")
        moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs(datetime.now(UTC) - moment) > timedelta(minutes=5):
            return error(
                403,
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than the allowed window.",
            )
        if credentials.token and (
            request.headers.get("X-Amz-Security-Token") != credentials.token
            or "x-amz-security-token" not in signed
        ):
            return error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        missing = [name for name in signed if name not in request.headers]
        if missing:
            return error(403, "InvalidSignatureException", BAD_SIGNATURE)
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.headers['Host']}{request.raw_path}",
            headers={name: request.headers[name] for name in signed},
            data=body,
        )
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(credentials, "bedrock", self.region)
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)), aws_request
        )
        if not hmac.compare_digest(expected, fields["Signature"]):
            return error(403, "InvalidSignatureException", BAD_SIGNATURE)
        return None

    # -- Titan embeddings ------------------------------------------------------------------

    def _invoke(self, model: str, data: dict[str, Any]) -> web.Response:
        if "titan-embed" not in model:
            return validation(f"The emulator serves InvokeModel for Titan embeddings only, not {model}")
        text = data.get("inputText")
        if not isinstance(text, str) or not text:
            return validation("Malformed input request: #: required key [inputText] not found")
        v1 = model.endswith("titan-embed-text-v1")
        extra = set(data) - (
            {"inputText"} if v1 else {"inputText", "dimensions", "normalize", "embeddingTypes"}
        )
        if extra:
            return validation(
                f"Malformed input request: #: extraneous key [{sorted(extra)[0]}] is not permitted"
            )
        dims = int(data.get("dimensions") or (1536 if v1 else 1024))
        if not v1 and dims not in (256, 512, 1024):
            return validation("Malformed input request: #/dimensions: 256, 512 or 1024 expected")
        vector = embed(text, dims)
        answer: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": count_tokens(text)}
        if not v1:
            answer["embeddingsByType"] = {"float": vector}
        return web.json_response(
            answer, headers={"X-Amzn-Bedrock-Input-Token-Count": str(count_tokens(text))}
        )

    # -- ConverseStream --------------------------------------------------------------------

    async def _stream(
        self, request: web.Request, answer: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        frames = stream_frames(answer)
        response = web.StreamResponse(
            headers={
                "content-type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": str(uuid.uuid4()),
            }
        )
        await response.prepare(request)
        limit = fault.stream_events if fault is not None and fault.stream_events is not None else len(frames)
        for index, frame in enumerate(frames[:limit]):
            # Write some frames in two pieces and others in pairs, as TCP may deliver them.
            if index % 3 == 1:
                half = len(frame) // 2
                await response.write(frame[:half])
                await response.write(frame[half:])
            else:
                await response.write(frame)
        if fault is not None and limit < len(frames):
            if isinstance(fault, BedrockFault) and fault.exception:
                await response.write(exception_frame(fault.exception, fault.exception_message))
            elif isinstance(fault, BedrockFault) and fault.corrupt_crc:
                await response.write(corrupt(frames[limit]))
            elif fault.stall_s:
                await asyncio.sleep(fault.stall_s)
            if fault.cut:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                return response
        await response.write_eof()
        return response


def check_converse(data: dict[str, Any]) -> str | None:
    """What Converse would reject in this body, or ``None``."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        return "The messages field is required and must not be empty."
    if messages[0].get("role") != "user":
        return (
            "A conversation must start with a user message. "
            "Try again with a conversation that starts with a user message."
        )
    has_tool_blocks = False
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            return (
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return (
                f"The content field in the Message object at messages.{i} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        for block in content:
            if "text" in block and not block["text"]:
                return (
                    f"The text field in the ContentBlock object at messages.{i}.content is blank. "
                    "Add text to the text field, and try again."
                )
            if "toolUse" in block or "toolResult" in block:
                has_tool_blocks = True
            if "toolResult" in block:
                previous = messages[i - 1]["content"] if i else []
                ids = {b["toolUse"]["toolUseId"] for b in previous if "toolUse" in b}
                if block["toolResult"]["toolUseId"] not in ids:
                    return (
                        f"messages.{i}: the toolResult blocks must answer toolUse ids of the previous turn."
                    )
            if "image" in block:
                image = block["image"]
                if image.get("format") not in ("png", "jpeg", "gif", "webp"):
                    return "The image format is not supported."
                source = image.get("source") or {}
                if "bytes" in source:
                    try:
                        base64.b64decode(source["bytes"], validate=True)
                    except ValueError:
                        return "Invalid base64 image bytes."
    tool_config = data.get("toolConfig")
    if has_tool_blocks and not tool_config:
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    if tool_config is not None and not tool_config.get("tools"):
        return "The toolConfig.tools field must not be empty."
    temperature = (data.get("inferenceConfig") or {}).get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "The value at inferenceConfig.temperature must be between 0 and 1."
    for block in data.get("system") or []:
        if "text" in block and not block["text"]:
            return "The text field in the system block is blank."
    return None


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"])
        elif "toolResult" in block:
            out.extend(_texts(block["toolResult"].get("content") or []))
    return out


def converse_answer(data: dict[str, Any]) -> dict[str, Any]:
    """The Converse JSON answer for a (valid) request."""
    messages = data["messages"]
    last = messages[-1]["content"]
    tool_config = data.get("toolConfig") or {}
    tools = [t["toolSpec"] for t in tool_config.get("tools", []) if "toolSpec" in t]
    answering_tools = any("toolResult" in block for block in last)
    content: list[dict[str, Any]] = []
    if (data.get("additionalModelRequestFields") or {}).get("thinking"):
        content.append(
            {"reasoningContent": {"reasoningText": {"text": "Thinking it over.", "signature": "sig-1"}}}
        )
    inference = data.get("inferenceConfig") or {}
    stop_reason = "end_turn"
    choice = tool_config.get("toolChoice") or {}
    if tools and not answering_tools:
        chosen = [t for t in tools if t["name"] == choice["tool"]["name"]] if "tool" in choice else tools[:2]
        for i, tool in enumerate(chosen):
            content.append(
                {
                    "toolUse": {
                        "toolUseId": f"tooluse_{i}{tool['name']}",
                        "name": tool["name"],
                        "input": {"q": i},
                    }
                }
            )
        stop_reason = "tool_use"
    else:
        prefix = "Echo: tool results: " if answering_tools else "Echo: "
        words = (prefix + " ".join(_texts(last))).split(" ")
        max_tokens = inference.get("maxTokens")
        if max_tokens is not None and len(words) > max_tokens:
            words, stop_reason = words[:max_tokens], "max_tokens"
        text = " ".join(words)
        for stop in inference.get("stopSequences") or []:
            if stop in text:
                text, stop_reason = text[: text.index(stop)], "stop_sequence"
        content.append({"text": text})
    prompt_text = " ".join(t for m in messages for t in _texts(m["content"]))
    prompt_text += " " + " ".join(b.get("text", "") for b in data.get("system") or [])
    cached = any("cachePoint" in b for m in messages for b in m["content"]) or any(
        "cachePoint" in b for b in data.get("system") or []
    )
    output_tokens = sum(count_tokens(b["text"]) for b in content if "text" in b) + 5 * sum(
        1 for b in content if "toolUse" in b
    )
    usage = {"inputTokens": count_tokens(prompt_text), "outputTokens": output_tokens}
    if cached:
        usage["cacheReadInputTokens"] = CACHE_READ_TOKENS
        usage["cacheWriteInputTokens"] = CACHE_WRITE_TOKENS
    usage["totalTokens"] = sum(usage.values())
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": usage,
        "metrics": {"latencyMs": 42},
    }


def stream_frames(answer: dict[str, Any]) -> list[bytes]:
    """The ConverseStream frames of an answer: no contentBlockStart for text, the tool input in two
    fragments, ``metadata`` (usage) after ``messageStop``."""
    frames = [event_frame("messageStart", {"role": "assistant"}, 8)]
    for index, block in enumerate(answer["output"]["message"]["content"]):
        if "text" in block:
            words = block["text"].split(" ")
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                frames.append(
                    event_frame(
                        "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}, i
                    )
                )
        elif "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append(event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start}, 4))
            arguments = orjson.dumps(use["input"]).decode()
            half = len(arguments) // 2
            for fragment in (arguments[:half], arguments[half:]):
                frames.append(
                    event_frame(
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"toolUse": {"input": fragment}}},
                        2,
                    )
                )
        elif "reasoningContent" in block:
            text = block["reasoningContent"]["reasoningText"]
            for delta in ({"text": text["text"]}, {"signature": text["signature"]}):
                frames.append(
                    event_frame(
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"reasoningContent": delta}},
                        3,
                    )
                )
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}, 1))
    frames.append(event_frame("messageStop", {"stopReason": answer["stopReason"]}, 6))
    frames.append(event_frame("metadata", {"usage": answer["usage"], "metrics": {"latencyMs": 40}}, 2))
    return frames


def embed(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dims)]
