"""What the catalog routers work on, built once at start-up by whoever mounts them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.collections import CollectionRepository
from wayport.catalog.configs import ConfigRepository, SavedConfig
from wayport.catalog.mustache import MissingMode
from wayport.catalog.partials import PartialRepository
from wayport.catalog.prompts import PromptRepository
from wayport.catalog.render import CompletionEndpoint, PromptRenderer
from wayport.catalog.resolver import ConfigResolver
from wayport.security.vault import Vault
from wayport.store.changes import SqliteChangeProbe, poll

__all__ = ["CatalogState", "ChangeHook"]

logger = logging.getLogger("wayport.catalog")

# called with a config's slug, or a prompt's or partial's key, after every write through the API
ChangeHook = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class CatalogState:
    """The repositories, the config resolver and the prompt renderer behind the catalog routers.

    Build it with :meth:`create`, then ``await state.start()`` (loads the resolver) before serving.
    Writes through the routers update :attr:`resolver` and :attr:`renderer` of this process at
    once, then call ``on_config_change(slug)`` / ``on_prompt_change(key)`` when given, which is where
    other nodes are told (e.g. Redis pub/sub calling their ``resolver.refresh`` and
    ``renderer.refresh``).
    """

    configs: ConfigRepository
    resolver: ConfigResolver
    collections: CollectionRepository
    prompts: PromptRepository
    partials: PartialRepository
    renderer: PromptRenderer
    on_config_change: ChangeHook | None = None
    on_prompt_change: ChangeHook | None = None

    @classmethod
    def create(
        cls,
        engine: AsyncEngine,
        vault: Vault,
        *,
        check_provider: Callable[[str], str | None],
        check_host: Callable[[str], str],
        missing_variables: MissingMode = "strict",
        on_config_change: ChangeHook | None = None,
        on_prompt_change: ChangeHook | None = None,
    ) -> CatalogState:
        """Everything over one engine; ``vault`` seals the credentials of saved configs.
        ``check_provider`` and ``check_host`` are the data plane's own checks (``ConfigParser``'s),
        so a config that saves is one the gateway accepts; ``missing_variables`` is ``strict`` (a
        400 listing them) or ``empty`` (rendered empty)."""
        configs = ConfigRepository(engine, vault, check_provider, check_host)
        collections = CollectionRepository(engine)
        prompts = PromptRepository(engine, collections)
        partials = PartialRepository(engine)
        return cls(
            configs=configs,
            resolver=ConfigResolver(configs),
            collections=collections,
            prompts=prompts,
            partials=partials,
            renderer=PromptRenderer(prompts, partials, missing=missing_variables),
            on_config_change=on_config_change,
            on_prompt_change=on_prompt_change,
        )

    async def start(self) -> None:
        """Load the saved configs into memory."""
        await self.resolver.load()

    async def reload_every(self, interval_s: float, probe: SqliteChangeProbe | None = None) -> None:
        """Re-read every saved config and forget every rendered prompt each ``interval_s`` seconds,
        forever (run it as a task), skipping rounds in which ``probe`` saw no commit. For several
        workers or nodes without a change channel: each process sees other processes' writes
        within ``interval_s``, at one read per interval. A store that is down keeps what is held
        served, and is tried again the next round."""
        await poll(self._reload, interval_s, probe, "the saved configs")

    async def _reload(self) -> None:
        await self.resolver.load()
        self.renderer.invalidate()

    async def config_changed(self, saved: SavedConfig) -> None:
        self.resolver.apply(saved)
        if self.on_config_change is not None:
            await self.on_config_change(saved.slug)

    async def prompts_changed(self, key: str) -> None:
        self.renderer.invalidate()
        if self.on_prompt_change is not None:
            await self.on_prompt_change(key)

    async def render_for_completion(
        self, reference: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], CompletionEndpoint, dict[str, Any]]:
        """See :meth:`PromptRenderer.render_for_completion`."""
        return await self.renderer.render_for_completion(reference, body)
