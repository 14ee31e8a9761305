"""OpenAI chat requests to Bedrock Converse bodies, and Converse answers back (reference §6.2, §6.3).

Pure functions over dicts. The request side raises ``BadRequest`` for what Converse cannot take
(remote image URLs, audio, ``n`` > 1); the response side raises ``ProviderError`` when the model
stopped because its own output was malformed, instead of passing that off as a normal stop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest, ProviderError
from wayport.providers.openai_shapes import (
    chat_completion,
    max_tokens_of,
    new_id,
    parse_data_url,
    stop_list,
    text_of,
    usage,
)

PROVIDER = "bedrock"

# stopReason -> OpenAI finish_reason in strict mode
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The model's output could not be parsed: an error, not a finished answer (Portkey says "stop").
FAILED_STOP_REASONS = frozenset({"malformed_model_output", "malformed_tool_use"})

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
# s3:// image URIs carry no media type: the extension says it
IMAGE_EXTENSIONS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}

JSON_OBJECT_INSTRUCTION = "Respond only with a valid JSON object, without any text before or after it."
CACHE_POINT = {"cachePoint": {"type": "default"}}

_TOOL_USE_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_.:-]")
_METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")
_DOCUMENT_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9\s\-()\[\]]")


# -- request ---------------------------------------------------------------------------------


def converse_request(params: Mapping[str, Any]) -> dict[str, Any]:
    """The Converse (or ConverseStream) body for an OpenAI chat request; the model goes in the URL."""
    n = params.get("n")
    if n is not None and n != 1:
        raise BadRequest("bedrock returns one choice per request; 'n' must be 1")
    system, messages = _conversation(params.get("messages"))
    body: dict[str, Any] = {"messages": messages}

    response_format = params.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            system.append({"text": JSON_OBJECT_INSTRUCTION})
        elif kind == "json_schema":
            body["outputConfig"] = {"textFormat": _json_schema_format(response_format.get("json_schema"))}
    if system:
        body["system"] = system

    inference = _inference_config(params)
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(params, messages)
    if tool_config is not None:
        body["toolConfig"] = tool_config

    extra: dict[str, Any] = {}
    if params.get("top_k") is not None:
        extra["top_k"] = params["top_k"]
    if params.get("thinking") is not None:
        extra["thinking"] = params["thinking"]
    if extra:
        body["additionalModelRequestFields"] = extra

    user = params.get("user")
    if isinstance(user, str) and user and _METADATA_VALUE.fullmatch(user):
        body["requestMetadata"] = {"user": user}
    return body


def _conversation(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks and alternating user/assistant messages (same-role neighbours merged)."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list")
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for message in raw:
        if not isinstance(message, Mapping):
            raise BadRequest("each entry of 'messages' must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content))
            continue
        if role == "user":
            blocks, turn = _user_blocks(content), "user"
        elif role == "assistant":
            blocks, turn = _assistant_blocks(message), "assistant"
        elif role == "tool":
            blocks, turn = [_tool_result(message)], "user"
        else:
            raise BadRequest(f"bedrock does not accept messages with role {role!r}")
        if not blocks:
            continue  # Converse rejects empty content; an empty turn carries nothing anyway
        if messages and messages[-1]["role"] == turn:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": turn, "content": blocks})
    return system, messages


def _parts(content: Any) -> Iterable[Mapping[str, Any]]:
    if content is None:
        return ()
    if isinstance(content, str):
        return ({"type": "text", "text": content},)
    if isinstance(content, list):
        return (p for p in content if isinstance(p, Mapping))
    return ({"type": "text", "text": str(content)},)


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in _parts(content):
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
            if part.get("cache_control"):
                blocks.append(dict(CACHE_POINT))
    return blocks


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    documents = 0
    for part in _parts(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_block(part.get("image_url")))
        elif kind == "file":
            documents += 1
            blocks.append(_document_block(part.get("file"), documents))
        else:
            raise BadRequest(f"bedrock does not accept '{kind}' content parts")
        if part.get("cache_control"):
            blocks.append(dict(CACHE_POINT))
    return blocks


def image_block(image_url: Any) -> dict[str, Any]:
    """An ``image`` block from an OpenAI ``image_url`` (a data URL or an ``s3://`` URI)."""
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str) or not url:
        raise BadRequest("an image_url part needs a 'url'")
    if url.startswith("s3://"):
        extension = url.rsplit(".", 1)[-1].lower()
        image_format = IMAGE_EXTENSIONS.get(extension)
        if image_format is None:
            raise BadRequest(
                f"bedrock cannot tell the image format of {url!r}: name it .png, .jpeg, .gif or .webp"
            )
        return {"image": {"format": image_format, "source": {"s3Location": {"uri": url}}}}
    parsed = parse_data_url(url)
    if parsed is None:
        raise BadRequest(
            "bedrock takes images as base64 data URLs (data:image/png;base64,...) or s3:// URIs, "
            "not http(s) URLs"
        )
    media_type, data = parsed
    image_format = IMAGE_FORMATS.get(media_type.lower())
    if image_format is None:
        raise BadRequest(f"bedrock accepts png, jpeg, gif and webp images, not {media_type}")
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _document_block(file: Any, number: int) -> dict[str, Any]:
    data_url = file.get("file_data") if isinstance(file, Mapping) else None
    parsed = parse_data_url(data_url) if isinstance(data_url, str) else None
    if parsed is None:
        raise BadRequest(
            "bedrock takes files as base64 data URLs in 'file_data' (file ids are not supported)"
        )
    media_type, data = parsed
    document_format = DOCUMENT_FORMATS.get(media_type.lower())
    if document_format is None:
        raise BadRequest(f"bedrock does not accept documents of type {media_type}")
    assert isinstance(file, Mapping)
    filename = str(file.get("filename") or "").rsplit(".", 1)[0]
    # Bedrock allows letters, digits, single spaces, hyphens, parentheses and brackets in names.
    name = " ".join(_DOCUMENT_NAME_UNSAFE.sub(" ", filename).split())[:200] or f"document-{number}"
    return {"document": {"format": document_format, "name": name, "source": {"bytes": data}}}


