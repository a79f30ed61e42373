"""TypeSafe and SAP AI Core (spec §7.17): MLflow's configs for them load, with a warning, and
every call answers 501 with the reason (MLflow's message, or for SAP AI Core chat why it only
works through MLflow's judge path)."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers.unserved import SAP_AI_CORE_CHAT, TYPESAFE_API_BASE
from tests.conftest import launch
from tests.support.client import invoke

KINDS = ("chat", "completions", "embeddings")
TYPESAFE_KEY = "ts-very-secret"
BODIES = {
    "chat": {"messages": [{"role": "user", "content": "hi"}]},
    "completions": {"prompt": "Once"},
    "embeddings": {"input": "a"},
}


def expected(provider: str, kind: str) -> str:
    if provider == "sap-ai-core" and kind == "chat":
        return SAP_AI_CORE_CHAT
    display = "TypeSafe" if provider == "typesafe" else "SAP AI Core"
    return f"The {kind} route is not implemented for {display} models."


def endpoint(name: str, provider: str, kind: str, config: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: {provider}
      name: some-model
      config: {config}
"""


def configs(provider: str) -> str:
    if provider == "typesafe":
        return "{typesafe_api_key: $TYPESAFE_TEST_KEY, typesafe_api_base: 'https://ts.example/v1'}"
    return "{}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    endpoints = [
        endpoint(f"{provider}-{kind}", provider, kind, configs(provider))
        for provider in ("typesafe", "sap-ai-core")
        for kind in KINDS
    ]
    env = {"TYPESAFE_TEST_KEY": TYPESAFE_KEY}
    process = launch(tmp_path_factory.mktemp("unserved"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


@pytest.mark.parametrize("provider", ["typesafe", "sap-ai-core"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_call_answers_501(http, provider, kind):
    response = invoke(http, f"{provider}-{kind}", BODIES[kind])
    assert response.status_code == 501
    assert response.json() == {"detail": expected(provider, kind)}


def test_streams_answer_501_too(http):
    body = {**BODIES["chat"], "stream": True}
    for name in ("typesafe-chat", "sap-ai-core-chat"):
        response = http.post(f"/endpoints/{name}/invocations", json=body)
        assert response.status_code == 501
        assert response.json()["detail"] == expected(name.rsplit("-", 1)[0], "chat")


def test_start_up_warns_and_keeps_the_key_out_of_the_log(gateway, http):
    log = gateway.log()
    assert expected("typesafe", "embeddings") in log and SAP_AI_CORE_CHAT in log
    assert TYPESAFE_KEY not in log


def config_for(provider: str, kind: str, config: str) -> str:
    return "endpoints:" + endpoint("e", provider, kind, config)


@pytest.mark.parametrize("provider", ["typesafe", "sap-ai-core"])
@pytest.mark.parametrize("kind", KINDS)
def test_configs_load_with_the_reason(monkeypatch, provider, kind):
    monkeypatch.setenv("TYPESAFE_TEST_KEY", TYPESAFE_KEY)
    loaded = parse_config(config_for(provider, kind, configs(provider)))
    assert loaded.endpoints[0].unavailable == expected(provider, kind)
    assert loaded.warnings == (
        f"endpoint 'e' ({provider}, llm/v1/{kind}) cannot be served and answers 501: {expected(provider, kind)}",
    )


def test_typesafe_config_fields():
    config = parse_config(config_for("TypeSafe", "chat", "{typesafe_api_key: k, extra: 1}")).endpoints[0]
    assert config.provider == "typesafe"
    assert config.provider_config.typesafe_api_key == "k"
    assert config.provider_config.typesafe_api_base == TYPESAFE_API_BASE == "https://api.typesafe.ai/v1"
    with pytest.raises(ConfigError, match=r"model\.config\.typesafe_api_key: Field required"):
        parse_config(config_for("typesafe", "chat", "{}"))


def test_sap_ai_core_ignores_unknown_keys():
    config = parse_config(
        config_for("sap_ai_core", "chat", "{deployment: d1, resource_group: rg}")
    ).endpoints[0]
    assert config.provider == "sap-ai-core"
