"""The Messages API passed through to Claude on Amazon Bedrock (InvokeModel and
InvokeModelWithResponseStream) against a Bedrock emulation that checks every SigV4 signature:
Bedrock's body form, the betas in the body, event-stream frames turned back into Anthropic's SSE
events byte for byte, and an exception frame as an Anthropic error event."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from tests.conftest import launch
from tests.providers.anthropic_upstream import stream_events
from tests.providers.bedrock_upstream import REGION
from tests.providers.test_bedrock import KEYS, KEYS_AUTH
from tests.support.anthropic_upstream import BedrockClaudeUpstream

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
THROTTLED = "anthropic.claude-stream-throttled-v1:0"
HI = [{"role": "user", "content": "hi"}]


def endpoint(name: str, model: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: bedrock
      name: "{model}"
      config:
        aws_config:
          {KEYS_AUTH}
"""


@pytest.fixture(scope="module")
def upstream():
    server = BedrockClaudeUpstream().start()
    server.credentials[KEYS["id"]] = (KEYS["secret"], KEYS["token"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": upstream.url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    config = "endpoints:" + endpoint("bedrock-claude", CLAUDE) + endpoint("throttled", THROTTLED)
    process = launch(tmp_path_factory.mktemp("anthropic-bedrock"), config, env=env)
    yield process
    process.stop()


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0)


def test_create_is_invoke_model_with_bedrocks_body(client, upstream):
    answer = client.messages.create(
        model="bedrock-claude",
        max_tokens=32,
        messages=HI,
        metadata={"user_id": "u-1"},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14, context-1m-2025-08-07"},
    )
    assert answer.content[0].text.startswith("Hello from Claude")
    assert answer.usage.cache_read_input_tokens == 10
    sent = upstream.last()
    assert sent.path == f"/model/{CLAUDE}/invoke"
    assert sent.body == {
        "max_tokens": 32,
        "messages": HI,
        "metadata": {"user_id": "u-1"},
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"],
    }
    assert upstream.signature_failures == 0
    assert "client-key" not in str(sent.headers)


def test_stream_frames_become_anthropics_events_byte_for_byte(gateway, upstream):
    body = {"model": "bedrock-claude", "max_tokens": 32, "messages": HI, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body) as response:
        assert response.status_code == 200
        received = response.read()
    expected = b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in stream_events("claude-tools")
    )
    assert received == expected
    sent = upstream.last()
    assert sent.path == f"/model/{CLAUDE}/invoke-with-response-stream"
    assert "stream" not in sent.body and "model" not in sent.body


def test_sdk_accumulates_a_bedrock_stream(client):
    with client.messages.stream(model="bedrock-claude", max_tokens=32, messages=HI) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[2].input == {"city": "London"}


def test_an_exception_frame_is_an_anthropic_error_event(client):
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="throttled", max_tokens=32, messages=HI) as stream,
    ):
        stream.get_final_message()
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "throttlingException" in caught.value.body["error"]["message"]
