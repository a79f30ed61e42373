"""The Hugging Face TGI provider against an emulated TGI server: completions through /generate
and /generate_stream, chat through /v1/chat/completions, every error class (spec §7.7)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import free_port, launch
from tests.providers.tgi_upstream import ERRORS, PREFILL, TGIUpstream
from tests.support.client import invoke

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
PROMPT = {"prompt": "Say hello"}


def endpoint(name: str, url: str, kind: str = "completions", model: str | None = None) -> str:
    model_line = f"\n      name: {model}" if model else ""
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: huggingface-text-generation-inference{model_line}
      config:
        hf_server_url: {url}
"""


@pytest.fixture(scope="module")
def upstream():
    server = TGIUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    url = upstream.url
    endpoints = [
        endpoint("completions", f"{url}/ok/", model="llama"),
        endpoint("chat", f"{url}/ok", "chat"),
        endpoint("chat-named", f"{url}/ok", "chat", model="meta-llama/Llama-3.1-8B-Instruct"),
        *(endpoint(f"err-{status}", f"{url}/err-{status}") for status in ERRORS),
        endpoint("chat-err-429", f"{url}/err-429", "chat"),
        endpoint("malformed", f"{url}/malformed"),
        endpoint("slow", f"{url}/slow-3000"),
        endpoint("stream-error", f"{url}/stream-error"),
        endpoint("chat-stream-error", f"{url}/stream-error", "chat"),
        endpoint("refused", f"http://127.0.0.1:{free_port()}"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("tgi"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def stream(http, name, body):
    """The JSON events of a stream, and whether it ended with `data: [DONE]`."""
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        raw = [event for event in response.read().decode().split("\n\n") if event]
    done = raw[-1] == "data: [DONE]"
    return [json.loads(event.removeprefix("data: ")) for event in raw if event != "data: [DONE]"], done


# -- completions ---------------------------------------------------------------------------
def test_generate_request_and_scaling(http, upstream):
    body = {**PROMPT, "temperature": 0.5, "max_tokens": 20, "stop": ["\n"], "top_p": 0.9, "n": 1, "seed": 3}
    assert invoke(http, "completions", body).status_code == 200
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/ok/generate" and sent.query == ""
    assert sent.headers["Content-Type"] == "application/json" and "Authorization" not in sent.headers
    assert sent.body == {
        "inputs": "Say hello",
        "parameters": {
            "temperature": 25.0,  # ×50
            "max_new_tokens": 20,
            "stop": ["\n"],
            "top_p": 0.9,
            "seed": 3,
            "details": True,
            "decoder_input_details": True,
        },
    }


def test_zero_temperature_gets_the_floor(http, upstream):
    invoke(http, "completions", {**PROMPT, "temperature": 0})
    assert upstream.last().body["parameters"]["temperature"] == 0.001
    invoke(http, "completions", {**PROMPT, "max_completion_tokens": 9})
    parameters = upstream.last().body["parameters"]
    assert parameters == {"max_new_tokens": 9, "details": True, "decoder_input_details": True}


def test_completions_response(http):
    answer = invoke(http, "completions", PROMPT).json()
    assert answer["id"] is None and answer["object"] == "text_completion" and answer["model"] == "llama"
    assert answer["choices"] == [{"index": 0, "text": "Hello from TGI!", "finish_reason": "stop"}]
    assert answer["usage"] == {"prompt_tokens": len(PREFILL), "completion_tokens": 4, "total_tokens": 7}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {**PROMPT, "n": 2},
            "'n' must be '1' for the Text Generation Inference provider.Received value: '2'.",
        ),
        ({**PROMPT, "max_new_tokens": 5}, "Invalid parameter max_new_tokens. Use max_tokens instead."),
        ({**PROMPT, "model": "x"}, None),
    ],
)
def test_mlflow_request_checks(http, upstream, body, detail):
    before = len(upstream.requests)
    response = invoke(http, "completions", body)
    assert response.status_code == 422
    if detail is not None:
        assert response.json() == {"detail": detail}
    assert len(upstream.requests) == before


