"""OpenAI chat request -> Anthropic Messages request body (reference/providers.md §3).

Pure functions over dicts. Also used by Vertex AI and Bedrock for Anthropic models, which take
the same body (Vertex without ``model``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest
from wayport.providers.openai_shapes import max_tokens_of, parse_data_url, stop_list, text_of

# Anthropic requires max_tokens; OpenAI clients usually omit it.
DEFAULT_MAX_TOKENS = 4096
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
# Parts already in Anthropic's own block format pass through untouched.
NATIVE_BLOCK_TYPES = frozenset(
    {"image", "document", "thinking", "redacted_thinking", "tool_use", "tool_result", "search_result"}
)


def build_anthropic_body(params: Mapping[str, Any], *, include_model: bool = True) -> dict[str, Any]:
    """The Anthropic Messages body for an OpenAI chat request.

    ``include_model=False`` leaves ``model`` out (Vertex AI names the model in the URL).
    """
    if (params.get("n") or 1) != 1:
        raise BadRequest("anthropic returns one choice per request: 'n' must be 1")
    system, messages = _messages(params.get("messages"))
    body: dict[str, Any] = {}
    if include_model:
        body["model"] = params.get("model")
    body["messages"] = messages
    body["max_tokens"] = max_tokens_of(params) or DEFAULT_MAX_TOKENS
    if isinstance(params.get("output_config"), dict):
        body["output_config"] = dict(params["output_config"])  # Anthropic's own (e.g. effort)
    _response_format(params.get("response_format"), body, system)
    if system:
        body["system"] = system
    temperature = params.get("temperature")
    if temperature is not None:
        # Anthropic's range is [0, 1]; OpenAI's is [0, 2].
        body["temperature"] = min(max(float(temperature), 0.0), 1.0)
    for name in ("top_p", "top_k", "thinking"):
        if params.get(name) is not None:
            body[name] = params[name]
    stops = stop_list(params.get("stop"))
    if stops:
        body["stop_sequences"] = stops
    user = params.get("user")
    if user:
        body["metadata"] = {"user_id": str(user)}
    tools = params.get("tools")
    if tools:
        body["tools"] = [_tool(t) for t in tools]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if params.get("stream") is True:
        body["stream"] = True
    return body


# -- messages ---------------------------------------------------------------------------------


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks, and user/assistant turns with consecutive same-role turns merged.

    Tool results become ``tool_result`` blocks of a user turn, so consecutive ``tool`` messages
    (and a user message right after them) land in ONE user turn, as Anthropic requires.
    """
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    system: list[dict[str, Any]] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_with_cache_control(message, _text_blocks(message.get("content"))))
            continue
        if role == "user":
            blocks = _with_cache_control(message, _user_blocks(message.get("content")))
            turn_role = "user"
        elif role == "assistant":
            blocks = _with_cache_control(message, _assistant_blocks(message))
            turn_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message)]
            turn_role = "user"
        else:
            raise BadRequest(f"anthropic does not accept messages with role '{role}'")
        if not blocks:
            continue
        if turns and turns[-1][0] == turn_role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((turn_role, blocks))
    return system, [{"role": role, "content": _compact(role, blocks)} for role, blocks in turns]


def _compact(role: str, blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text block is sent as a string; tool results go first in a user turn."""
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    if role == "user" and any(b.get("type") == "tool_result" for b in blocks):
        results = [b for b in blocks if b.get("type") == "tool_result"]
        return results + [b for b in blocks if b.get("type") != "tool_result"]
    return blocks


def _with_cache_control(message: Mapping[str, Any], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A cache_control set on the whole message marks the end of the cached prefix: its last block.
    control = message.get("cache_control")
    if control and blocks and "cache_control" not in blocks[-1]:
        blocks[-1] = {**blocks[-1], "cache_control": control}
    return blocks


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [
            _text_block(p)
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and p.get("text")
        ]
    return []


def _text_block(part: Mapping[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return _text_blocks(content)
    if not isinstance(content, list):
        raise BadRequest("message 'content' must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            raise BadRequest("each content part must be an object")
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append(_text_block(part))
        elif kind == "image_url":
            blocks.append(_image_block(part))
        elif kind == "file":
            blocks.append(_file_block(part))
        elif kind in NATIVE_BLOCK_TYPES:
            blocks.append(dict(part))
        else:
            raise BadRequest(f"anthropic does not accept '{kind}' content parts")
    return blocks


def _image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise BadRequest("an image_url part needs a 'url'")
    inline = parse_data_url(url)
    if inline is not None:
        media_type, data = inline
        kind = "document" if media_type == "application/pdf" else "image"
        block: dict[str, Any] = {
            "type": kind,
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    elif url.startswith(("http://", "https://")):
        block = {"type": "image", "source": {"type": "url", "url": url}}
    else:
        raise BadRequest("anthropic takes images as data: URLs or http(s) URLs")
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _file_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's ``file`` part with inline ``file_data`` (a data URL) -> an Anthropic document."""
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    inline = parse_data_url(data) if isinstance(data, str) else None
    if inline is None:
        raise BadRequest("anthropic takes 'file' parts only with inline 'file_data' (a data: URL)")
    media_type, encoded = inline
    if media_type.startswith("text/"):
        text = base64.b64decode(encoded).decode("utf-8", "replace")
        source: dict[str, Any] = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        source = {"type": "base64", "media_type": media_type, "data": encoded}
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _assistant_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    # Non-strict answers carry ``content_blocks`` (thinking with its signature, then text); sending
    # them back unchanged is how a client continues a conversation with extended thinking.
    native = message.get("content_blocks")
    if isinstance(native, list) and native:
        blocks = [dict(b) for b in native if isinstance(b, dict) and b.get("type") != "tool_use"]
    else:
        blocks = _text_blocks(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": _arguments(function.get("arguments")),
            }
        )
    return blocks


def _arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise BadRequest("a tool call's 'arguments' must be a JSON object string") from None
    if not isinstance(value, dict):
        raise BadRequest("a tool call's 'arguments' must be a JSON object string")
    return value


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, list):
        result["content"] = _user_blocks(content)
    else:
        result["content"] = text_of(content)
    if message.get("cache_control"):
        result["cache_control"] = message["cache_control"]
    return result


# -- tools and response_format ----------------------------------------------------------------


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise BadRequest("each tool must be an object")
    if tool.get("type") != "function":
        return dict(tool)  # Anthropic's own tools (web search, computer use, ...) pass through
    function = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if tool.get("cache_control"):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    elif isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none"):
        out = dict(choice)  # already Anthropic-shaped
    else:
        raise BadRequest(f"unsupported tool_choice for anthropic: {choice!r}")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # Anthropic's default is auto; say nothing
    return out


def _response_format(response_format: Any, body: dict[str, Any], system: list[dict[str, Any]]) -> None:
    """json_schema -> Anthropic structured outputs (``output_config.format``); json_object has no
    native mode, so the system prompt asks for a JSON object."""
    if not isinstance(response_format, dict):
        return
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format json_schema needs a 'schema' object")
        body["output_config"] = {
            **body.get("output_config", {}),
            "format": {"type": "json_schema", "schema": schema},
        }
    elif kind == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
