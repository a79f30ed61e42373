"""Completions `prompt` in OpenAI's forms: a string, a list of strings, token arrays."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import launch
from tests.integration.configs import openai_endpoint

MOCK = """
  - name: mock-completions
    endpoint_type: llm/v1/completions
    model: {provider: mock, name: m, config: {}}
"""


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = (
        "endpoints:"
        + MOCK
        + openai_endpoint("openai", "completions", "gpt-3.5-turbo-instruct", upstream.base)
    )
    process = launch(tmp_path_factory.mktemp("prompts"), config)
    yield process
    process.stop()


def complete(gateway, name, prompt, **extra):
    body = {"prompt": prompt, "max_tokens": 3, **extra}
    return httpx.post(f"{gateway.url}/endpoints/{name}/invocations", json=body, timeout=10)


def test_one_prompt_list_is_its_string(gateway):
    as_list = complete(gateway, "mock-completions", ["alpha beta"]).json()
    as_text = complete(gateway, "mock-completions", "alpha beta").json()
    assert as_list["choices"] == as_text["choices"]


def test_several_prompts_are_answered_in_order_with_usage_summed(gateway):
    answer = complete(gateway, "mock-completions", ["alpha", "beta gamma"], n=1).json()
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    assert [choice["text"] for choice in answer["choices"]] == ["alpha alpha alpha", "beta gamma beta"]
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}


def test_openai_takes_the_list_itself(gateway, upstream):
    answer = complete(gateway, "openai", ["a", "b"]).json()
    assert upstream.last().body["prompt"] == ["a", "b"]
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    complete(gateway, "openai", [[1, 2, 3]])
    assert upstream.last().body["prompt"] == [[1, 2, 3]]


@pytest.mark.parametrize(
    ("prompt", "extra", "message"),
    [
        ([1, 2, 3], {}, "Token-array prompts are not supported by the Mock provider"),
        (["a", "b"], {"stream": True}, "A streamed request may carry one prompt for the Mock provider"),
        (["a"] * 33, {}, "At most 32 prompts per request for the Mock provider"),
    ],
)
def test_what_the_provider_cannot_take_is_a_clear_400(gateway, prompt, extra, message):
    response = complete(gateway, "mock-completions", prompt, **extra)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


def test_empty_list_is_a_422(gateway):
    assert complete(gateway, "mock-completions", []).status_code == 422
