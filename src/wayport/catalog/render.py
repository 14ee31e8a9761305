"""Rendering prompt references (``pp-...``, ``@12``, ``@latest``, ``@production``) into OpenAI
request bodies, from an in-memory cache: a render reads the store only after a change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wayport.catalog.configs import ACTIVE
from wayport.catalog.errors import InvalidInput, NotFound
from wayport.catalog.ids import parse_reference
from wayport.catalog.mustache import MAX_PARTIAL_DEPTH, MissingMode, partial_names
from wayport.catalog.partials import PartialRepository
from wayport.catalog.prompts import Prompt, PromptRepository, PromptVersion
from wayport.catalog.templates import render_template

__all__ = ["CompletionEndpoint", "PromptRenderer", "ResolvedPrompt"]

CompletionEndpoint = Literal["chat", "complete"]
# request fields that are not hyperparameters of the rendered body
_CONTROL_FIELDS = frozenset({"variables", "config", "prompt_id"})


@dataclass(frozen=True, slots=True)
class ResolvedPrompt:
    """A reference resolved: the prompt, the version it selects, and every partial it includes
    (transitively), by the key the templates use."""

    prompt: Prompt
    version: PromptVersion
    partials: Mapping[str, str]

    def log_fields(self) -> dict[str, Any]:
        """What a request log records about the prompt."""
        template = self.version.template
        return {
            "prompt_id": self.prompt.id,
            "prompt_slug": self.prompt.slug,
            "prompt_version": self.version.version,
            "prompt_version_id": self.version.id,
            "virtual_key": template.virtual_key,
            "provider": template.provider,
            "workspace_id": self.prompt.workspace_id,
        }


class PromptRenderer:
    """Resolves and renders prompt references, caching resolved references in memory.

    Any write to prompts, labels or partials through the catalog API calls :meth:`invalidate`, so
    the next render of a moved label gets the new version; another node's change arrives through
    ``await refresh()`` (for Redis pub/sub). ``version`` goes up on every invalidation.
    """

    def __init__(
        self,
        prompts: PromptRepository,
        partials: PartialRepository,
        *,
        missing: MissingMode = "strict",
        cache_size: int = 1024,
    ) -> None:
        self._prompts = prompts
        self._partials = partials
        self.missing: MissingMode = missing
        self._cache: dict[str, ResolvedPrompt] = {}
        self._cache_size = cache_size
        self.version = 0

    def invalidate(self) -> None:
        """Forget every resolved reference (a prompt, label or partial changed)."""
        self._cache.clear()
        self.version += 1

    async def refresh(self, key: str | None = None) -> None:
        """Hook for changes made by another node. Labels and partials reach many references, so
        everything is forgotten whatever ``key`` names; the next render reads the store once."""
        self.invalidate()

    async def resolve(self, reference: str) -> ResolvedPrompt:
        """The prompt version ``reference`` selects, with its partials; ``NotFound`` otherwise."""
        cached = self._cache.get(reference)
        if cached is not None:
            return cached
        generation = self.version
        parsed = parse_reference(reference)
        prompt, version = await self._prompts.version(parsed.key, parsed)
        if prompt.status != ACTIVE:
            raise NotFound(f"Prompt not found: {parsed.key}", [reference])
        resolved = ResolvedPrompt(prompt, version, await self._load_partials(version.template.string))
        # a write that landed while this was read must not be hidden behind a stale entry
        if generation == self.version:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[reference] = resolved
        return resolved

    async def render(
        self, reference: str, body: Mapping[str, Any], *, keep_stream: bool = False
    ) -> tuple[dict[str, Any], ResolvedPrompt]:
        """The request body for ``reference`` with ``body["variables"]``: the template's model and
        hyperparameters, overridden by any other field of ``body`` (``stream`` only when
        ``keep_stream``)."""
        variables = body.get("variables") or {}
        if not isinstance(variables, Mapping):
            raise InvalidInput("Invalid request body", ["path: variables, message: must be an object"])
        resolved = await self.resolve(reference)
        data = render_template(resolved.version.template, variables, resolved.partials, missing=self.missing)
        for name, value in body.items():
            if name in _CONTROL_FIELDS or (name == "stream" and not keep_stream):
                continue
            data[name] = value
        return data, resolved

    async def render_for_completion(
        self, reference: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], CompletionEndpoint, dict[str, Any]]:
        """For ``POST /v1/prompts/{reference}/completions``: the OpenAI request body to send through
        the gateway, the endpoint (``chat`` or ``complete``) and the prompt fields for the log."""
        data, resolved = await self.render(reference, body, keep_stream=True)
        endpoint: CompletionEndpoint = "chat" if resolved.version.template.kind == "chat" else "complete"
        return data, endpoint, resolved.log_fields()

    async def _load_partials(self, template: str) -> dict[str, str]:
        found: dict[str, str] = {}
        tried: set[str] = set()
        pending = partial_names(template)
        for _ in range(MAX_PARTIAL_DEPTH):
            pending -= tried
            if not pending:
                break
            tried |= pending
            strings = await self._partials.strings(pending)
            found.update(strings)
            pending = {name for text in strings.values() for name in partial_names(text)}
        return found
