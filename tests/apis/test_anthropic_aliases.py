"""Endpoint `aliases`: the model names agents send on their own (Claude Code's
`claude-sonnet-4-5-20250929`, `claude-3-5-haiku-latest`, ...) reach the endpoint the operator
chose, exact names first, then exact aliases, then glob aliases in config order; /v1/models
lists them; a config where two endpoints claim one exact alias does not load."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from gateway.config import parse_config
from gateway.config.aliases import AliasIndex
from gateway.errors import ConfigError
from tests.conftest import launch


def mock_endpoint(name: str, aliases: str = "") -> str:
    line = f"    aliases: {aliases}\n" if aliases else ""
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
{line}    model:
      provider: mock
      name: {name}-model
      config: {{}}
"""


CONFIG = "endpoints:" + "".join(
    [
        mock_endpoint("sonnet", "[claude-sonnet-*, claude-3-7-sonnet-latest]"),
        mock_endpoint("haiku", "[claude-3-5-haiku-latest, 'claude-haiku-*']"),
        mock_endpoint("anything-claude", "['claude-*']"),  # after the others: the catch-all
        mock_endpoint("claude-sonnet-special"),  # a name wins over any alias
    ]
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    process = launch(tmp_path_factory.mktemp("aliases"), CONFIG)
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("asked", "served_by"),
    [
        ("claude-sonnet-4-5-20250929", "sonnet"),
        ("claude-3-7-sonnet-latest", "sonnet"),
        ("claude-3-5-haiku-latest", "haiku"),
        ("claude-haiku-4-5", "haiku"),
        ("claude-opus-4-1-20250805", "anything-claude"),
        ("claude-sonnet-special", "claude-sonnet-special"),
        ("sonnet", "sonnet"),
    ],
)
def test_agent_model_names_reach_the_chosen_endpoint(gateway, asked, served_by):
    client = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0)
    answer = client.messages.create(model=asked, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert answer.model == f"{served_by}-model"


def test_aliases_apply_to_openai_routes_too(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    answer = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert answer.model == "sonnet-model"


def test_a_name_no_alias_matches_is_not_found(gateway):
    client = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="gpt-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])


def test_models_lists_what_a_client_may_ask_for(gateway):
    listed = httpx.get(f"{gateway.url}/v1/models").json()["data"]
    aliases = {model["id"]: model["alias_of"] for model in listed if "alias_of" in model}
    assert aliases == {
        "claude-3-7-sonnet-latest": "sonnet",
        "claude-3-5-haiku-latest": "haiku",
        "claude-sonnet-*": "sonnet",
        "claude-haiku-*": "haiku",
        "claude-*": "anything-claude",
    }
    assert {model["id"] for model in listed} >= {
        "sonnet",
        "haiku",
        "anything-claude",
        "claude-sonnet-special",
    }
    one = httpx.get(f"{gateway.url}/v1/models/claude-sonnet-4-5").json()
    assert one["id"] == "claude-sonnet-4-5" and one["alias_of"] == "sonnet" and one["owned_by"] == "mock"


def test_two_endpoints_claiming_one_exact_alias_do_not_load():
    text = "endpoints:" + mock_endpoint("a", "[claude-x]") + mock_endpoint("b", "[claude-x]")
    with pytest.raises(ConfigError, match="alias 'claude-x' is already an alias of 'a'"):
        parse_config(text)


def test_an_alias_naming_another_endpoint_does_not_load():
    text = "endpoints:" + mock_endpoint("a", "[b]") + mock_endpoint("b")
    with pytest.raises(ConfigError, match="alias 'b' is the name of another endpoint or route"):
        parse_config(text)


@pytest.mark.parametrize("aliases", ["{x: 1}", "['']", "[[a]]", "['a b']"])
def test_malformed_aliases_do_not_load(aliases):
    with pytest.raises(ConfigError, match="endpoint 'a': aliases"):
        parse_config("endpoints:" + mock_endpoint("a", aliases))


def test_overlapping_globs_resolve_in_config_order():
    index = AliasIndex([("first", ("claude-*",)), ("second", ("claude-sonnet-*", "exact"))])
    assert index.lookup("claude-sonnet-4") == "first"
    assert index.lookup("exact") == "second"
    assert index.lookup("gpt-4o") is None
    assert index.lookup("gpt-4o") is None  # remembered, still None
