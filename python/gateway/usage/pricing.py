"""What tokens cost: a price per provider and model (USD per million tokens: input, output,
cached input, cache write), overridable per endpoint with `model.pricing`."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from gateway.errors import ConfigError
from gateway.usage.tokens import Tokens

PER_MILLION = 1_000_000
PRICING_KEYS = (
    "input_per_million",
    "output_per_million",
    "cached_input_per_million",
    "cache_write_per_million",
    "cache_write_1h_per_million",
)
REQUIRED_KEYS = PRICING_KEYS[:2]


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None  # None: the input price
    cache_write_per_million: float | None = None  # None: the input price
    cache_write_1h_per_million: float | None = None  # hour-long cache writes; None: cache write's

    def cost(self, tokens: Tokens) -> float:
        """Cached reads and cache writes at their own prices, the rest of the input at the input
        price (prompt tokens include both: OpenAI and Gemini count cached tokens inside the
        prompt, the Anthropic and Bedrock providers add reads and writes into it), output at the
        output price (reasoning tokens are inside the completion and billed as output)."""
        cached = min(tokens.cached, tokens.prompt)
        written = min(tokens.cache_write, tokens.prompt - cached)
        written_1h = min(tokens.cache_write_1h, written)
        fresh = tokens.prompt - cached - written
        cached_price = (
            self.input_per_million if self.cached_input_per_million is None else self.cached_input_per_million
        )
        write_price = (
            self.input_per_million if self.cache_write_per_million is None else self.cache_write_per_million
        )
        write_1h_price = (
            write_price if self.cache_write_1h_per_million is None else self.cache_write_1h_per_million
        )
        return (
            fresh * self.input_per_million
            + cached * cached_price
            + (written - written_1h) * write_price
            + written_1h * write_1h_price
            + tokens.completion * self.output_per_million
        ) / PER_MILLION


def parse_pricing(raw: Any) -> Price | None:
    """An endpoint's `model.pricing` (None when absent), checked as the config loads: a mapping
    of the four known keys, input and output required, each a finite number >= 0."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(
            "model.pricing: Input should be a valid mapping "
            f"({', '.join(PRICING_KEYS)}: USD per million tokens)"
        )
    for key in raw:
        if key not in PRICING_KEYS:
            raise ConfigError(
                f"model.pricing.{key}: Extra inputs are not permitted (known keys: {', '.join(PRICING_KEYS)})"
            )
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ConfigError(f"model.pricing.{key}: Field required")
    values: dict[str, float] = {}
    for key, value in raw.items():
        if value is None and key not in REQUIRED_KEYS:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(
                f"model.pricing.{key}: Input should be a number (USD per million tokens), got {_kind(value)}"
            )
        if value < 0:
            raise ConfigError(f"model.pricing.{key}: Input should be greater than or equal to 0, got {value}")
        values[key] = float(value)
    return Price(**values)


def _kind(value: Any) -> str:
    # the kind, never the value: a config error is printed and logged
    if isinstance(value, float):
        return "a non-finite number"
    return {bool: "a boolean", str: "a string", list: "a list", dict: "a mapping"}.get(type(value), "null")
