"""Cost: the shipped price table (lookup by provider family and model name, versions stripped),
the per-endpoint `model.pricing` override and its validation, and how tokens are priced."""

from __future__ import annotations

import datetime
import re

import pytest

from gateway.config import parse_config
from gateway.control.table import EndpointTable
from gateway.errors import ConfigError
from gateway.usage import price_table
from gateway.usage.price_table import listed_price, table
from gateway.usage.pricing import Price
from gateway.usage.tokens import Tokens
from tests.support.transport import RecordedTransport
from tests.usage.inprocess import InProcessGateway

JSON = {"content-type": "application/json"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


# -- how tokens are priced -----------------------------------------------------------------------
def test_cached_reads_and_cache_writes_have_their_own_prices():
    price = Price(3.0, 15.0, cached_input_per_million=0.30, cache_write_per_million=3.75)
    tokens = Tokens(prompt=7100, completion=250, cached=5000, cache_write=2000, total=7350)
    assert price.cost(tokens) == pytest.approx((100 * 3 + 5000 * 0.30 + 2000 * 3.75 + 250 * 15) / 1e6)


def test_without_cache_prices_cached_tokens_cost_the_input_price():
    price = Price(2.0, 8.0)
    tokens = Tokens(prompt=1000, completion=100, cached=600, cache_write=300, total=1100)
    assert price.cost(tokens) == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6)


def test_hour_long_cache_writes_have_their_own_price():
    """Anthropic bills a one-hour cache write at 2x the input price, a five-minute one at 1.25x."""
    price = Price(3.0, 15.0, 0.30, cache_write_per_million=3.75, cache_write_1h_per_million=6.0)
    tokens = Tokens(prompt=2100, completion=0, cache_write=2000, cache_write_1h=500)
    assert price.cost(tokens) == pytest.approx((100 * 3 + 1500 * 3.75 + 500 * 6.0) / 1e6)
    assert Price(3.0, 15.0, cache_write_per_million=3.75).cost(tokens) == pytest.approx(
        (100 * 3 + 2000 * 3.75) / 1e6
    )


def test_cache_counts_above_the_prompt_are_never_billed_twice():
    price = Price(1.0, 1.0, cached_input_per_million=0.5, cache_write_per_million=2.0)
    tokens = Tokens(prompt=100, completion=0, cached=80, cache_write=50)
    assert price.cost(tokens) == pytest.approx((80 * 0.5 + 20 * 2.0) / 1e6)


# -- the shipped table ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o", (2.50, 10.0, 1.25, None)),
        ("openai", "gpt-4o-2024-08-06", (2.50, 10.0, 1.25, None)),
        ("openai", "gpt-4o-2024-05-13", (5.0, 15.0, None, None)),  # an exact entry wins
        ("openai", "gpt-4o-mini-2024-07-18", (0.15, 0.60, 0.075, None)),
        ("openai", "gpt-3.5-turbo-0125", (0.50, 1.50, None, None)),
        ("openai", "GPT-5-chat-latest", (1.25, 10.0, 0.125, None)),
        ("azure", "gpt-4.1-mini", (0.40, 1.60, 0.10, None)),
        ("anthropic", "claude-3-5-sonnet-20241022", (3.0, 15.0, 0.30, 3.75, 6.0)),
        ("anthropic", "claude-opus-4-1-20250805", (15.0, 75.0, 1.50, 18.75, 30.0)),
        ("anthropic", "claude-3-7-sonnet-latest", (3.0, 15.0, 0.30, 3.75, 6.0)),
        ("vertex_ai", "claude-sonnet-4-5@20250929", (3.0, 15.0, 0.30, 3.75, 6.0)),
        ("vertex_ai", "gemini-2.0-flash-001", (0.10, 0.40, 0.025, None)),
        ("gemini", "gemini-2.5-flash-preview-05-20", (0.30, 2.50, 0.03, None)),
        ("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", (3.0, 15.0, 0.30, 3.75, 6.0)),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", (0.25, 1.25, 0.03, 0.30, 0.50)),
        ("amazon-bedrock", "eu.amazon.nova-pro-v1:0", (0.80, 3.20, 0.20, None)),
        ("bedrock", "meta.llama3-1-70b-instruct-v1:0", (0.72, 0.72, None, None)),
        ("bedrock", "mistral.mistral-large-2407-v1:0", (2.0, 6.0, None, None)),
        ("bedrock", "amazon.titan-embed-text-v2:0", (0.02, 0.0, None, None)),
        ("bedrock", "cohere.command-r-plus-v1:0", (3.0, 15.0, None, None)),
        ("mistral", "mistral-large-latest", (2.0, 6.0, None, None)),
        ("mistral", "mistral-small-2503", (0.10, 0.30, None, None)),
        ("cohere", "command-r-plus-08-2024", (2.50, 10.0, None, None)),
        ("togetherai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", (0.88, 0.88, None, None)),
        ("ai21labs", "jamba-1.5-large", (2.0, 8.0, None, None)),
        ("litellm", "anthropic/claude-3-5-haiku-20241022", (0.80, 4.0, 0.08, 1.0, 1.6)),
        ("deepseek", "deepseek-chat", (0.28, 0.42, 0.028, None)),
    ],
)
def test_lookup(provider, model, expected):
    assert listed_price(provider, model) == Price(*expected)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "ft:gpt-4o-mini:acme::abc"),  # fine-tunes have their own prices
        ("openai", "claude-3-5-sonnet"),  # names are looked up in the provider's own family only
        ("openai", "gpt-4o-realtime-preview"),  # never a shorter name that is another model
        ("anthropic", None),
        ("mock", "gpt-4o"),
        ("mlflow-model-serving", "gpt-4o"),
        ("bedrock", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"),
    ],
)
def test_unlisted_models_have_no_price(provider, model):
    assert listed_price(provider, model) is None


