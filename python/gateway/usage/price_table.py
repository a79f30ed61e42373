"""The price table shipped with the package (`usage/prices.json`): list prices per provider family
and model, read once on first use. A model is found by its exact name, then with the versions
that do not change its price taken off one at a time (dates, Bedrock region prefixes and `-v2:0`
suffixes, Vertex `@version`, `-latest`, `-preview`), in the sections of its provider family, so
a name shared by two families (Llama, Mistral, Claude on Bedrock or Vertex) gets its own
provider's price."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from gateway.usage.pricing import Price

if TYPE_CHECKING:
    from gateway.config import EndpointConfig

# provider (canonical config name) -> the table sections searched, in order
FAMILIES: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "azure": ("openai",),  # Azure OpenAI lists the same prices per model
    "anthropic": ("anthropic",),
    "gemini": ("gemini",),
    "vertex_ai": ("gemini", "anthropic"),  # Gemini and Claude (`claude-...@date`) on Vertex
    "bedrock": ("bedrock", "bedrock-anthropic"),
    "amazon-bedrock": ("bedrock", "bedrock-anthropic"),
    "mistral": ("mistral",),
    "cohere": ("cohere",),
    "togetherai": ("together",),
    "ai21labs": ("ai21",),
    "deepseek": ("deepseek",),
    "xai": ("xai",),
}
# `provider/model` names (LiteLLM, OpenRouter, Portkey): the prefix picks the sections
PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "azure": ("openai",),
    "anthropic": ("anthropic",),
    "gemini": ("gemini",),
    "google": ("gemini",),
    "vertex_ai": ("gemini", "anthropic"),
    "bedrock": ("bedrock", "bedrock-anthropic"),
    "mistral": ("mistral",),
    "mistralai": ("mistral",),
    "cohere": ("cohere",),
    "together_ai": ("together",),
    "togetherai": ("together",),
    "ai21": ("ai21",),
    "deepseek": ("deepseek",),
    "xai": ("xai",),
    "x-ai": ("xai",),
}
ROUTERS = ("litellm", "openrouter", "portkey")
# tried in this order, one at a time, until a name is found
SUFFIXES = (
    re.compile(r"@[^@]*$"),  # Vertex: claude-sonnet-4-5@20250929, gemini-2.0-flash@001
    re.compile(r":\d+$"),  # Bedrock: ...-v2:0
    re.compile(r"-v\d+$"),  # Bedrock: ...-v2
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI: gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # Anthropic: claude-3-5-sonnet-20241022
    re.compile(r"-\d{2}-\d{4}$"),  # Cohere: command-r-plus-08-2024
    re.compile(r"-\d{2}-\d{2}$"),  # previews: gemini-2.5-flash-preview-05-20
    re.compile(r"-\d{3,4}$"),  # Gemini -001, Mistral -2411, OpenAI -0125
    re.compile(r"-latest$"),
    re.compile(r"-preview$"),
)
BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|au|ca|jp|us-gov|global)\.")


@functools.cache
def table() -> dict[str, Any]:
    """The whole document: `as_of`, `source` (pricing pages), `models` (section -> name -> prices)."""
    text = resources.files("gateway.usage").joinpath("prices.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@functools.cache
def _sections() -> dict[str, dict[str, Price]]:
    sections = {
        section: {name.lower(): _price(entry) for name, entry in models.items()}
        for section, models in table()["models"].items()
    }
    # Claude on Bedrock is billed at Anthropic's list prices: `anthropic.` + Anthropic's names
    sections["bedrock-anthropic"] = {
        f"anthropic.{name}": price for name, price in sections["anthropic"].items()
    }
    return sections


def _price(entry: dict[str, float]) -> Price:
    return Price(
        input_per_million=entry["input"],
        output_per_million=entry["output"],
        cached_input_per_million=entry.get("cached_input"),
        cache_write_per_million=entry.get("cache_write"),
        cache_write_1h_per_million=entry.get("cache_write_1h"),
    )


@functools.lru_cache(maxsize=1024)
def listed_price(provider: str, model: str | None) -> Price | None:
    """The table's price for a provider's model, None when it lists none."""
    if not model:
        return None
    name = model.strip().lower()
    families = FAMILIES.get(provider, ())
    if provider in ROUTERS and "/" in name:
        prefix, rest = name.split("/", 1)
        if prefix in PREFIXES:
            families, name = PREFIXES[prefix], rest
    if not families:
        return None
    if families[0] == "bedrock":
        name = BEDROCK_REGION.sub("", name)  # cross-region inference profiles: same price
    sections = _sections()
    return _find(name, [sections[family] for family in families])


def _find(name: str, sections: list[dict[str, Price]]) -> Price | None:
    while True:
        for section in sections:
            price = section.get(name)
            if price is not None:
                return price
        for suffix in SUFFIXES:
            shorter = suffix.sub("", name)
            if shorter != name:
                name = shorter
                break
        else:
            return None


def endpoint_price(endpoint: EndpointConfig) -> Price | None:
    """An endpoint's `model.pricing` when set, else the table's price for its provider and model."""
    if endpoint.pricing is not None:
        return endpoint.pricing
    return listed_price(endpoint.provider, endpoint.model_name)
