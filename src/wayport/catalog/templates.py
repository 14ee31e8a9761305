"""A prompt template's content, its validation, and its rendering into an OpenAI request body.

Chat templates keep the messages as JSON in ``string``. Normally the JSON is parsed first and
Mustache expands inside its string values only (message contents, content parts, names), so a
variable can never break the JSON. With ``is_raw_template`` the whole string is rendered first and
parsed after, so sections can add or drop whole messages or parts; there ``{{x}}`` is escaped for a
JSON string and ``{{{x}}}`` inserts raw JSON. Completion templates render ``string`` to ``prompt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import orjson

from wayport.catalog.errors import InvalidInput
from wayport.catalog.mustache import MissingMode, Mustache, check_syntax, json_string, partial_names

__all__ = ["TEMPLATE_FIELDS", "PromptTemplate", "TemplateKind", "render_template", "validate_template"]

TemplateKind = Literal["chat", "completion"]
TEMPLATE_FIELDS = (
    "string",
    "parameters",
    "model",
    "provider",
    "virtual_key",
    "functions",
    "tools",
    "tool_choice",
    "template_metadata",
    "is_raw_template",
)


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """What one prompt version holds: the template, the model and its hyperparameters."""

    string: str
    parameters: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    provider: str | None = None
    virtual_key: str | None = None
    functions: list[Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    template_metadata: dict[str, Any] = field(default_factory=dict)
    is_raw_template: bool = False

    @property
    def kind(self) -> TemplateKind:
        """``template_metadata.template_type`` when set; otherwise chat when the string is a JSON list."""
        declared = self.template_metadata.get("template_type")
        if declared in ("chat", "completion"):
            return "chat" if declared == "chat" else "completion"
        return "chat" if self.string.lstrip().startswith("[") else "completion"

    def partials(self) -> set[str]:
        """The partials this template includes directly."""
        return partial_names(self.string)

    def with_changes(self, changes: Mapping[str, Any]) -> PromptTemplate:
        """A copy with the given fields replaced (unknown keys are ignored)."""
        known = {name: value for name, value in changes.items() if name in TEMPLATE_FIELDS}
        return replace(self, **known)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def validate_template(template: PromptTemplate) -> None:
    """Raise :class:`InvalidInput` naming every problem of ``template``."""
    errors: list[str] = []
    declared = template.template_metadata.get("template_type")
    if declared is not None and declared not in ("chat", "completion"):
        errors.append("path: template_metadata,template_type, message: must be 'chat' or 'completion'")
    if not isinstance(template.parameters, dict):
        errors.append("path: parameters, message: must be an object")
    try:
        check_syntax(template.string)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if template.kind == "chat" and not template.is_raw_template and not errors:
        errors.extend(_message_errors(template.string))
    if errors:
        raise InvalidInput("Invalid prompt template", errors)


def _message_errors(string: str) -> list[str]:
    try:
        messages = orjson.loads(string)
    except orjson.JSONDecodeError as exc:
        return [f"path: string, message: a chat template must be a JSON list of messages ({exc})"]
    if not isinstance(messages, list) or not messages:
        return ["path: string, message: a chat template must be a non-empty JSON list of messages"]
    errors = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            errors.append(f"path: string,{i}, message: a message must be an object with a 'role'")
    return errors


def render_template(
    template: PromptTemplate,
    variables: Mapping[str, Any],
    partials: Mapping[str, str],
    *,
    missing: MissingMode = "strict",
) -> dict[str, Any]:
    """The request body the template makes: its hyperparameters, ``model``, tools, and ``messages``
    (chat) or ``prompt`` (completion)."""
    # a copy: the template is cached and shared, the body is the caller's to change
    body: dict[str, Any] = _copy(template.parameters)
    if template.model:
        body["model"] = template.model
    for name in ("functions", "tools", "tool_choice"):
        value = getattr(template, name)
        if value is not None:
            body[name] = _copy(value)
    if template.kind == "completion":
        mustache = Mustache(partials)
        body["prompt"] = mustache.render(template.string, variables)
    elif template.is_raw_template:
        mustache = Mustache(partials, escape=json_string)
        text = mustache.render(template.string, variables)
        mustache.check(missing)  # before parsing: a missing variable explains broken JSON best
        body["messages"] = _parse_messages(text)
    else:
        mustache = Mustache(partials)
        body["messages"] = _render_strings(orjson.loads(template.string), mustache, variables)
    mustache.check(missing)
    return body


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _render_strings(value: Any, mustache: Mustache, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return mustache.render(value, variables)
    if isinstance(value, list):
        return [_render_strings(item, mustache, variables) for item in value]
    if isinstance(value, dict):
        return {key: _render_strings(item, mustache, variables) for key, item in value.items()}
    return value


def _parse_messages(text: str) -> list[Any]:
    try:
        messages = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("The rendered raw template is not valid JSON", [str(exc)]) from None
    if not isinstance(messages, list):
        raise InvalidInput("The rendered raw template is not a JSON list of messages")
    return messages
