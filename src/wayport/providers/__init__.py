"""Provider adapters, one per wire format; OpenAI-compatible providers are rows of one table."""

from __future__ import annotations

from collections.abc import Mapping

from wayport.providers.azure_openai import AzureOpenAIAdapter
from wayport.providers.base import Endpoint, FanOut, ProviderAdapter, Secret, Target, UpstreamRequest
from wayport.providers.openai_compatible import ROWS, OpenAICompatibleAdapter

__all__ = [
    "Endpoint",
    "FanOut",
    "ProviderAdapter",
    "ProviderRegistry",
    "Secret",
    "Target",
    "UpstreamRequest",
]

# Recognised provider ids whose native translation is not in this version yet: a request for one
# gets a clear 400 instead of "unknown provider".
NOT_YET_SUPPORTED = frozenset({"anthropic", "google", "vertex-ai", "bedrock", "cohere"})


def _native_adapters(base_urls: Mapping[str, str]) -> dict[str, ProviderAdapter]:
    """Adapters of providers with their own wire format (one line each)."""
    adapters: dict[str, ProviderAdapter] = {}
    adapters["azure-openai"] = AzureOpenAIAdapter(base_urls.get("azure-openai"))
    from wayport.providers.anthropic import AnthropicAdapter

    adapters["anthropic"] = AnthropicAdapter(base_urls.get("anthropic"))
    from wayport.providers.google import GoogleAdapter

    adapters["google"] = GoogleAdapter(base_urls.get("google"))
    from wayport.providers.vertex_ai import VertexAIAdapter

    adapters["vertex-ai"] = VertexAIAdapter(base_urls.get("vertex-ai"))
    from wayport.providers.bedrock import BedrockAdapter

    adapters["bedrock"] = BedrockAdapter(base_urls.get("bedrock"))
    from wayport.providers.cohere import CohereAdapter

    adapters["cohere"] = CohereAdapter(base_urls.get("cohere"))
    from wayport.providers.ollama import OllamaAdapter

    adapters["ollama"] = OllamaAdapter(base_urls.get("ollama"))
    from wayport.providers.mistral import MistralAdapter

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

    def unknown_provider_message(self, name: str) -> str:
        if name in NOT_YET_SUPPORTED and name not in self._adapters:
            return (
                f"Provider '{name}' is recognised but its native translation is not available in this "
                "version of Wayport"
            )
        return f"Invalid provider passed: '{name}'. Known providers: {', '.join(self.names)}"
