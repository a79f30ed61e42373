"""`gateway mock-upstream` as a subprocess: its OpenAI and Anthropic wire formats (checked with
the openai SDK and httpx), keep-alive and pipelining, latency, pacing and error injection."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

READY_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/v1")


class MockUpstream:
    def __init__(self, *flags: str) -> None:
        command = [sys.executable, "-m", "gateway", "mock-upstream", "--port", "0", *flags]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = READY_RE.search(line)
        if found is None:
            self.stop()
            raise RuntimeError(f"mock upstream did not start: {line}")
        self.port = int(found.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_mock(*flags: str) -> Iterator[MockUpstream]:
    mock = MockUpstream(*flags)
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    yield from start_mock("--chunks", "6", "--embed-dim", "16")


@pytest.fixture(scope="module")
def client(mock: MockUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock.base}/v1", api_key="sk-anything", max_retries=0)


def test_chat(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.startswith("Sure. Here is a short answer")
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        25,
        42,
        67,
    )


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) == 7  # role chunk, 4 words, finish chunk, usage chunk
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Sure. Here is a "
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_chat_stream_without_usage_ends_with_done(mock: MockUpstream) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    reply = httpx.post(f"{mock.base}/v1/chat/completions", json=body)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [line for line in reply.text.split("\n\n") if line]
    assert len(events) == 7 and events[-1] == "data: [DONE]"
    assert all('"usage"' not in event for event in events)


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith("Sure.")
    stream = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True))
    assert len(stream) == 6
    assert "".join(c.choices[0].text for c in stream) == "Sure. Here is a "
    assert stream[-1].choices[0].finish_reason == "stop"


def test_embeddings_base64_and_float(client: openai.OpenAI, mock: MockUpstream) -> None:
    # the SDK asks for base64 by default and decodes it
    reply = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
    assert [item.index for item in reply.data] == [0, 1, 2]
    assert len(reply.data[0].embedding) == 16
    floats = httpx.post(f"{mock.base}/v1/embeddings", json={"model": "e", "input": "one"}).json()
    assert len(floats["data"]) == 1
    assert floats["data"][0]["embedding"] == pytest.approx(reply.data[0].embedding, abs=1e-6)
    assert floats["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    tokens = httpx.post(f"{mock.base}/v1/embeddings", json={"model": "e", "input": [1, 2, 3]}).json()
    assert len(tokens["data"]) == 1  # a list of token ids is one input


def test_models_and_health(client: openai.OpenAI, mock: MockUpstream) -> None:
    assert "gpt-4o-mini-2024-07-18" in [model.id for model in client.models.list()]
    health = httpx.get(f"{mock.base}/health")
    assert health.status_code == 200 and health.text == "ok"
    missing = httpx.post(f"{mock.base}/v1/nothing", json={})
    assert missing.status_code == 404 and "error" in missing.json()


def test_anthropic_messages(mock: MockUpstream) -> None:
    headers = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-3-5-sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{mock.base}/v1/messages", json=body, headers=headers).json()
    assert reply["type"] == "message" and reply["role"] == "assistant"
    assert reply["content"][0]["type"] == "text" and reply["content"][0]["text"].startswith("Sure.")
    assert reply["stop_reason"] == "end_turn"
    assert reply["usage"] == {"input_tokens": 25, "output_tokens": 42}


def test_anthropic_stream(mock: MockUpstream) -> None:
    body = {
        "model": "claude",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    reply = httpx.post(f"{mock.base}/v1/messages", json=body)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in reply.text.strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        name, data = name_line.removeprefix("event: "), orjson.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append(data)
    names = [event["type"] for event in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 6,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "Sure. Here is a short answer "
    assert events[-2]["usage"] == {"output_tokens": 6}


def _read_responses(sock: socket.socket, count: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 5
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"}"):
        assert time.monotonic() < deadline, data
        data += sock.recv(65536)
    return data


def test_keep_alive_pipelining_and_chunked_requests(mock: MockUpstream) -> None:
    chat = b'{"model":"m","messages":[]}'
    first = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(chat),
        chat,
    )
    chunked = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b'5\r\n{"inp\r\n12\r\nut": ["a", "b"]}  \r\n0\r\n\r\n'
    with socket.create_connection(("127.0.0.1", mock.port)) as sock:
        sock.sendall(first + chunked)  # two requests in one write, the second chunked
        data = _read_responses(sock, 2)
        assert data.startswith(b"HTTP/1.1 200 OK")
        second = data[data.index(b"HTTP/1.1 ", 10) :]
        body = orjson.loads(second.split(b"\r\n\r\n", 1)[1])
        assert body["object"] == "list" and len(body["data"]) == 2
        sock.sendall(first)  # the connection stays open
        assert b'"chat.completion"' in _read_responses(sock, 1)


@pytest.fixture(scope="module")
def slow_mock() -> Iterator[MockUpstream]:
    yield from start_mock("--latency-ms", "150", "--chunks", "5", "--chunk-delay-ms", "30")


def test_latency_and_chunk_delay(slow_mock: MockUpstream) -> None:
    started = time.perf_counter()
    assert httpx.post(f"{slow_mock.base}/v1/chat/completions", json={"model": "m"}).status_code == 200
    assert time.perf_counter() - started >= 0.15
    arrivals = []
    started = time.perf_counter()
    body = {"model": "m", "stream": True}
    with httpx.stream("POST", f"{slow_mock.base}/v1/chat/completions", json=body) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.perf_counter() - started)
    assert len(arrivals) == 6  # 5 chunks + [DONE]
    assert arrivals[0] >= 0.15 + 0.03  # latency, then the first chunk's delay
    gaps = [b - a for a, b in zip(arrivals[:4], arrivals[1:5], strict=True)]
    assert min(gaps) >= 0.02  # paced, not sent at once


def test_model_name_paces_one_request(mock: MockUpstream) -> None:
    started = time.perf_counter()
    body = {"model": "mock-delay-40ms", "stream": True}
    reply = httpx.post(f"{mock.base}/v1/chat/completions", json=body)
    assert reply.text.count("data:") == 7
    assert time.perf_counter() - started >= 6 * 0.04


@pytest.fixture(scope="module")
def failing_mock() -> Iterator[MockUpstream]:
    yield from start_mock("--error-rate", "1", "--error-status", "429")


def test_error_injection_openai_shape(failing_mock: MockUpstream) -> None:
    client = openai.OpenAI(base_url=f"{failing_mock.base}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429
    assert caught.value.body["message"] == "Injected error 429 from the mock upstream."
    assert caught.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="e", input="x")
    assert httpx.get(f"{failing_mock.base}/health").status_code == 200  # only API calls fail


def test_error_injection_anthropic_shape(failing_mock: MockUpstream) -> None:
    reply = httpx.post(
        f"{failing_mock.base}/v1/messages", json={"model": "c", "max_tokens": 5, "messages": []}
    )
    assert reply.status_code == 429
    assert reply.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Injected error 429 from the mock upstream."},
    }


def test_bad_flags_are_refused() -> None:
    command = [sys.executable, "-m", "gateway", "mock-upstream", "--port", "0", "--error-rate", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "--error-rate" in result.stderr
    command = [sys.executable, "-m", "gateway", "mock-upstream", "--latency-ms-range", "9-3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "0 <= A <= B" in result.stderr
