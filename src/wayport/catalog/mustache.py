"""Mustache for prompts, with pystache: no HTML escaping, missing variables reported, not guessed.

Values come from untrusted JSON, and Mustache is logic-less: no code runs (JSON has no lambdas).
Rendering follows the spec (interpolation, sections, inverted sections, comments, partials, set
delimiters) with these choices for prompts:

- ``{{x}}`` is not HTML-escaped. In a raw JSON template (``escape=json_string``) it is escaped for a
  JSON string instead; ``{{{x}}}`` and ``{{&x}}`` always insert the value verbatim.
- ``true``/``false`` render as JSON does, ``null`` renders empty, ``3.0`` renders ``3``, objects
  and lists interpolated directly render as JSON.
- A name missing from the variables is collected; in ``strict`` mode the render then fails with
  every missing name (:class:`MissingVariables`), in ``empty`` mode it renders empty. A missing
  section (``{{#x}}``) is simply false: sections are how templates make parts optional.
- Partials come from a mapping filled beforehand (see :func:`partial_names`); a missing one fails in
  ``strict`` mode and renders empty in ``empty`` mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Literal

import orjson
from pystache.context import ContextStack, KeyNotFoundError  # type: ignore[import-untyped]
from pystache.parser import ParsingError, parse  # type: ignore[import-untyped]
from pystache.renderengine import RenderEngine  # type: ignore[import-untyped]

from wayport.catalog.errors import InvalidInput, MissingVariables

__all__ = ["MissingMode", "Mustache", "check_syntax", "json_string", "partial_names", "render"]

MissingMode = Literal["strict", "empty"]
MAX_PARTIAL_DEPTH = 20


class _Missing:
    """What a name missing from the context resolves to: false for sections, recorded for values."""

    def __bool__(self) -> bool:
        return False


_MISSING = _Missing()


@lru_cache(maxsize=512)
def _parse(template: str, delimiters: tuple[str, str] | None) -> Any:
    return parse(template, delimiters)


def check_syntax(template: str, where: str = "string") -> None:
    """Raise :class:`InvalidInput` when ``template`` is not well-formed Mustache."""
    try:
        parse(template, raise_on_mismatch=True)
    except ParsingError as exc:
        raise InvalidInput("Invalid prompt template", [f"path: {where}, message: {exc}"]) from None


def partial_names(template: str) -> set[str]:
    """The partials ``template`` includes directly (``{{>name}}``), in sections too."""
    names: set[str] = set()
    try:
        nodes = list(_parse(template, None)._parse_tree)
    except ParsingError:
        return names
    while nodes:
        node = nodes.pop()
        kind = type(node).__name__
        if kind == "_PartialNode":
            names.add(node.key)
        elif kind == "_SectionNode":
            nodes.extend(node.parsed._parse_tree)
        elif kind == "_InvertedNode":
            nodes.extend(node.parsed_section._parse_tree)
    return names


def json_string(value: str) -> str:
    """``value`` escaped for the inside of a JSON string."""
    return orjson.dumps(value).decode()[1:-1]


def _to_str(value: Any) -> str:
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


class _Engine(RenderEngine):  # type: ignore[misc]
    def __init__(self, partials: Mapping[str, str], escape: Callable[[str], str]) -> None:
        super().__init__(
            literal=str,
            escape=escape,
            resolve_context=self._resolve,
            resolve_partial=self._partial,
            to_str=_to_str,
        )
        self.partials = partials
        self.missing: dict[str, None] = {}
        self.missing_partials: dict[str, None] = {}
        self.depth = 0

    @staticmethod
    def _resolve(stack: Any, name: str) -> Any:
        try:
            return stack.get(name)
        except KeyNotFoundError:
            return _MISSING

    def _partial(self, name: str) -> str:
        template = self.partials.get(name)
        if template is None:
            self.missing_partials[name] = None
            return ""
        return template

    def fetch_string(self, context: Any, name: str) -> str:
        value = self._resolve(context, name)
        if value is _MISSING:
            self.missing[name] = None
            return ""
        return _to_str(value)

    def render(self, template: str, context_stack: Any, delimiters: tuple[str, str] | None = None) -> str:
        # partials are rendered through here: bound the depth of (possibly recursive) partials
        self.depth += 1
        try:
            if self.depth > MAX_PARTIAL_DEPTH:
                raise InvalidInput(f"Partials nest deeper than {MAX_PARTIAL_DEPTH} levels")
            return str(_parse(template, delimiters).render(self, context_stack))
        finally:
            self.depth -= 1


class Mustache:
    """Renders several templates with one set of partials, collecting what is missing across all of
    them, so one error can list every missing name (:meth:`check`)."""

    def __init__(
        self, partials: Mapping[str, str] | None = None, *, escape: Callable[[str], str] = str
    ) -> None:
        self._engine = _Engine(partials or {}, escape)

    def render(self, template: str, variables: Mapping[str, Any]) -> str:
        try:
            return self._engine.render(template, ContextStack(dict(variables)))
        except ParsingError as exc:
            raise InvalidInput("Invalid prompt template", [str(exc)]) from None

    @property
    def missing(self) -> list[str]:
        """Variables interpolated but not supplied, in the order met."""
        return list(self._engine.missing)

    @property
    def missing_partials(self) -> list[str]:
        return sorted(self._engine.missing_partials)

    def check(self, missing: MissingMode) -> None:
        """In ``strict`` mode, raise :class:`MissingVariables` for missing partials, then variables."""
        if missing != "strict":
            return
        if self._engine.missing_partials:
            raise MissingVariables(self.missing_partials, kind="partials")
        if self._engine.missing:
            raise MissingVariables(self.missing)


def render(
    template: str,
    variables: Mapping[str, Any],
    partials: Mapping[str, str] | None = None,
    *,
    missing: MissingMode = "strict",
    escape: Callable[[str], str] = str,
) -> str:
    """Render one ``template`` with ``variables``; see the module docstring for the rules."""
    mustache = Mustache(partials, escape=escape)
    output = mustache.render(template, variables)
    mustache.check(missing)
    return output
