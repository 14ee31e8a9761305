"""What a request cost, from the provider's token usage and genai-prices' offline price data.

Money never passes through a float: prices are ``Decimal`` per million tokens, results are integer
micro-dollars (``1 USD = 1_000_000``), rounded half up. An unknown model costs ``None`` — never a
guess, never zero — and the caller counts it.

Usage is Wayport's OpenAI-shaped ``usage`` object: ``prompt_tokens`` *includes* the cached-read
tokens (``prompt_tokens_details.cached_tokens``) and the cache-write tokens
(``prompt_tokens_details.cache_creation_tokens``); ``completion_tokens`` includes the reasoning
tokens (``completion_tokens_details.reasoning_tokens``), which are billed as output.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from genai_prices import Usage, data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, calc_unit_price

__all__ = ["Cost", "PriceOverride", "Pricer", "TokenUsage", "micros"]

_MILLION = 1_000_000
_ONE = Decimal(1)

# Wayport provider id -> genai-prices provider id. Providers missing here are looked up under
# their own id (genai-prices also matches aliases such as ``together-ai``).
PROVIDER_IDS: Mapping[str, str] = {
    "openai": "openai",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "vertex-ai": "google",
    "bedrock": "aws",
    "mistral-ai": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "x-ai": "x-ai",
    "together-ai": "together",
    "fireworks-ai": "fireworks",
    "openrouter": "openrouter",
    "perplexity-ai": "perplexity",
    "cerebras": "cerebras",
    "novita-ai": "novita",
    "moonshot": "moonshotai",
}
# Wayport providers that host other vendors' models under the vendor's name (Claude on Vertex):
# when the hosting provider has no price, the model's own vendor is tried.
_HOSTS_OTHER_VENDORS = frozenset({"vertex-ai", "bedrock", "azure-openai", "openrouter"})

_CACHE_SIZE = 4096


def micros(usd: Decimal) -> int:
    """US dollars as integer micro-dollars, rounded half up."""
    if not usd:
        return 0
    return int(usd.scaleb(6).quantize(_ONE, rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one request; ``prompt`` includes ``cached`` and ``cache_write``."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @classmethod
    def from_usage(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """Read OpenAI-shaped usage (with ``*_details``) or flat Wayport keys."""
        prompt_details = _details(usage.get("prompt_tokens_details"))
        completion_details = _details(usage.get("completion_tokens_details"))
        return cls(
            prompt=_count(usage.get("prompt_tokens", usage.get("input_tokens"))),
            completion=_count(usage.get("completion_tokens", usage.get("output_tokens"))),
            cached=_count(prompt_details.get("cached_tokens", usage.get("cached_tokens"))),
            cache_write=_count(
                prompt_details.get(
                    "cache_creation_tokens",
                    usage.get("cache_write_tokens", usage.get("cache_creation_tokens")),
                )
            ),
            reasoning=_count(completion_details.get("reasoning_tokens", usage.get("reasoning_tokens"))),
        )


def _details(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"token count {value!r} is not a number")
    count = int(value)
    if count < 0:
        raise ValueError(f"token count {value!r} is negative")
    return count


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one request: the exact ``usd`` total, the rounded ``micros`` and the parts.

    ``breakdown`` holds micro-dollars for ``input`` (uncached prompt tokens), ``cached_input``,
    ``cache_write``, ``output`` (completion, reasoning included) and, when the model has other
    charges (per-request fees), ``other``. Each part is rounded on its own, so the parts may differ
    from ``micros`` by a micro-dollar or two.
    """

    micros: int
    usd: Decimal
    breakdown: dict[str, int] = field(default_factory=dict)
    currency: str = "USD"
    # where the price came from: "genai-prices" or "override"
    source: str = "genai-prices"
    # the model id the price table matched (e.g. "claude-3-5-sonnet" for a dated snapshot)
    priced_model: str | None = None


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Prices of a private deployment, in US dollars per million tokens.

    Cached-read and cache-write tokens are billed at the input price when their own is not given.
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PriceOverride:
        """From a settings table such as ``{"input": "0.5", "output": "1.5"}``; floats are read
        through their shortest decimal repr, so ``0.1`` means ``Decimal("0.1")``."""
        unknown = set(values) - {"input", "output", "cached_input", "cache_write"}
        if unknown:
            raise ValueError(f"unknown price field(s): {', '.join(sorted(unknown))}")
        if "input" not in values or "output" not in values:
            raise ValueError("a price override needs 'input' and 'output' (USD per million tokens)")
        return cls(
            input=_price(values["input"]),
            output=_price(values["output"]),
            cached_input=_price(values["cached_input"]) if values.get("cached_input") is not None else None,
            cache_write=_price(values["cache_write"]) if values.get("cache_write") is not None else None,
        )


