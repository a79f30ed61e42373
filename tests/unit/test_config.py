"""Config parsing: secrets, limits, provider names and routes."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.secrets import resolve_secret
from gateway.settings import read_settings

ENDPOINT = """
endpoints:
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: {provider}
      name: m
      config:
        openai_api_key: {key}
"""


def test_env_and_file_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_VAR", "from-env")
    assert resolve_secret("$KEY_VAR") == "from-env"
    monkeypatch.setenv("EMPTY_VAR", "")
    with pytest.raises(ConfigError, match="Environment variable 'EMPTY_VAR' is not set"):
        resolve_secret("$EMPTY_VAR")
    key_file = tmp_path / "key"
    key_file.write_text("from-file\r\n")
    assert resolve_secret(str(key_file)) == "from-file"
    assert resolve_secret("literal-key") == "literal-key"
    with pytest.raises(ConfigError, match="not a string"):
        resolve_secret(123)


@pytest.mark.parametrize("spelling", ["OpenAI", "openai", "OPENAI"])
def test_provider_names_are_normalised(spelling):
    config = parse_config(ENDPOINT.format(name="a.b-c_d", provider=spelling, key="k"))
    assert config.endpoints[0].provider == "openai"
    assert config.endpoints[0].name == "a.b-c_d"


def test_azure_provider_name_is_reported_as_azure():
    text = ENDPOINT.format(name="a", provider="azure", key="k")
    assert parse_config(text).endpoints[0].provider == "azure"


def test_allowed_providers_policy():
    env = read_settings({"MLFLOW_GATEWAY_ALLOWED_PROVIDERS": "anthropic, mock"})
    with pytest.raises(ConfigError, match="not allowed by the current gateway provider policy"):
        parse_config(ENDPOINT.format(name="a", provider="openai", key="k"), env=env)


@pytest.mark.parametrize(
    ("period", "seconds", "description"),
    [
        ("minute", 60, "1 per 1 minute"),
        ("10 minutes", 600, "1 per 10 minute"),
        ("2 days", 172800, "1 per 2 day"),
        ("second", 1, "1 per 1 second"),
    ],
)
def test_limit_periods(period, seconds, description):
    text = (
        ENDPOINT.format(name="a", provider="openai", key="k")
        + f"    limit:\n      calls: 1\n      renewal_period: {period}\n"
    )
    limit = parse_config(text).endpoints[0].limit
    assert limit is not None
    assert limit.period_seconds == seconds
    assert limit.description == description


def test_unknown_keys_are_ignored():
    text = ENDPOINT.format(name="a", provider="openai", key="k") + "    surprise: 1\nextra_top: 2\n"
    assert parse_config(text).endpoints[0].name == "a"


def test_empty_endpoints_list_is_allowed():
    assert parse_config("endpoints: []\n").endpoints == ()


def test_provider_must_support_endpoint_type():
    text = "endpoints:\n  - name: e\n    endpoint_type: llm/v1/embeddings\n    model: {provider: mock, config: {}}\n"
    assert parse_config(text).endpoints[0].endpoint_type == "llm/v1/embeddings"
