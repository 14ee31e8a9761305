"""Provider adapters, one per wire format; OpenAI-compatible providers are rows of one table."""

from __future__ import annotations

from collections.abc import Mapping

from wayport.providers.anthropic import AnthropicAdapter
from wayport.providers.azure_openai import AzureOpenAIAdapter
from wayport.providers.base import Endpoint, FanOut, ProviderAdapter, Secret, Target, UpstreamRequest
from wayport.providers.bedrock import BedrockAdapter
from wayport.providers.cohere import CohereAdapter
from wayport.providers.google import GoogleAdapter
from wayport.providers.mistral import MistralAdapter
from wayport.providers.ollama import OllamaAdapter
from wayport.providers.openai_compatible import ROWS, OpenAICompatibleAdapter
from wayport.providers.vertex_ai import VertexAIAdapter

__all__ = [
    "Endpoint",
    "FanOut",
    "ProviderAdapter",
    "ProviderRegistry",
    "Secret",
    "Target",
    "UpstreamRequest",
]


def _native_adapters(base_urls: Mapping[str, str]) -> dict[str, ProviderAdapter]:
    """Adapters of providers with their own wire format (one line each)."""
    adapters: dict[str, ProviderAdapter] = {}
    adapters["azure-openai"] = AzureOpenAIAdapter(base_urls.get("azure-openai"))
    adapters["anthropic"] = AnthropicAdapter(base_urls.get("anthropic"))
    adapters["google"] = GoogleAdapter(base_urls.get("google"))
    adapters["vertex-ai"] = VertexAIAdapter(base_urls.get("vertex-ai"))
    adapters["bedrock"] = BedrockAdapter(base_urls.get("bedrock"))
    adapters["cohere"] = CohereAdapter(base_urls.get("cohere"))
    adapters["ollama"] = OllamaAdapter(base_urls.get("ollama"))
    adapters["mistral-ai"] = MistralAdapter(base_urls.get("mistral-ai"))
    return adapters


class ProviderRegistry:
    """Every adapter of this process, built once at start-up with the base-URL overrides."""

    def __init__(self, base_urls: Mapping[str, str] | None = None) -> None:
        base_urls = base_urls or {}
        adapters: dict[str, ProviderAdapter] = {
            row.name: OpenAICompatibleAdapter(row, base_urls.get(row.name)) for row in ROWS
        }
        adapters.update(_native_adapters(base_urls))
        self._adapters = adapters

    def get(self, name: str) -> ProviderAdapter | None:
        return self._adapters.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._adapters))

    def problem(self, name: str) -> str | None:
        """Why ``name`` cannot be used as a provider, or ``None`` when it can."""
        return None if name in self._adapters else self.unknown_provider_message(name)

    def unknown_provider_message(self, name: str) -> str:
        return f"Invalid provider passed: '{name}'. Known providers: {', '.join(self.names)}"