def _assistant_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content_blocks = message.get("content_blocks")
    if isinstance(content_blocks, list) and content_blocks:
        # Portkey's non-strict answers carry thinking blocks; sent back, they keep their signatures.
        for block in content_blocks:
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "thinking":
                text: dict[str, Any] = {"text": block.get("thinking") or ""}
                if block.get("signature"):
                    text["signature"] = block["signature"]
                blocks.append({"reasoningContent": {"reasoningText": text}})
            elif kind == "redacted_thinking":
                blocks.append({"reasoningContent": {"redactedContent": block.get("data") or ""}})
            elif kind == "text" and block.get("text"):
                blocks.append({"text": block["text"]})
    else:
        text_value = text_of(message.get("content"))
        if text_value:
            blocks.append({"text": text_value})
    for call in message.get("tool_calls") or ():
        blocks.append(_tool_use(call))
    return blocks


def _tool_use(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not function.get("name"):
        raise BadRequest("each assistant tool call needs a function name")
    call_id = str(call.get("id") or "")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest(f"the arguments of tool call {call_id!r} are not valid JSON") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise BadRequest(f"the arguments of tool call {call_id!r} must be a JSON object")
    return {"toolUse": {"toolUseId": tool_use_id(call_id), "name": function["name"], "input": arguments}}


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise BadRequest("a 'tool' message needs the 'tool_call_id' it answers")
    content: list[dict[str, Any]] = []
    for part in _parts(message.get("content")):
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            content.append({"text": part["text"]})
        elif kind == "image_url":
            content.append(image_block(part.get("image_url")))
    return {"toolResult": {"toolUseId": tool_use_id(str(call_id)), "content": content}}


def tool_use_id(call_id: str) -> str:
    """Ids from other providers may hold characters Converse refuses; the same id always maps to
    the same value, so a tool call and its result still match."""
    return _TOOL_USE_ID_UNSAFE.sub("_", call_id)[:64] or "call"


def _inference_config(params: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = max_tokens_of(params)
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    temperature = params.get("temperature")
    if temperature is not None:
        # Converse takes 0..1; OpenAI's 0..2 is clamped, as Portkey does for Anthropic.
        config["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if params.get("top_p") is not None:
        config["topP"] = params["top_p"]
    stops = [s for s in stop_list(params.get("stop")) or () if s]
    if stops:
        config["stopSequences"] = stops
    return config


def _json_schema_format(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        raise BadRequest("response_format json_schema needs 'json_schema.schema'")
    definition: dict[str, Any] = {
        "schema": orjson.dumps(spec["schema"]).decode(),  # Converse wants the schema as a string
        "name": spec.get("name") or "response",
    }
    if spec.get("description"):
        definition["description"] = spec["description"]
    return {"type": "json_schema", "structure": {"jsonSchema": definition}}


def _tool_config(params: Mapping[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    choice = params.get("tool_choice")
    specs = [_tool_spec(tool) for tool in params.get("tools") or () if _is_function_tool(tool)]
    history_names = _history_tool_names(messages)
    has_history = history_names is not None
    if choice == "none":
        # No "none" in Converse: leave the tools out, unless the history has tool blocks, which
        # Converse accepts only with a toolConfig.
        if not has_history:
            return None
        choice = None
    if not specs:
        if not has_history:
            return None
        # The client dropped its tools but the history has tool blocks: declare them minimally.
        specs = [
            {
                "toolSpec": {
                    "name": name,
                    "description": "A tool used earlier in this conversation.",
                    "inputSchema": {"json": {"type": "object"}},
                }
            }
            for name in history_names or ()
        ]
        if not specs:
            return None
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not name:
            raise BadRequest(
                "tool_choice must name a function: {'type': 'function', 'function': {'name': ...}}"
            )
        config["toolChoice"] = {"tool": {"name": name}}
    return config


def _is_function_tool(tool: Any) -> bool:
    return isinstance(tool, Mapping) and tool.get("type", "function") == "function"


def _tool_spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    if not isinstance(function, Mapping) or not function.get("name"):
        raise BadRequest("each tool needs 'function.name'")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    spec: dict[str, Any] = {"name": function["name"], "inputSchema": {"json": schema}}
    if function.get("description"):
        spec["description"] = function["description"]
    if function.get("strict") is True:
        spec["strict"] = True
    entry: dict[str, Any] = {"toolSpec": spec}
    return entry


def _history_tool_names(messages: list[dict[str, Any]]) -> list[str] | None:
    """The tool names used in the history, or ``None`` when it has no tool blocks at all."""
    names: list[str] = []
    found = False
    for message in messages:
        for block in message["content"]:
            if "toolUse" in block:
                found = True
                name = block["toolUse"]["name"]
                if name not in names:
                    names.append(name)
            elif "toolResult" in block:
                found = True
    return names if found else None


# -- response --------------------------------------------------------------------------------


def finish_reason(stop_reason: str | None, strict: bool) -> str:
    if not stop_reason:
        return "stop"
    if not strict:
        return stop_reason
    return FINISH_REASONS.get(stop_reason, "stop")


def failed_stop_message(stop_reason: str) -> str:
    return f"the model stopped with '{stop_reason}': its output could not be parsed"


def converse_usage(raw: Any) -> dict[str, Any]:
    """OpenAI usage; prompt_tokens counts the cache reads and writes that Bedrock reports apart."""
    data = raw if isinstance(raw, Mapping) else {}
    cache_read = int(data.get("cacheReadInputTokens") or 0)
    cache_write = int(data.get("cacheWriteInputTokens") or 0)
    return usage(
        int(data.get("inputTokens") or 0) + cache_read + cache_write,
        int(data.get("outputTokens") or 0),
        cached_tokens=cache_read,
        cache_creation_tokens=cache_write,
    )


def chat_response(data: Mapping[str, Any], params: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    """A ``chat.completion`` from a Converse answer."""
    stop_reason = data.get("stopReason")
    if stop_reason in FAILED_STOP_REASONS:
        raise ProviderError(PROVIDER, failed_stop_message(stop_reason), status=502, type_=stop_reason)
    content = data["output"]["message"]["content"]
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    thinking = False
    for block in content:
        if "text" in block:
            texts.append(block["text"])
            blocks.append({"type": "text", "text": block["text"]})
        elif "toolUse" in block:
            use = block["toolUse"]
            tool_calls.append(
                {
                    "id": use["toolUseId"],
                    "type": "function",
                    "function": {
                        "name": use["name"],
                        "arguments": orjson.dumps(use.get("input", {})).decode(),
                    },
                }
            )
        elif "reasoningContent" in block:
            thinking = True
            blocks.append(_thinking_block(block["reasoningContent"]))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking and not strict:
        message["content_blocks"] = blocks
    return chat_completion(
        id=new_id(),
        model=str(params.get("model") or ""),
        message=message,
        finish_reason=finish_reason(stop_reason, strict),
        usage=converse_usage(data.get("usage")),
        provider=PROVIDER,
    )


def _thinking_block(reasoning: Mapping[str, Any]) -> dict[str, Any]:
    if "redactedContent" in reasoning:
        return {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
    text = reasoning.get("reasoningText") or {}
    block: dict[str, Any] = {"type": "thinking", "thinking": text.get("text", "")}
    if text.get("signature"):
        block["signature"] = text["signature"]
    return block
