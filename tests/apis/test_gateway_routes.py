"""MLflow's new-gateway route family (`/gateway/...`) and the raw proxy, with the real openai and
google-genai SDKs and httpx against a real gateway and emulated upstreams; and gateway keys as
Google's SDKs present them (`x-goog-api-key`, `?key=`)."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import launch
from tests.support.api_gateway import GEMINI_KEY, OPENAI_KEY, api_config

CLIENT_KEY = "sk-client-key-that-must-not-travel"
ADMIN = "admin-secret-for-the-route-tests"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def openai_family(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/gateway/openai/v1", api_key=CLIENT_KEY, max_retries=0)


def test_mlflow_chat_completions(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/gateway/mlflow/v1", api_key="x", max_retries=0)
    for model in ("gpt", "claude", "gem"):
        answer = client.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
        assert answer.choices[0].message.content and answer.id  # OpenAI's shapes: a string id


def test_openai_chat_embeddings_and_responses(openai_family, upstreams):
    chat = openai_family.chat.completions.create(model="gpt", messages=HI)
    assert chat.choices[0].message.content == "Hello from the mock upstream!"
    assert upstreams[0].requests[-1].headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    stream = openai_family.chat.completions.create(model="claude", messages=HI, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices).startswith(
        "Hello"
    )
    embeddings = openai_family.embeddings.create(model="embed", input=["a", "b"])
    assert len(embeddings.data) == 2
    response = openai_family.responses.create(model="gpt", input="hi")
    assert response.output_text == "Hello from Responses!"
    translated = openai_family.responses.create(model="gem", input="hi")
    assert translated.output_text == "Hello from Gemini!"


def test_openai_family_errors_are_openai_errors(openai_family):
    with pytest.raises(openai.NotFoundError):
        openai_family.chat.completions.create(model="nope", messages=HI)
    with pytest.raises(openai.RateLimitError):
        openai_family.chat.completions.create(model="gpt-err", messages=HI)


def test_gemini_family(gateway, upstreams):
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    whole = httpx.post(
        f"{gateway.url}/gateway/gemini/v1beta/models/gem:generateContent", json=body, timeout=10
    )
    assert whole.status_code == 200 and whole.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert upstreams[2].requests[-1].body == body
    url = f"{gateway.url}/gateway/gemini/v1beta/models/gpt:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=body, timeout=10) as answer:
        events = [
            orjson.loads(line[6:])
            for line in b"".join(answer.iter_bytes()).split(b"\r\n")
            if line.startswith(b"data: ")
        ]
    texts = [part.get("text", "") for event in events for part in event["candidates"][0]["content"]["parts"]]
    assert "".join(texts) == "Hello from the mock upstream!"
    missing = httpx.post(
        f"{gateway.url}/gateway/gemini/v1beta/models/nope:generateContent", json=body, timeout=10
    )
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


# -- the raw proxy ------------------------------------------------------------------------
def test_proxy_forwards_the_body_untouched_with_the_gateways_credentials(gateway, upstreams):
    body = {"model": "gpt-4o-mini", "messages": HI, "temperature": 0.2}
    answer = httpx.post(
        f"{gateway.url}/gateway/proxy/gpt/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "OpenAI-Beta": "assistants=v2"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "Hello from the mock upstream!"
    sent = upstreams[0].requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == body  # `model` not replaced, as in MLflow's raw proxy
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert {name.lower(): value for name, value in sent.headers.items()}["openai-beta"] == "assistants=v2"
    assert all(CLIENT_KEY not in value for value in sent.headers.values())


def test_proxy_relays_a_stream_and_other_methods(gateway, upstreams):
    body = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
    with httpx.stream(
        "POST", f"{gateway.url}/gateway/proxy/gpt/v1/chat/completions", json=body, timeout=10
    ) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(answer.iter_bytes())
    assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b"chat.completion.chunk") == 7
    created = httpx.post(
        f"{gateway.url}/v1/responses", json={"model": "gpt", "input": "hi"}, timeout=10
    ).json()
    fetched = httpx.get(f"{gateway.url}/gateway/proxy/gpt/v1/responses/{created['id']}", timeout=10)
    assert fetched.status_code == 200 and fetched.json()["id"] == created["id"]
    assert (upstreams[0].requests[-1].method, upstreams[0].requests[-1].body) == ("GET", None)


def test_proxy_to_google_keeps_the_query(gateway, upstreams):
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = f"{gateway.url}/gateway/proxy/gem/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=body, timeout=10) as answer:
        raw = b"".join(answer.iter_bytes())
    assert raw.count(b"data: ") == 4
    sent = upstreams[2].requests[-1]
    assert (sent.query, sent.headers["x-goog-api-key"]) == ("alt=sse", GEMINI_KEY)


def test_proxy_refusals(gateway):
    assert httpx.post(f"{gateway.url}/gateway/proxy/nope/v1/chat/completions", json={}).status_code == 404
    escaped = httpx.post(f"{gateway.url}/gateway/proxy/gpt/v1/%2E%2E/admin", json={})
    assert escaped.status_code in (400, 404)
    upstream_error = httpx.post(f"{gateway.url}/gateway/proxy/gpt/v1/nothing-here", json={})
    assert upstream_error.status_code == 404  # the upstream's own answer


# -- gateway keys as Google's SDKs send them ---------------------------------------------------
@pytest.fixture(scope="module")
def keyed_gateway(upstreams, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gateway-routes-keys")
    extra = (
        f"database_url: sqlite:///{directory}/keys.db\nauth:\n  admin_key: {ADMIN}\n  require_keys: true\n"
    )
    process = launch(directory, api_config(*upstreams, extra=extra))
    yield process
    process.stop()


def test_gemini_sdk_presents_a_gateway_key(keyed_gateway, upstreams):
    created = httpx.post(
        f"{keyed_gateway.url}/admin/v1/keys",
        json={"name": "gemini-cli"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    options = types.HttpOptions(base_url=keyed_gateway.url, api_version="v1beta")
    client = genai.Client(api_key=key, http_options=options)
    assert client.models.generate_content(model="gem", contents="hi").text == "Hello from Gemini!"
    assert upstreams[2].requests[-1].headers["x-goog-api-key"] == GEMINI_KEY  # never the gw- key
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    by_query = httpx.post(
        f"{keyed_gateway.url}/v1beta/models/gpt:generateContent?key={key}", json=body, timeout=10
    )
    assert by_query.status_code == 200
    stranger = genai.Client(api_key="gw-not-a-key", http_options=options)
    with pytest.raises(errors.ClientError) as refused:
        stranger.models.generate_content(model="gem", contents="hi")
    assert refused.value.code == 401 and refused.value.status == "UNAUTHENTICATED"


MALFORMED = [
    {"model": "claude", "input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
    {"model": "claude", "input": [{"type": "function_call", "name": None, "arguments": ["x"]}]},
    {"model": "claude", "input": [{"role": "user", "content": [None, 3]}]},
    {"model": "claude", "input": {"role": "user"}},
    {"model": "claude", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": 3}]},
    {"model": "claude", "input": "hi", "max_output_tokens": "many"},
    {"model": "claude", "input": "hi", "previous_response_id": 12},
    {"model": 7, "input": "hi"},
    {"model": "gpt", "input": "hi", "stream": "yes"},
]
GEMINI_MALFORMED = [
    {"contents": [{"role": "user", "parts": [{"inlineData": 3}]}]},
    {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f"}}, {"executableCode": {}}]}]},
    {"contents": "hi"},
    {"contents": [{"parts": None}]},
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"temperature": "hot"}},
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [3]}]},
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_responses_bodies_are_client_errors(gateway, body):
    answer = httpx.post(f"{gateway.url}/v1/responses", json=body, timeout=10)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]["message"]


@pytest.mark.parametrize("body", GEMINI_MALFORMED)
def test_malformed_gemini_bodies_are_client_errors(gateway, body):
    answer = httpx.post(f"{gateway.url}/v1beta/models/gpt:generateContent", json=body, timeout=10)
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()["error"]) == {"code", "message", "status"}


def test_proxy_masks_a_key_the_upstream_echoes(gateway):
    body = {"model": "err-401-echo", "messages": HI}
    answer = httpx.post(f"{gateway.url}/gateway/proxy/gpt/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 401
    assert "Incorrect API key provided" in answer.text
    assert OPENAI_KEY not in answer.text
