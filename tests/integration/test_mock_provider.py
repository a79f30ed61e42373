"""The bundled demo config (mock provider, no keys) served end to end."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import launch

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    process = launch(tmp_path_factory.mktemp("demo"), DEMO.read_text())
    yield process
    process.stop()


def test_chat_echoes_deterministically(gateway):
    body = {"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 5}
    first = httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=body).json()
    second = httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=body).json()
    assert first["choices"][0]["message"]["content"] == "one two three one two"
    assert first["choices"] == second["choices"]
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert first["provider"] == "mock" and first["model"] == "mock-chat"


def test_default_output_length_comes_from_config(gateway):
    body = {"messages": [{"role": "user", "content": "word"}]}
    reply = httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=body).json()
    assert reply["usage"]["completion_tokens"] == 12  # output_tokens in demo.yaml


def test_stream_and_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "a b"}], max_tokens=3, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b a"
    assert chunks[-1].usage.completion_tokens == 3
    completion = client.completions.create(model="completions", prompt="x y", max_tokens=2)
    assert completion.choices[0].text == "x y"


def test_embeddings_are_unit_vectors_and_deterministic(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    first = client.embeddings.create(model="embeddings", input=["hello", "world"])
    again = client.embeddings.create(model="embeddings", input=["hello"], encoding_format="float")
    vector = first.data[0].embedding
    assert len(vector) == 16
    assert abs(sum(v * v for v in vector) - 1) < 1e-3
    assert again.data[0].embedding == pytest.approx(vector, abs=1e-6)
    assert first.data[0].embedding != first.data[1].embedding


def test_completions_stream_shape(gateway):
    body = {"prompt": "p q", "max_tokens": 2, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/endpoints/completions/invocations", json=body) as response:
        events = [e for e in response.read().decode().split("\n\n") if e]
    chunk = json.loads(events[0][len("data: ") :])
    assert chunk["object"] == "text_completion_chunk" and "provider" not in chunk
    assert events[-1] == "data: [DONE]"
