"""OpenAI-shaped embeddings are relayed with each vector exactly as the upstream wrote it (the
gateway does not turn 1536 floats into Python objects and print them again): the numbers a
client reads are the upstream's, whatever their notation, base64 vectors included; an answer of
another shape takes the general path and gets the same errors as before."""

from __future__ import annotations

import json

import pytest

from tests.usage.inprocess import InProcessGateway

JSON = {"Content-Type": "application/json"}


def endpoint(provider: str, config: str) -> str:
    return f"""
  - name: embed
    endpoint_type: llm/v1/embeddings
    model:
      provider: {provider}
      name: text-embedding-3-small
      config: {config}
"""


OPENAI = endpoint("openai", "{openai_api_key: sk-embed-test}")
AZURE = endpoint(
    "openai",
    "{openai_api_key: sk-azure-test, openai_api_type: azure, openai_api_base: 'https://x.openai.azure.com',"
    " openai_deployment_name: emb, openai_api_version: '2024-02-01'}",
)
UPSTREAM = (
    b'{"object": "list", "data": [\n'
    b'  {"object": "embedding", "index": 0, "embedding": [1e-05, -0.0, 3.141592653589793, '
    b"0.1000000000000000055511151231257827, -2E+2]},\n"
    b'  {"object": "embedding", "index": 1, "embedding": "AACAPwAAAEA="}\n'
    b'], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 7, "total_tokens": 7,'
    b' "prompt_tokens_details": {"cached_tokens": 0}}}'
)


@pytest.mark.parametrize("config", [OPENAI, AZURE], ids=["openai", "azure"])
@pytest.mark.parametrize("path", ["/v1/embeddings", "/endpoints/embed/invocations"])
def test_vectors_reach_the_client_exactly_as_the_upstream_wrote_them(config, path):
    gateway = InProcessGateway(config, (200, JSON, UPSTREAM))
    body = {"input": ["a", "b"], **({"model": "embed"} if path.startswith("/v1/") else {})}
    answer = gateway.post(path, body)
    assert answer.status == 200
    assert b"[1e-05, -0.0, 3.141592653589793, 0.1000000000000000055511151231257827, -2E+2]" in answer.body
    assert json.loads(answer.body) == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [1e-05, -0.0, 3.141592653589793, 0.1, -200.0], "index": 0},
            {"object": "embedding", "embedding": "AACAPwAAAEA=", "index": 1},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    record = gateway.record
    assert (record.prompt_tokens, record.total_tokens, record.estimated) == (7, 7, False)


@pytest.mark.parametrize(
    ("upstream", "detail"),
    [
        # no usage: malformed, as MLflow's shapes need it
        (b'{"data": [{"embedding": [0.5], "index": 0}], "model": "m"}', "KeyError"),
        # not JSON at all, though labelled so
        (b'{"data": [{"embedding": [0.5,', "Malformed JSON"),
    ],
)
def test_an_answer_of_another_shape_gets_the_general_paths_error(upstream, detail):
    gateway = InProcessGateway(OPENAI, (200, JSON, upstream))
    answer = gateway.post("/v1/embeddings", {"model": "embed", "input": "a"})
    assert answer.status == 502
    assert detail in answer.json()["error"]["message"]


def test_usage_counts_the_upstream_may_leave_null_are_kept_null():
    upstream = b'{"data": [{"embedding": [0.5]}], "model": "m", "usage": {"prompt_tokens": null, "total_tokens": null}}'
    gateway = InProcessGateway(OPENAI, (200, JSON, upstream))
    answer = gateway.post("/v1/embeddings", {"model": "embed", "input": "a"})
    assert answer.status == 200
    assert answer.json()["usage"] == {"prompt_tokens": None, "total_tokens": None}
    assert answer.json()["data"] == [{"object": "embedding", "embedding": [0.5], "index": 0}]
