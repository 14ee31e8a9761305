"""Saved configs for the data plane, from memory: no store read per request."""

from __future__ import annotations

from typing import Any

from wayport.catalog.configs import ACTIVE, ConfigRepository, SavedConfig

__all__ = ["ConfigResolver"]

# reads retried when a write was applied meanwhile (the read may predate it)
_READ_ATTEMPTS = 3


class ConfigResolver:
    """Maps a saved config's slug to its current content, from a dict held in memory.

    ``await load()`` at start-up reads every active config once. Writes made through this process
    (the catalog API) are applied at once with :meth:`apply`; a change made by another node is
    picked up by ``await refresh(slug)`` (to be called from Redis pub/sub). ``version`` goes up on
    every change, so a cache of parsed plans keyed by ``(slug, version)`` never serves a stale one.

    The dicts returned are shared: callers must not mutate them.
    """

    def __init__(self, repository: ConfigRepository) -> None:
        self._repository = repository
        self._configs: dict[str, dict[str, Any]] = {}
        self._workspaces: dict[str, str | None] = {}
        self.version = 0
        self.loaded = False

    async def load(self) -> None:
        """Read every active config from the store (replacing what is held)."""
        for _ in range(_READ_ATTEMPTS):
            seen = self.version
            configs = await self._repository.active()
            if seen == self.version:  # no write was applied while reading: nothing to lose
                break
        self._configs = {saved.slug: saved.config for saved in configs}
        self._workspaces = {saved.slug: saved.workspace_id for saved in configs}
        self.loaded = True
        self.version += 1

    def resolve(self, slug: str) -> dict[str, Any] | None:
        """The config saved under ``slug``; ``None`` when it is unknown or archived."""
        return self._configs.get(slug)

    def workspace_of(self, slug: str) -> str | None:
        """The workspace of the config saved under ``slug`` (``None``: made before workspaces)."""
        return self._workspaces.get(slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._configs

    def __len__(self) -> int:
        return len(self._configs)

    def apply(self, saved: SavedConfig) -> None:
        """Take a config as just written by this process."""
        if saved.status == ACTIVE:
            self._configs[saved.slug] = saved.config
            self._workspaces[saved.slug] = saved.workspace_id
        else:
            self._configs.pop(saved.slug, None)
            self._workspaces.pop(saved.slug, None)
        self.version += 1

    def invalidate(self, slug: str) -> None:
        """Forget ``slug`` until the next :meth:`refresh` or :meth:`load`."""
        if self._configs.pop(slug, None) is not None:
            self.version += 1

    async def refresh(self, slug: str) -> None:
        """Re-read one config from the store (another node changed it)."""
        for _ in range(_READ_ATTEMPTS):
            seen = self.version
            saved = await self._repository.get(slug)
            if seen == self.version:
                break
        if saved is None:
            self.invalidate(slug)
        else:
            self.apply(saved)
