"""OpenAI chat request -> Gemini ``generateContent`` body (reference/providers.md §4).

The Gemini API and Vertex AI take the same body, so both adapters use these functions. The body
is written in the camelCase names of Google's REST documentation.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest
from wayport.providers.openai_shapes import max_tokens_of, parse_data_url, stop_list, text_of

# Google documents this value for a function call whose thought signature is unknown (a history
# from another model, or a client that dropped the extension field); Gemini 3 models reject a
# model turn whose first function call has no signature at all.
SKIP_SIGNATURE = "skip_thought_signature_validator"

# OpenAI-style tool names that stand for Gemini's built-in tools, as Portkey accepts them.
NATIVE_TOOLS = {
    "google_search": "googleSearch",
    "googleSearch": "googleSearch",
    "code_execution": "codeExecution",
    "codeExecution": "codeExecution",
    "url_context": "urlContext",
    "urlContext": "urlContext",
}

TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# reasoning_effort -> thinkingBudget for Gemini 2.x (the values of Google's OpenAI compatibility
# layer; "minimal" is ours). Gemini 3 takes the effort name itself as thinkingLevel.
EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

# The OpenAPI subset Gemini's Schema object accepts; any other keyword is a 400 upstream.
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
# Keywords that only make sense for one JSON type, used when a union type is split into anyOf.
TYPE_KEYS = {
    "object": frozenset({"properties", "required", "minProperties", "maxProperties", "propertyOrdering"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "string": frozenset({"enum", "format", "pattern", "minLength", "maxLength"}),
    "number": frozenset({"enum", "format", "minimum", "maximum"}),
    "integer": frozenset({"enum", "format", "minimum", "maximum"}),
}
# Gemini rejects other string formats ("uri", "email", ...) with a 400.
STRING_FORMATS = frozenset({"enum", "date-time"})
NUMBER_FORMATS = frozenset({"int32", "int64", "float", "double"})
MAX_REF_DEPTH = 8


def generate_content_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generateContent`` / ``streamGenerateContent`` body for an OpenAI chat request."""
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    system, contents = _contents(messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = _tools(params.get("tools"))
    if tools:
        body["tools"] = tools
        tool_config = _tool_config(params.get("tool_choice"))
        if tool_config:
            body["toolConfig"] = tool_config
    config = _generation_config(params)
    if config:
        body["generationConfig"] = config
    safety = params.get("safety_settings")
    if safety:
        body["safetySettings"] = safety
    cached = params.get("cached_content")
    if cached:
        body["cachedContent"] = cached
    return body


# -- messages -------------------------------------------------------------------------------


def _contents(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System parts and the alternating user/model turns (consecutive same-role turns merged,
    which older models require and which puts all tool results of one step in one turn)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            gemini_role, parts = "user", _user_parts(message.get("content"), i)
        elif role == "assistant":
            gemini_role, parts = "model", _assistant_parts(message, i, names_by_id)
        elif role in ("tool", "function"):
            gemini_role, parts = "user", [_function_response(message, i, names_by_id)]
        else:
            raise BadRequest(f"messages[{i}]: role '{role}' is not supported by Gemini")
        if not parts:
            continue  # Gemini rejects a turn without parts
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return system, contents


def _user_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"messages[{i}].content must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_media_part(str(url or ""), "image/jpeg", i))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}})
        elif kind == "file":
            parts.append(_file_part(part.get("file") or {}, i))
        else:
            raise BadRequest(f"messages[{i}]: content part type '{kind}' is not supported by Gemini")
    return parts


def _media_part(url: str, default_mime: str, i: int, filename: str | None = None) -> dict[str, Any]:
    inline = parse_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if url.startswith(("https://", "http://", "gs://")):
        guessed = mimetypes.guess_type(filename or url.split("?", 1)[0])[0]
        return {"fileData": {"mimeType": guessed or default_mime, "fileUri": url}}
    raise BadRequest(f"messages[{i}]: Gemini takes data:, https:// or gs:// URLs, got '{url[:40]}'")


def _file_part(file: Mapping[str, Any], i: int) -> dict[str, Any]:
    filename = file.get("filename")
    data = file.get("file_data")
    if isinstance(data, str) and data:
        if data.startswith("data:"):
            return _media_part(data, "application/pdf", i)
        mime = mimetypes.guess_type(str(filename or ""))[0] or "application/pdf"
        return {"inlineData": {"mimeType": mime, "data": data}}
    file_id = file.get("file_id")
    if isinstance(file_id, str) and file_id:
        return _media_part(file_id, "application/pdf", i, filename=filename)
    raise BadRequest(f"messages[{i}]: a file part needs 'file_data' or a URL in 'file_id'")


def _assistant_parts(message: Mapping[str, Any], i: int, names_by_id: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:
        parts.append({"text": text})
    calls = message.get("tool_calls") or []
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls = [*calls, {"function": legacy}]
    for n, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise BadRequest(f"messages[{i}].tool_calls[{n}] needs function.name")
        name = str(function["name"])
        part: dict[str, Any] = {
            "functionCall": {"name": name, "args": _arguments(function.get("arguments"), i, n)}
        }
        signature = thought_signature_of(call)
        if signature:
            part["thoughtSignature"] = signature
        elif n == 0:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
        if call.get("id"):
            names_by_id[str(call["id"])] = name
    return parts


def thought_signature_of(call: Mapping[str, Any]) -> str | None:
    """The signature a client echoes back: Google's ``extra_content.google.thought_signature``
    (what Wayport emits) or a bare ``thought_signature``."""
    extra = call.get("extra_content")
    if isinstance(extra, dict):
        google = extra.get("google")
        if isinstance(google, dict) and google.get("thought_signature"):
            return str(google["thought_signature"])
    value = call.get("thought_signature")
    return str(value) if value else None


def _arguments(raw: Any, i: int, n: int) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise BadRequest(f"messages[{i}].tool_calls[{n}].function.arguments is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(f"messages[{i}].tool_calls[{n}].function.arguments must be a JSON object")
    return value


def _function_response(message: Mapping[str, Any], i: int, names_by_id: Mapping[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = names_by_id.get(str(call_id)) if call_id is not None else None
    name = name or message.get("name")
    if not name:
        raise BadRequest(
            f"messages[{i}]: the tool message with tool_call_id '{call_id}' answers no earlier assistant "
            "tool call; Gemini needs the function's name"
        )
    text = text_of(message.get("content"))
    try:
        parsed = orjson.loads(text) if text.startswith("{") else None
    except orjson.JSONDecodeError:
        parsed = None
    # Gemini wants an object; "output" is the key Google documents for a plain result.
    response = parsed if isinstance(parsed, dict) else {"output": text}
    return {"functionResponse": {"name": str(name), "response": response}}


# -- tools ----------------------------------------------------------------------------------


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not tools:
        return []
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list")
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for n, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools[{n}] must be an object")
        if tool.get("type") != "function":
            # a built-in tool written the Gemini way, e.g. {"googleSearch": {}}
            key = next(iter(tool), None) if len(tool) == 1 else None
            if key in NATIVE_TOOLS:
                native.append({NATIVE_TOOLS[key]: tool[key] or {}})
                continue
            raise BadRequest(f"tools[{n}]: tool type '{tool.get('type')}' is not supported by Gemini")
        function = tool.get("function") or {}
        name = function.get("name")
        if not name:
            raise BadRequest(f"tools[{n}].function.name is required")
        if name in NATIVE_TOOLS:
            native.append({NATIVE_TOOLS[name]: {}})
            continue
        declaration: dict[str, Any] = {"name": name}
        if function.get("description"):
            declaration["description"] = function["description"]
        schema = function.get("parameters")
        if isinstance(schema, dict):
            cleaned = clean_schema(schema)
            # an object without properties is a 400 upstream; a function without arguments omits it
            if cleaned.get("properties") or cleaned.get("type") not in ("object", None):
                declaration["parameters"] = cleaned
        declarations.append(declaration)
    out: list[dict[str, Any]] = [{"functionDeclarations": declarations}] if declarations else []
    return out + native


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = TOOL_CHOICE_MODES.get(choice)
        if mode is None:
            raise BadRequest(f"tool_choice '{choice}' is not one of auto, none, required")
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise BadRequest("tool_choice must be auto, none, required or {type: function, function: {name}}")


def clean_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema reduced to the OpenAPI subset Gemini accepts: ``$ref`` inlined, union and
    nullable types rewritten (``["string","null"]`` -> ``nullable``; others -> ``anyOf``),
    ``oneOf`` -> ``anyOf``, ``const`` -> ``enum``, unknown keywords and formats dropped."""
    definitions = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _clean(schema, definitions, 0)


def _clean(schema: Mapping[str, Any], definitions: Mapping[str, Any], depth: int) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, dict) or depth >= MAX_REF_DEPTH:
            # a recursive or unknown reference cannot be inlined: accept any object there
            return {
                "type": "object",
                **({"description": schema["description"]} if "description" in schema else {}),
            }
        return _clean({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, definitions, depth + 1)
    schema = dict(schema)
    if "const" in schema and "enum" not in schema:
        schema["enum"] = [schema["const"]]
    if "oneOf" in schema and "anyOf" not in schema:
        schema["anyOf"] = schema["oneOf"]
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        schema = _merge_all_of(schema, all_of)
    out: dict[str, Any] = {}
    nullable = bool(schema.get("nullable"))
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        nullable = nullable or len(kinds) < len(kind)
        if len(kinds) > 1:
            return _split_union(schema, kinds, nullable, definitions, depth)
        kind = kinds[0] if kinds else None
    if kind == "null":
        kind, nullable = None, True
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        branches = [b for b in any_of if isinstance(b, dict) and b.get("type") != "null"]
        nullable = nullable or len(branches) < len(any_of)
        if len(branches) == 1 and kind is None:
            merged = _clean(branches[0], definitions, depth)
            for key in ("description", "title", "default"):
                if key in schema:
                    merged[key] = schema[key]
            if nullable:
                merged["nullable"] = True
            return merged
        if branches:
            out["anyOf"] = [_clean(b, definitions, depth) for b in branches]
    if kind is not None:
        out["type"] = kind
    if nullable:
        out["nullable"] = True
    for key, value in schema.items():
        if key in out or key not in SCHEMA_KEYS or key in ("type", "nullable", "anyOf"):
            continue
        if key == "properties" and isinstance(value, dict):
            if value:
                out[key] = {name: _clean(sub, definitions, depth) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = _clean(value, definitions, depth)
        elif key == "format":
            if value in _formats(kind):
                out[key] = value
        elif key == "enum" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
            # Gemini takes string enums only; the allowed values go to the description instead
            allowed = ", ".join(orjson.dumps(v).decode() for v in value)
            description = str(schema.get("description") or "").rstrip()
            out["description"] = f"{description} (one of: {allowed})".lstrip()
        else:
            out[key] = value
    if "required" in out:
        names = out.get("properties") or {}
        out["required"] = [r for r in out["required"] if r in names]
        if not out["required"]:
            del out["required"]
    return out


def _formats(kind: Any) -> frozenset[str]:
    if kind == "string":
        return STRING_FORMATS
    return NUMBER_FORMATS if kind in ("number", "integer") else frozenset()


def _merge_all_of(schema: dict[str, Any], parts: list[Any]) -> dict[str, Any]:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**(merged.get("properties") or {}), **value}
            elif key == "required":
                merged["required"] = [*(merged.get("required") or []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _split_union(
    schema: Mapping[str, Any], kinds: list[str], nullable: bool, definitions: Mapping[str, Any], depth: int
) -> dict[str, Any]:
    branches = []
    for kind in kinds:
        keys = TYPE_KEYS.get(kind, frozenset())
        branch = {"type": kind, **{k: v for k, v in schema.items() if k in keys}}
        branches.append(_clean(branch, definitions, depth))
    out: dict[str, Any] = {"anyOf": branches}
    if "description" in schema:
        out["description"] = schema["description"]
    if nullable:
        out["nullable"] = True
    return out


# -- generation config ----------------------------------------------------------------------


def _generation_config(params: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, gemini in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("top_logprobs", "logprobs"),
    ):
        value = params.get(name)
        if value is not None:
            config[gemini] = value
    max_tokens = max_tokens_of(params)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stops = stop_list(params.get("stop"))
    if stops:
        config["stopSequences"] = stops
    n = params.get("n")
    if n is not None and n != 1:
        config["candidateCount"] = n
    if params.get("logprobs"):
        config["responseLogprobs"] = True
    _response_format(params.get("response_format"), config)
    thinking = _thinking_config(params)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _response_format(response_format: Any, config: dict[str, Any]) -> None:
    if not isinstance(response_format, dict):
        return
    kind = response_format.get("type")
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        config["responseMimeType"] = "application/json"
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            config["responseSchema"] = clean_schema(schema)
    elif kind not in (None, "text"):
        raise BadRequest(f"response_format type '{kind}' is not supported by Gemini")


def _thinking_config(params: Mapping[str, Any]) -> dict[str, Any] | None:
    thinking = params.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        config: dict[str, Any] = {"includeThoughts": True}
        budget = thinking.get("budget_tokens")
        if budget is not None:
            config["thinkingBudget"] = budget
        return config
    effort = params.get("reasoning_effort")
    if not isinstance(effort, str):
        return None
    if str(params.get("model", "")).startswith("gemini-3"):
        return {"thinkingLevel": "minimal" if effort == "none" else effort}
    budget = EFFORT_BUDGETS.get(effort)
    if budget is None:
        raise BadRequest(f"reasoning_effort '{effort}' is not one of {', '.join(EFFORT_BUDGETS)}")
    return {"thinkingBudget": budget}