def _price(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"price {value!r} is not a number")
    try:
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError(f"price {value!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"price {value!r} must be a non-negative number")
    return price


PRICE_TTL_S = 60.0


class Pricer:
    """Prices requests with genai-prices' bundled data, or with ``overrides`` first.

    ``overrides`` maps a model name (``"my-llama"``) or ``"provider/model"`` (more specific, tried
    first) to a :class:`PriceOverride`. Lookups are cached, unknown models included, so pricing a
    request is a dictionary hit after the first request for a model. Call :meth:`warm` at start-up
    to load the price data (a few hundred milliseconds) before traffic arrives.
    """

    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides = {key.lower(): value for key, value in (overrides or {}).items()}
        self._models: OrderedDict[tuple[str, str], tuple[ModelInfo, Provider] | None] = OrderedDict()
        self._rates: dict[tuple[str, str], tuple[float, _Rates | None]] = {}

    def warm(self) -> None:
        """Load the bundled price data now rather than on the first priced request."""
        data_snapshot.get_snapshot()

    def cost(
        self, provider: str, model: str, usage: Mapping[str, Any], *, at: datetime | None = None
    ) -> Cost | None:
        """The cost of ``usage`` on ``provider``'s ``model``; ``None`` when the price is unknown or
        the usage is inconsistent (more cached tokens than prompt tokens). ``at`` picks historic
        prices (default: now)."""
        try:
            tokens = TokenUsage.from_usage(usage)
        except ValueError:
            return None
        if tokens.cached + tokens.cache_write > tokens.prompt:
            return None
        override = self._overrides.get(f"{provider}/{model}".lower()) or self._overrides.get(model.lower())
        if override is not None:
            return _cost_from_override(override, tokens)
        found = self._lookup(provider, model)
        if found is None:
            return None
        info, vendor = found
        try:
            rates = self._current_rates(info, vendor) if at is None else _flat(info.get_prices(at))
            if rates is not None:
                # Only token prices and per-call fees: the same arithmetic as genai-prices,
                # without building its usage object (about 20x faster on the response path).
                return rates.cost(tokens, info.id)
            gp_usage = Usage(
                input_tokens=tokens.prompt,
                cache_read_tokens=tokens.cached,
                cache_write_tokens=tokens.cache_write,
                output_tokens=tokens.completion,
            )
            calc = info.calc_price(gp_usage, vendor, genai_request_timestamp=at or datetime.now(UTC))
            parts = _Rates.of(calc.model_price).parts(tokens)
        except (LookupError, ValueError, ArithmeticError):
            return None
        return _cost(calc.total_price, parts, info.id)

    def _current_rates(self, info: ModelInfo, vendor: Provider) -> _Rates | None:
        # Prices change at most by the hour (time-of-day pricing); resolving them on every
        # request showed in profiles, so the current ones are kept for a minute.
        now = time.monotonic()
        # by vendor too: one model id ("deepseek/deepseek-v4-pro") has other prices elsewhere
        key = (vendor.id, info.id)
        cached = self._rates.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        rates = _flat(info.get_prices(datetime.now(UTC)))
        self._rates[key] = (now + PRICE_TTL_S, rates)
        return rates

    def _lookup(self, provider: str, model: str) -> tuple[ModelInfo, Provider] | None:
        key = (provider, model)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        found = _find(provider, model)
        self._models[key] = found
        if len(self._models) > _CACHE_SIZE:
            self._models.popitem(last=False)
        return found


def _find(provider: str, model: str) -> tuple[ModelInfo, Provider] | None:
    snapshot = data_snapshot.get_snapshot()
    try:
        vendor, info = snapshot.find_provider_model(model, None, PROVIDER_IDS.get(provider, provider), None)
        return info, vendor
    except LookupError:
        pass
    if provider in _HOSTS_OTHER_VENDORS:
        # "anthropic.claude-…" on Bedrock or "claude-…@2024…" on Vertex: let the model name pick.
        try:
            vendor, info = snapshot.find_provider_model(model, None, None, None)
            return info, vendor
        except LookupError:
            pass
    return None


def _cost_from_override(override: PriceOverride, tokens: TokenUsage) -> Cost:
    cached_price = override.cached_input if override.cached_input is not None else override.input
    write_price = override.cache_write if override.cache_write is not None else override.input
    parts = {
        "input": override.input * (tokens.prompt - tokens.cached - tokens.cache_write) / _MILLION,
        "cached_input": cached_price * tokens.cached / _MILLION,
        "cache_write": write_price * tokens.cache_write / _MILLION,
        "output": override.output * tokens.completion / _MILLION,
    }
    total = sum(parts.values(), Decimal(0))
    return Cost(
        micros=micros(total),
        usd=total,
        breakdown={name: micros(value) for name, value in parts.items()},
        source="override",
        priced_model=None,
    )


# Price keys the fast path understands. Zero-usage count prices (web searches…) cost nothing;
# ``requests_kcount`` is a per-call fee; the 1-hour cache-write price applies to tokens Wayport
# does not report separately, so it costs nothing here either.
_SIMPLE_KEYS = frozenset(
    {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok"}
)


Unit = Decimal | TieredPrices | None


@dataclass(frozen=True, slots=True)
class _Rates:
    """The price of each token class and the fee per call, read once from a ``ModelPrice``.
    Cached-read and cache-write tokens without a price of their own are billed as input, the way
    genai-prices decomposes usage."""

    input: Unit
    cached_input: Unit
    cache_write: Unit
    output: Unit
    fee: Decimal

    @classmethod
    def of(cls, prices: ModelPrice) -> _Rates:
        base = _unit(prices, "input_mtok")
        fee = _unit(prices, "requests_kcount")
        return cls(
            input=base,
            cached_input=_unit(prices, "cache_read_mtok") or base,
            cache_write=_unit(prices, "cache_write_mtok") or base,
            output=_unit(prices, "output_mtok"),
            fee=fee / 1000 if isinstance(fee, Decimal) else Decimal(0),
        )

    def parts(self, tokens: TokenUsage) -> dict[str, Decimal]:
        prompt = tokens.prompt
        return {
            "input": _charge(self.input, prompt - tokens.cached - tokens.cache_write, prompt),
            "cached_input": _charge(self.cached_input, tokens.cached, prompt),
            "cache_write": _charge(self.cache_write, tokens.cache_write, prompt),
            "output": _charge(self.output, tokens.completion, prompt),
        }

    def cost(self, tokens: TokenUsage, model_id: str) -> Cost:
        parts = self.parts(tokens)
        return _cost(sum(parts.values(), Decimal(0)) + self.fee, parts, model_id)


def _flat(prices: ModelPrice) -> _Rates | None:
    """The rates of ``prices`` when Wayport's arithmetic covers them (token prices, tiers by
    prompt size, per-call fees); ``None`` when genai-prices must compute the price."""
    return _Rates.of(prices) if _simple(prices) else None


def _simple(prices: ModelPrice) -> bool:
    return all(
        key in _SIMPLE_KEYS or key.endswith("_kcount")
        for key, value in vars(prices).items()
        if value is not None and not key.startswith("_")
    )


def _cost(total: Decimal, parts: Mapping[str, Decimal], model_id: str) -> Cost:
    breakdown = {name: micros(value) for name, value in parts.items()}
    other = total - sum(parts.values(), Decimal(0))
    if other != 0:
        breakdown["other"] = micros(other)
    return Cost(micros=micros(total), usd=total, breakdown=breakdown, priced_model=model_id)


def _unit(prices: ModelPrice, key: str) -> Unit:
    value = getattr(prices, key, None)
    return value if isinstance(value, Decimal | TieredPrices) else None


def _charge(price: Unit, count: int, total_input: int) -> Decimal:
    if price is None or count == 0:
        return Decimal(0)
    return calc_unit_price(price, count, total_input, _MILLION)