def test_the_same_name_is_priced_per_provider():
    """Mistral Large on Bedrock and on La Plateforme, Claude on Anthropic and Bedrock."""
    assert listed_price("mistral", "mistral-large-2411") == Price(2.0, 6.0)
    assert listed_price("bedrock", "mistral.mistral-large-2402-v1:0") == Price(4.0, 12.0)
    assert listed_price("cohere", "command-r-plus") != listed_price("bedrock", "cohere.command-r-plus-v1:0")


def test_the_table_names_its_sources_and_date():
    document = table()
    assert datetime.date.fromisoformat(document["as_of"]) >= datetime.date(2025, 11, 1)
    for section in ("openai", "azure", "anthropic", "gemini", "vertex_ai", "bedrock", "mistral", "cohere"):
        assert re.fullmatch(r"https://[\w.\-/#]+", document["source"][section])
    for section in document["models"]:
        assert section in document["source"]
    models = [entry for section in document["models"].values() for entry in section.values()]
    assert len(models) >= 60
    for entry in models:
        assert set(entry) <= {"input", "output", "cached_input", "cache_write", "cache_write_1h"}
        assert all(isinstance(value, float | int) and value >= 0 for value in entry.values())
        assert entry.get("cached_input", 0) <= entry["input"]


def test_the_table_is_read_once():
    assert table() is table()


# -- per endpoint: the override and the table's price, decided once ----------------------------
def endpoints(model: str = "gpt-4o", pricing: str = "") -> str:
    extra = f"\n      pricing: {pricing}" if pricing else ""
    return f"""
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: {model}
      config: {{openai_api_key: sk-pricing-test}}{extra}
"""


def test_an_mlflow_config_without_pricing_loads_unchanged():
    (endpoint,) = parse_config("endpoints:" + endpoints()).endpoints
    assert endpoint.pricing is None and endpoint.model_name == "gpt-4o"


def test_override_wins_over_the_table_and_is_read_per_request_from_the_built_table(monkeypatch):
    config = parse_config(
        "endpoints:"
        + endpoints(pricing="{input_per_million: 1, output_per_million: 2, cached_input_per_million: 0.5}")
    )
    endpoint_table = EndpointTable(config, RecordedTransport())  # type: ignore[arg-type]

    def no_lookup(*args):
        raise AssertionError("the price table was searched on the request path")

    monkeypatch.setattr(price_table, "listed_price", no_lookup)
    expected = Price(1.0, 2.0, cached_input_per_million=0.5)
    for target in endpoint_table.targets.values():
        assert endpoint_table.price_of(target.config) == expected


