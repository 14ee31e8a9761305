"""Saved configs and prompt templates: the store's repositories, the in-memory resolvers the data
plane reads, and the ``/v1/configs``, ``/v1/prompts`` and ``/v1/collections`` routers."""

from __future__ import annotations

from wayport.catalog.configs import ConfigRepository, ConfigVersion, SavedConfig
from wayport.catalog.configs_api import configs_router
from wayport.catalog.errors import CatalogError, Conflict, InvalidInput, MissingVariables, NotFound
from wayport.catalog.mustache import MissingMode
from wayport.catalog.prompts import Prompt, PromptRepository, PromptVersion
from wayport.catalog.prompts_api import prompts_router
from wayport.catalog.render import CompletionEndpoint, PromptRenderer, ResolvedPrompt
from wayport.catalog.resolver import ConfigResolver
from wayport.catalog.state import CatalogState, ChangeHook
from wayport.catalog.templates import PromptTemplate

__all__ = [
    "CatalogError",
    "CatalogState",
    "ChangeHook",
    "CompletionEndpoint",
    "ConfigRepository",
    "ConfigResolver",
    "ConfigVersion",
    "Conflict",
    "InvalidInput",
    "MissingMode",
    "MissingVariables",
    "NotFound",
    "Prompt",
    "PromptRenderer",
    "PromptRepository",
    "PromptTemplate",
    "PromptVersion",
    "ResolvedPrompt",
    "SavedConfig",
    "configs_router",
    "prompts_router",
]
