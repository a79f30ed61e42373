"""Usage records of the Responses and Gemini-native routes: the provider's counts (cached and
reasoning tokens included), passthrough or translated, whole or streamed, reach the usage
database in OpenAI Chat's terms, so cost and budgets apply."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.api_gateway import api_config, running_gateway, usage_rows

COLUMNS = "path, endpoint, stream, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, estimated"


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory):
    directory = tmp_path_factory.mktemp("api-usage")
    url = f"sqlite:///{directory}/gateway.db"
    for process in running_gateway(directory, api_config(*upstreams, extra=f"database_url: {url}\n")):
        yield process, url


def rows(url: str, count: int) -> list[tuple]:
    return usage_rows(url, COLUMNS, count)


def test_usage_of_every_kind_of_call(gateway):
    process, url = gateway
    client = openai.OpenAI(base_url=f"{process.url}/v1", api_key="x", max_retries=0)
    client.responses.create(model="gpt", input="hi")
    with client.responses.stream(model="gpt", input="hi") as stream:
        stream.get_final_response()
    client.responses.create(model="claude", input="hi")
    with client.responses.stream(model="claude", input="hi") as stream:
        stream.get_final_response()
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    httpx.post(f"{process.url}/v1beta/models/gem:streamGenerateContent?alt=sse", json=body, timeout=10)
    httpx.post(f"{process.url}/v1beta/models/gpt:generateContent", json=body, timeout=10)
    found = rows(url, 6)
    openai_counts = (21, 9, 4, 2, False)  # the Responses upstream's own usage, converted
    claude_counts = (38, 12, 10, 0, False)  # input 25 + cache write 3 + cache read 10
    assert found == [
        ("/v1/responses", "gpt", False, 200, *openai_counts),
        ("/v1/responses", "gpt", True, 200, *openai_counts),
        ("/v1/responses", "claude", False, 200, *claude_counts),
        ("/v1/responses", "claude", True, 200, *claude_counts),
        ("/v1beta/models/gem:streamGenerateContent", "gem", True, 200, 5, 7, 2, 3, False),
        ("/v1beta/models/gpt:generateContent", "gpt", False, 200, 5, 6, 0, 0, False),
    ]