def answer(usage: dict) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}],
        "usage": usage,
    }


USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "total_tokens": 1100,
    "prompt_tokens_details": {"cached_tokens": 400},
}


def test_the_table_price_lands_in_the_record():
    gateway = InProcessGateway(endpoints(), (200, JSON, answer(USAGE)))
    gateway.post("/endpoints/chat/invocations", CHAT)
    assert gateway.record.priced
    assert gateway.record.cost_usd == pytest.approx((600 * 2.50 + 400 * 1.25 + 100 * 10.0) / 1e6, rel=1e-12)


def test_a_pricing_override_changes_the_cost():
    pricing = "{input_per_million: 10, output_per_million: 20, cached_input_per_million: 1}"
    gateway = InProcessGateway(endpoints(pricing=pricing), (200, JSON, answer(USAGE)))
    gateway.post("/endpoints/chat/invocations", CHAT)
    assert gateway.record.cost_usd == pytest.approx((600 * 10 + 400 * 1 + 100 * 20) / 1e6, rel=1e-12)


def test_an_unlisted_model_is_recorded_unpriced():
    gateway = InProcessGateway(endpoints(model="my-own-finetune"), (200, JSON, answer(USAGE)))
    gateway.post("/endpoints/chat/invocations", CHAT)
    record = gateway.record
    assert not record.priced and record.cost_usd == 0.0 and record.prompt_tokens == 1000


def test_an_override_prices_an_unlisted_model():
    pricing = "{input_per_million: 0.5, output_per_million: 1.5}"
    gateway = InProcessGateway(endpoints("my-own-finetune", pricing), (200, JSON, answer(USAGE)))
    gateway.post("/endpoints/chat/invocations", CHAT)
    record = gateway.record
    assert record.priced and record.cost_usd == pytest.approx((1000 * 0.5 + 100 * 1.5) / 1e6, rel=1e-12)


@pytest.mark.parametrize(
    ("pricing", "message"),
    [
        (
            "{input_per_million: 1, output_per_million: 2, cached_per_million: 0.1}",
            "endpoint 'chat': model.pricing.cached_per_million: Extra inputs are not permitted (known keys: "
            "input_per_million, output_per_million, cached_input_per_million, cache_write_per_million, "
            "cache_write_1h_per_million)",
        ),
        (
            "{input_per_million: -1, output_per_million: 2}",
            "endpoint 'chat': model.pricing.input_per_million: Input should be greater than or equal to 0, got -1",
        ),
        (
            '{input_per_million: "2.50", output_per_million: 10}',
            "endpoint 'chat': model.pricing.input_per_million: Input should be a number "
            "(USD per million tokens), got a string",
        ),
        (
            "{input_per_million: 1, output_per_million: .nan}",
            "endpoint 'chat': model.pricing.output_per_million: Input should be a number "
            "(USD per million tokens), got a non-finite number",
        ),
        (
            "{input_per_million: 1, output_per_million: true}",
            "endpoint 'chat': model.pricing.output_per_million: Input should be a number "
            "(USD per million tokens), got a boolean",
        ),
        ("{input_per_million: 1}", "endpoint 'chat': model.pricing.output_per_million: Field required"),
        (
            "[1, 2]",
            "endpoint 'chat': model.pricing: Input should be a valid mapping (input_per_million, "
            "output_per_million, cached_input_per_million, cache_write_per_million, "
            "cache_write_1h_per_million: USD per million tokens)",
        ),
    ],
)
def test_a_bad_pricing_is_refused_at_load_with_a_clear_message(pricing, message):
    with pytest.raises(ConfigError) as refused:
        parse_config("endpoints:" + endpoints(pricing=pricing))
    assert str(refused.value) == message


def test_gateway_validate_refuses_a_bad_pricing(tmp_path, capsys):
    from gateway.cli import main

    path = tmp_path / "config.yaml"
    path.write_text("endpoints:" + endpoints(pricing="{input_per_million: -3, output_per_million: 2}"))
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    assert exited.value.code != 0
    captured = capsys.readouterr()
    assert (
        "model.pricing.input_per_million: Input should be greater than or equal to 0"
        in captured.err + captured.out
    )
