"""Cost from usage, checked against prices read off genai-prices' own tables.

A price per million tokens times a token count is a cost in micro-dollars, so each expected value
below is plain arithmetic on the per-million prices quoted next to it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price, data_snapshot

from wayport.observability.pricing import PROVIDER_IDS, Cost, PriceOverride, Pricer, micros


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


def model_prices(provider_id: str, model: str) -> dict[str, Any]:
    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    return {key: value for key, value in vars(info.prices).items() if value is not None}


@pytest.mark.parametrize(
    ("provider_id", "model", "expected"),
    [
        (
            "openai",
            "gpt-4o",
            {"input_mtok": Decimal("2.5"), "cache_read_mtok": Decimal("1.25"), "output_mtok": 10},
        ),
        (
            "openai",
            "gpt-4o-mini",
            {
                "input_mtok": Decimal("0.15"),
                "cache_read_mtok": Decimal("0.075"),
                "output_mtok": Decimal("0.6"),
            },
        ),
        (
            "anthropic",
            "claude-3-5-sonnet-20241022",
            {
                "input_mtok": 3,
                "cache_read_mtok": Decimal("0.3"),
                "cache_write_mtok": Decimal("3.75"),
                "output_mtok": 15,
            },
        ),
        (
            "openai",
            "o3-mini",
            {"input_mtok": Decimal("1.1"), "cache_read_mtok": Decimal("0.55"), "output_mtok": Decimal("4.4")},
        ),
    ],
)
def test_the_table_below_uses_genai_prices_own_prices(
    provider_id: str, model: str, expected: dict[str, Any]
) -> None:
    prices = model_prices(provider_id, model)
    assert {key: prices[key] for key in expected} == expected


def test_gemini_flash_prices_are_tiered_at_128k() -> None:
    prices = model_prices("google", "gemini-1.5-flash")
    assert (prices["input_mtok"].base, prices["input_mtok"].tiers[0].start) == (Decimal("0.075"), 128_000)
    assert prices["input_mtok"].tiers[0].price == Decimal("0.15")
    assert (prices["output_mtok"].base, prices["output_mtok"].tiers[0].price) == (
        Decimal("0.3"),
        Decimal("0.6"),
    )


COST_TABLE: list[tuple[str, str, dict[str, Any], int | None, dict[str, int]]] = [
    # 1000 x $2.5 + 500 x $10 (per million)
    (
        "openai",
        "gpt-4o",
        {"prompt_tokens": 1000, "completion_tokens": 500},
        7500,
        {"input": 2500, "output": 5000},
    ),
    # 976 uncached x $0.15 = 146.4, 1024 cached x $0.075 = 76.8, 300 x $0.6 = 180 -> 403.2
    (
        "openai",
        "gpt-4o-mini",
        {"prompt_tokens": 2000, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1024}},
        403,
        {"input": 146, "cached_input": 77, "output": 180},
    ),
    # 1500 uncached x $3 = 4500, 2000 read x $0.3 = 600, 1500 written x $3.75 = 5625, 1000 x $15 = 15000
    (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        {
            "prompt_tokens": 5000,
            "completion_tokens": 1000,
            "prompt_tokens_details": {"cached_tokens": 2000, "cache_creation_tokens": 1500},
        },
        25725,
        {"input": 4500, "cached_input": 600, "cache_write": 5625, "output": 15000},
    ),
    # 10000 x $0.075 + 2000 x $0.3
    ("google", "gemini-1.5-flash", {"prompt_tokens": 10000, "completion_tokens": 2000}, 1350, {"input": 750}),
    # above 128k prompt tokens every token takes the upper tier: 200000 x $0.15 + 2000 x $0.6
    (
        "google",
        "gemini-1.5-flash",
        {"prompt_tokens": 200_000, "completion_tokens": 2000},
        31200,
        {"output": 1200},
    ),
    # 500 completion tokens of which 400 reasoning are all output: 1000 x $1.1 + 500 x $4.4
    (
        "openai",
        "o3-mini",
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "completion_tokens_details": {"reasoning_tokens": 400},
        },
        3300,
        {"output": 2200},
    ),
    # 10 x $0.15 = 1.5 micro-dollars, rounded half up
    ("openai", "gpt-4o-mini", {"prompt_tokens": 10, "completion_tokens": 0}, 2, {}),
    # Claude on Bedrock and on Vertex, priced by the model's name
    (
        "bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        {"prompt_tokens": 1000, "completion_tokens": 100},
        4500,
        {},
    ),
    ("vertex-ai", "claude-3-5-sonnet@20240620", {"prompt_tokens": 1000, "completion_tokens": 100}, 4500, {}),
    ("openai", "no-such-model-7b", {"prompt_tokens": 1000, "completion_tokens": 100}, None, {}),
    ("ollama", "llama3.1", {"prompt_tokens": 1000, "completion_tokens": 100}, None, {}),
]


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected", "parts"),
    COST_TABLE,
    ids=[f"{row[0]}/{row[1]}/{row[3]}" for row in COST_TABLE],
)
def test_cost_in_micro_dollars(
    pricer: Pricer,
    provider: str,
    model: str,
    usage: dict[str, Any],
    expected: int | None,
    parts: dict[str, int],
) -> None:
    cost = pricer.cost(provider, model, usage)
    if expected is None:
        assert cost is None
        return
    assert cost is not None
    assert cost.micros == expected and isinstance(cost.micros, int)
    assert isinstance(cost.usd, Decimal) and micros(cost.usd) == expected
    assert {name: cost.breakdown[name] for name in parts} == parts


def test_reasoning_tokens_cost_the_same_as_other_output(pricer: Pricer) -> None:
    plain = pricer.cost("openai", "o3-mini", {"prompt_tokens": 1000, "completion_tokens": 500})
    reasoning = pricer.cost(
        "openai",
        "o3-mini",
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "completion_tokens_details": {"reasoning_tokens": 400},
        },
    )
    assert plain == reasoning


def test_flat_usage_keys_are_understood(pricer: Pricer) -> None:
    nested = pricer.cost(
        "anthropic",
        "claude-3-5-sonnet-20241022",
        {"prompt_tokens": 5000, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 2000}},
    )
    flat = pricer.cost(
        "anthropic",
        "claude-3-5-sonnet-20241022",
        {"prompt_tokens": 5000, "completion_tokens": 10, "cached_tokens": 2000},
    )
    assert nested == flat


@pytest.mark.parametrize(
    ("provider_id", "wayport_provider", "model"),
    [
        ("openai", "openai", "gpt-4o"),
        ("openai", "openai", "gpt-4o-mini"),
        ("anthropic", "anthropic", "claude-3-5-sonnet-20241022"),
        ("anthropic", "anthropic", "claude-3-5-haiku-20241022"),
        ("google", "google", "gemini-1.5-flash"),
        ("google", "google", "gemini-2.0-flash"),
        ("perplexity", "perplexity-ai", "sonar"),
        ("mistral", "mistral-ai", "mistral-large-latest"),
        ("groq", "groq", "llama-3.1-8b-instant"),
        ("deepseek", "deepseek", "deepseek-chat"),
    ],
)
@pytest.mark.parametrize(
    ("prompt", "cached", "written", "completion"), [(5000, 0, 0, 700), (300_000, 1024, 512, 99)]
)
def test_the_total_agrees_with_genai_prices(
    pricer: Pricer,
    provider_id: str,
    wayport_provider: str,
    model: str,
    prompt: int,
    cached: int,
    written: int,
    completion: int,
) -> None:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_creation_tokens": written},
    }
    expected = calc_price(
        Usage(
            input_tokens=prompt,
            cache_read_tokens=cached,
            cache_write_tokens=written,
            output_tokens=completion,
        ),
        model,
        provider_id=provider_id,
    ).total_price
    cost = pricer.cost(wayport_provider, model, usage)
    assert cost is not None and cost.usd == expected


def test_more_cached_than_prompt_tokens_has_no_price(pricer: Pricer) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 20}}
    assert pricer.cost("openai", "gpt-4o", usage) is None


def test_malformed_usage_has_no_price(pricer: Pricer) -> None:
    assert pricer.cost("openai", "gpt-4o", {"prompt_tokens": -1}) is None
    assert pricer.cost("openai", "gpt-4o", {"prompt_tokens": "many"}) is None


def test_overrides_price_private_models_and_win_over_the_table() -> None:
    pricer = Pricer(
        {
            "my-llama": PriceOverride(input=Decimal("0.5"), output=Decimal("1.5")),
            "gpt-4o": PriceOverride(input=Decimal("1"), output=Decimal("2"), cached_input=Decimal("0.1")),
            "azure-openai/gpt-4o": PriceOverride(input=Decimal("3"), output=Decimal("4")),
        }
    )
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 1000,
        "prompt_tokens_details": {"cached_tokens": 500},
    }
    # 500 x $0.5 + 500 cached at the input price + 1000 x $1.5
    assert pricer.cost("ollama", "my-llama", usage) == Cost(
        micros=2000,
        usd=Decimal("0.002"),
        breakdown={"input": 250, "cached_input": 250, "cache_write": 0, "output": 1500},
        source="override",
    )
    # 500 x $1 + 500 x $0.1 + 1000 x $2
    openai_cost = pricer.cost("openai", "gpt-4o", usage)
    assert openai_cost is not None and openai_cost.micros == 2550
    # provider/model beats model: 500 x $3 + 500 x $3 + 1000 x $4
    azure_cost = pricer.cost("azure-openai", "gpt-4o", usage)
    assert azure_cost is not None and azure_cost.micros == 7000


def test_override_tables_from_settings_are_read_as_decimals() -> None:
    override = PriceOverride.from_mapping({"input": 0.1, "output": "0.3", "cache_write": 1})
    assert override == PriceOverride(input=Decimal("0.1"), output=Decimal("0.3"), cache_write=Decimal("1"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"input": 1}, "needs 'input' and 'output'"),
        ({"input": 1, "output": -2}, "non-negative"),
        ({"input": 1, "output": "cheap"}, "not a number"),
        ({"input": 1, "output": 2, "outptu": 3}, "unknown price field"),
    ],
)
def test_bad_override_tables_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceOverride.from_mapping(values)


def test_every_priced_model_costs_what_genai_prices_says() -> None:
    """The flat-rate fast path against genai-prices' own arithmetic, over its whole table: every
    model of every provider whose price it can compute for this usage and that Wayport's lookup
    finds by its own id (a few ids match another entry first)."""
    pricer = Pricer()
    usage = {
        "prompt_tokens": 5000,
        "completion_tokens": 700,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    gp_usage = Usage(input_tokens=5000, cache_read_tokens=1024, output_tokens=700)
    reverse = {genai: wayport for wayport, genai in PROVIDER_IDS.items()}
    compared = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            try:
                expected = model.calc_price(gp_usage, provider).total_price
            except (LookupError, ValueError, ArithmeticError):
                continue
            cost = pricer.cost(reverse.get(provider.id, provider.id), model.id, usage)
            if cost is None or cost.priced_model != model.id:
                continue
            assert cost.usd == expected, f"{provider.id}/{model.id}: {cost.usd} != {expected}"
            compared += 1
    assert compared > 1000