def test_stream_completions_through_generate_stream(http, upstream):
    events, done = stream(http, "completions", {**PROMPT, "temperature": 1})
    assert done
    sent = upstream.last()
    assert sent.path == "/ok/generate_stream"
    assert sent.body == {"inputs": "Say hello", "parameters": {"temperature": 50.0, "details": True}}
    assert all(e["object"] == "text_completion_chunk" and e["model"] == "llama" for e in events)
    assert "".join(e["choices"][0]["text"] for e in events) == "Hello from TGI!"  # </s> is special
    assert [e["choices"][0]["finish_reason"] for e in events] == [None] * 4 + ["stop"]
    assert events[-1]["usage"] == {"prompt_tokens": None, "completion_tokens": 5, "total_tokens": None}


def test_stream_error_event_mid_stream(http):
    events, done = stream(http, "stream-error", PROMPT)
    assert not done
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == "Hello from"
    assert events[-1]["error"]["code"] == 502
    assert events[-1]["error"]["message"] == (
        "Text Generation Inference failed mid-stream: Request failed during generation: "
        "Server error: CUDA out of memory"
    )


# -- chat -----------------------------------------------------------------------------------
def test_chat_through_the_openai_route(http, upstream):
    body = {**CHAT, "temperature": 0.7, "max_tokens": 30, "n": 1, "tools": [], "top_p": 0.5}
    answer = invoke(http, "chat", body).json()
    sent = upstream.last()
    assert sent.path == "/ok/v1/chat/completions"
    assert sent.body == {
        "model": "tgi",
        **CHAT,
        "temperature": 0.7,
        "max_tokens": 30,
        "tools": [],
        "top_p": 0.5,
    }
    assert answer["provider"] == "huggingface-text-generation-inference"
    assert answer["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert answer["choices"][0]["message"]["content"] == "Hello from TGI!"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    invoke(http, "chat-named", CHAT)
    assert upstream.last().body["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_stream_chat(http, upstream):
    events, done = stream(http, "chat", CHAT)
    assert done and upstream.last().body["stream"] is True
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in events) == "Hello from TGI!"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_chat_error_event(http):
    events, done = stream(http, "chat-stream-error", CHAT)
    assert not done and events[-1]["error"]["code"] == 502
    assert "CUDA out of memory" in events[-1]["error"]["message"]


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", sorted(ERRORS))
def test_upstream_errors_keep_status_and_message(http, status):
    # MLflow answers TGI's string `error` with a plain-text 500 (spec §5.1)
    response = invoke(http, f"err-{status}", PROMPT)
    assert response.status_code == status and response.json() == {"detail": ERRORS[status][1]}


def test_errors_before_a_stream_keep_their_status(http):
    response = invoke(http, "err-422", {**PROMPT, "stream": True})
    assert response.status_code == 422 and response.json() == {"detail": ERRORS[422][1]}
    response = invoke(http, "chat-err-429", {**CHAT, "stream": True})
    assert response.status_code == 429 and response.json() == {"detail": "Model is overloaded"}


def test_malformed_upstream_body_is_502(http):
    response = invoke(http, "malformed", PROMPT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", PROMPT)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert "endpoint 'slow'" in detail and "huggingface-text-generation-inference" in detail


def test_refused_connection_is_502(http):
    assert invoke(http, "refused", PROMPT).status_code == 502


def test_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)
    reply = client.completions.create(model="completions", prompt="Say hello")
    assert reply.choices[0].text == "Hello from TGI!" and reply.usage.total_tokens == 7
    chunks = list(client.completions.create(model="completions", prompt="Say hello", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "Hello from TGI!"
    chat = client.chat.completions.create(model="chat", messages=CHAT["messages"])
    assert chat.choices[0].message.content == "Hello from TGI!"


def test_embeddings_load_but_answer_mlflows_501(tmp_path):
    from gateway.config import parse_config

    loaded = parse_config("endpoints:" + endpoint("e", "http://x", "embeddings"))
    assert loaded.endpoints[0].unavailable == (
        "The embeddings route is not implemented for Hugging Face Text Generation Inference models."
    )
