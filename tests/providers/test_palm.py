"""The PaLM provider against an emulated Gemini API (what replaced PaLM): retired PaLM model names
served by current Gemini models, MLflow's PaLM rules, the exact upstream request and the
client-visible answer for chat, completions, embeddings, streams and every error class
(spec §7.8, issue 3)."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

from tests.conftest import free_port, launch
from tests.providers.palm_upstream import ERRORS, KEY, PaLMUpstream
from tests.support.client import invoke, upstream_detail

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
PROMPT = {"prompt": "Say hello"}
USAGE = {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}


def endpoint(name: str, model: str, base: str, kind: str = "chat", key: str = KEY) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: palm
      name: {model}
      config:
        palm_api_key: {key}
        palm_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = PaLMUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("chat", "chat-bison-001", base),
        endpoint("completions", "models/text-bison-001", base, "completions"),
        endpoint("embeddings", "embedding-gecko-001", base, "embeddings"),
        endpoint("gemini-named", "models/gemini-2.5-flash", f"{base}/"),
        *(endpoint(f"err-{status}", f"err-{status}", base) for status in ERRORS),
        endpoint("bad-key", "chat-bison-001", base, key="wrong"),
        endpoint("malformed", "malformed", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-error", "stream-error", base),
        endpoint("refused", "chat-bison-001", f"http://127.0.0.1:{free_port()}/v1beta"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("palm"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def stream(http, name, body):
    """The JSON events of a stream, and whether it ended with `data: [DONE]`."""
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        raw = [event for event in response.read().decode().split("\n\n") if event]
    done = raw[-1] == "data: [DONE]"
    return [json.loads(event.removeprefix("data: ")) for event in raw if event != "data: [DONE]"], done


# -- requests -------------------------------------------------------------------------------
def test_chat_request_goes_to_gemini(http, upstream):
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Weather?"},
        ],
        "temperature": 0.6,
        "max_tokens": 40,
        "stop": ["END"],
        "n": 1,
        "top_p": 0.9,
        "unknown_extra": 1,
    }
    assert invoke(http, "chat", body).status_code == 200
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.query == ""  # the key travels in a header, never in the URL
    assert sent.headers["x-goog-api-key"] == KEY and "Authorization" not in sent.headers
    assert sent.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "Weather?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.3,  # ×0.5, as MLflow's PaLM
            "maxOutputTokens": 40,  # MLflow's PaLM chat refused max_tokens; Gemini takes it
            "stopSequences": ["END"],
            "candidateCount": 1,
            "topP": 0.9,
        },
    }


def test_palm_context_and_examples(http, upstream):
    body = {
        **CHAT,
        "context": "You are a pirate.",
        "examples": [{"input": {"content": "Hello"}, "output": {"content": "Ahoy"}}],
    }
    assert invoke(http, "chat", body).status_code == 200
    sent = upstream.last().body
    assert sent["systemInstruction"] == {"parts": [{"text": "You are a pirate."}]}
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Ahoy"}]},
        {"role": "user", "parts": [{"text": "hi"}]},
    ]


def test_gemini_names_pass_through(http, upstream):
    assert invoke(http, "gemini-named", CHAT).status_code == 200
    assert upstream.last().path == "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.mark.parametrize(("native", "ours"), [("candidateCount", "n"), ("maxOutputTokens", "max_tokens")])
def test_gemini_parameter_names_are_refused(http, upstream, native, ours):
    before = len(upstream.requests)
    response = invoke(http, "completions", {**PROMPT, native: 2})
    assert response.status_code == 422
    assert response.json() == {"detail": f"Invalid parameter {native}. Use {ours} instead."}
    assert len(upstream.requests) == before


# -- answers -----------------------------------------------------------------------------------
def test_chat_response(http):
    answer = invoke(http, "chat", CHAT).json()
    assert answer["object"] == "chat.completion" and answer["provider"] == "palm"
    assert answer["model"] == "gemini-2.5-flash"  # the model that answered
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from Gemini!",
                "tool_calls": None,
                "refusal": None,
            },
            "finish_reason": "stop",
        }
    ]
    assert answer["usage"] == USAGE


def test_completions(http, upstream):
    answer = invoke(http, "completions", {**PROMPT, "temperature": 1}).json()
    sent = upstream.last()
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "generationConfig": {"temperature": 0.5, "candidateCount": 1},  # MLflow's n: 1, always sent
    }
    assert answer["object"] == "text_completion"
    assert answer["choices"] == [{"index": 0, "text": "Hello from Gemini!", "finish_reason": "stop"}]
    assert answer["usage"] == USAGE


def test_embeddings_one_and_many(http, upstream):
    answer = invoke(http, "embeddings", {"input": "a"}).json()
    sent = upstream.last()
    assert sent.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert sent.body == {"content": {"parts": [{"text": "a"}]}}
    assert answer["data"] == [{"object": "embedding", "embedding": [0.5, -0.5, 0.0], "index": 0}]
    assert answer["model"] == "gemini-embedding-001"
    answer = invoke(http, "embeddings", {"input": ["a", "b"], "dimensions": 3}).json()
    sent = upstream.last()
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 3,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 3,
            },
        ]
    }
    assert [d["embedding"] for d in answer["data"]] == [[0.5, -0.5, 0.0], [0.5, -0.5, 1.0]]
    encoded = invoke(http, "embeddings", {"input": "a", "encoding_format": "base64"}).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [0.5, -0.5, 0.0]


# -- streams ----------------------------------------------------------------------------------
def test_stream_chat(http, upstream):
    events, done = stream(http, "chat", CHAT)
    assert done
    sent = upstream.last()
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and sent.query == "alt=sse"
    assert "".join(c["delta"]["content"] or "" for e in events for c in e["choices"]) == "Hello from Gemini!"
    assert all(e["provider"] == "palm" and e["object"] == "chat.completion.chunk" for e in events)
    assert [c["finish_reason"] for e in events for c in e["choices"]][-1] == "stop"
    assert events[-1]["usage"] == USAGE  # the usage rides last, as in OpenAI streams


def test_stream_completions(http):
    events, done = stream(http, "completions", PROMPT)
    assert done
    assert "".join(c["text"] or "" for e in events for c in e["choices"]) == "Hello from Gemini!"
    assert [c["finish_reason"] for e in events for c in e["choices"]][-1] == "stop"


def test_stream_error_event_mid_stream(http):
    events, done = stream(http, "stream-error", CHAT)
    assert not done
    assert "".join(c["delta"]["content"] or "" for e in events[:-1] for c in e["choices"]) == "Hello from"
    assert events[-1]["error"]["code"] == 503
    assert "The model is overloaded" in events[-1]["error"]["message"]


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", sorted(ERRORS))
def test_upstream_errors_keep_status_and_message(http, status):
    response = invoke(http, f"err-{status}", CHAT)
    detail = upstream_detail(f"err-{status}", "palm", status, ERRORS[status][1])
    assert response.status_code == status and response.json() == {"detail": detail}


def test_errors_before_a_stream_keep_their_status(http):
    response = invoke(http, "err-429", {**CHAT, "stream": True})
    assert response.status_code == 429 and response.json() == {"detail": ERRORS[429][1]}


def test_bad_key(http):
    response = invoke(http, "bad-key", CHAT)
    assert response.status_code == 400
    assert response.json() == {"detail": "API key not valid. Please pass a valid API key."}


def test_malformed_upstream_body_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    assert "endpoint 'slow'" in response.json()["detail"] and "palm" in response.json()["detail"]


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", CHAT)
    assert response.status_code == 502 and KEY not in response.text


def test_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)
    assert client.chat.completions.create(model="chat", messages=CHAT["messages"]).choices[
        0
    ].message.content == ("Hello from Gemini!")
    chunks = list(client.completions.create(model="completions", prompt="x", stream=True))
    assert "".join(choice.text or "" for c in chunks for choice in c.choices) == "Hello from Gemini!"
    # base64 by default: the gateway encodes Gemini's floats and the SDK decodes them
    assert client.embeddings.create(model="embeddings", input="a").data[0].embedding == [0.5, -0.5, 0.0]
