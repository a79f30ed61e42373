"""The `vertex_ai` provider against a Vertex AI emulation and a local OAuth2 token endpoint:
service-account auth (a key made here, a JWT checked there, the token reused), URLs, Gemini,
Claude and Model-as-a-Service models, `:predict` embeddings, streams and errors."""

from __future__ import annotations

import json

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers.vertex_ai import model_family, vertex_host
from tests.conftest import launch
from tests.providers.gemini_upstream import GoogleUpstream
from tests.support.client import invoke, upstream_detail
from tests.support.contract import check_stream_contract

PROJECT = "demo-project"
HI = {"messages": [{"role": "user", "content": "hi"}]}
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def service_account(upstream: GoogleUpstream, name: str, registered: bool = True) -> str:
    """A service-account JSON whose key is made here and whose token_uri is the emulator."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"{name}@{PROJECT}.iam.gserviceaccount.com"
    if registered:
        upstream.public_keys[email] = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": f"key-{name}",
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": f"{upstream.url}/token",
    }
    return json.dumps(info)


def endpoint(name: str, kind: str, model: str, upstream: GoogleUpstream, extra: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: vertex_ai
      name: {model}
      config:
        vertex_project: {PROJECT}
        vertex_api_base: {upstream.url}
{extra}"""


def inline(credentials: str) -> str:
    return f"        vertex_credentials: '{credentials}'\n"


@pytest.fixture(scope="module")
def upstream():
    server = GoogleUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    directory = tmp_path_factory.mktemp("vertex")
    main = inline(service_account(upstream, "gateway"))
    key_file = directory / "reuse.json"
    key_file.write_text(service_account(upstream, "reuse"))
    adc_file = directory / "adc.json"
    adc_file.write_text(service_account(upstream, "adc"))
    upstream.token_lifetimes[f"short@{PROJECT}.iam.gserviceaccount.com"] = 60  # inside google-auth's margin
    regional = main + "        vertex_location: europe-west4\n"
    betas = main + "        vertex_anthropic_betas: context-1m-2025-08-07, other-beta\n"
    endpoints = [
        endpoint("chat", "chat", "gemini-2.5-flash", upstream, regional),
        endpoint("global", "chat", "gemini-2.5-flash", upstream, main),
        endpoint("completions", "completions", "gemini-2.5-flash", upstream, regional),
        endpoint("embeddings", "embeddings", "text-embedding-005", upstream, main),
        endpoint("gemini-embeddings", "embeddings", "gemini-embedding-001", upstream, main),
        endpoint("claude", "chat", "claude-sonnet-4@20250514", upstream, betas),
        endpoint("claude-completions", "completions", "claude-sonnet-4@20250514", upstream, main),
        endpoint("maas", "chat", "meta/llama-3.3-70b-instruct-maas", upstream, main),
        endpoint("reuse", "chat", "gemini-2.5-flash", upstream, f"        vertex_credentials: {key_file}\n"),
        endpoint("short", "chat", "gemini-2.5-flash", upstream, inline(service_account(upstream, "short"))),
        endpoint("adc", "chat", "gemini-2.5-flash", upstream, ""),
        endpoint(
            "revoked", "chat", "gemini-2.5-flash", upstream, inline(service_account(upstream, "x", False))
        ),
        endpoint("denied", "chat", "err-403", upstream, main),
        endpoint("stream-error", "chat", "stream-error", upstream, main),
        endpoint("overloaded", "chat", "err-503", upstream, main),
        endpoint("malformed", "chat", "malformed", upstream, main),
        endpoint("slow", "chat", "slow-3000", upstream, main),
    ]
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(adc_file), "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "2"}
    process = launch(directory, "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def grants(upstream, name):
    return [claims for claims in upstream.token_grants if claims["iss"].startswith(f"{name}@")]


def stream_events(http, name, body):
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        raw = b"".join(response.iter_bytes())
    return response.status_code, [block.removeprefix(b"data: ") for block in raw.split(b"\n\n") if block]


# -- auth -------------------------------------------------------------------------------------
def test_service_account_token_reaches_vertex_and_is_reused(http, upstream):
    before = len(grants(upstream, "reuse"))
    for _ in range(3):
        assert invoke(http, "reuse", HI).status_code == 200
        assert upstream.last().headers["Authorization"].startswith("Bearer ya29.test-token-")
    (claims,) = grants(upstream, "reuse")[before:]  # one token for three calls
    assert claims["scope"] == SCOPE and claims["aud"] == "https://oauth2.googleapis.com/token"
    tokens = {
        request.headers.get("Authorization") for request in upstream.requests if "/models/" in request.path
    }
    assert f"Bearer ya29.test-token-{upstream.token_grants.index(claims) + 1}" in tokens


def test_token_close_to_expiry_is_refreshed(http, upstream):
    before = len(grants(upstream, "short"))
    sent = []
    for _ in range(2):
        assert invoke(http, "short", HI).status_code == 200
        sent.append(upstream.last().headers["Authorization"])
    assert len(grants(upstream, "short")) - before == 2
    assert sent[0] != sent[1]


def test_application_default_credentials(http, upstream):
    assert invoke(http, "adc", HI).status_code == 200  # GOOGLE_APPLICATION_CREDENTIALS
    assert len(grants(upstream, "adc")) == 1
    assert upstream.last().headers["Authorization"].startswith("Bearer ya29.")


def test_refused_token_is_502_naming_the_endpoint(http, upstream):
    requests_before = len(upstream.requests)
    response = invoke(http, "revoked", HI)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert detail.startswith("endpoint 'revoked' (provider vertex_ai) could not get a Google access token")
    assert "invalid_grant" in detail and "PRIVATE KEY" not in detail
    assert [request.path for request in upstream.requests[requests_before:]] == ["/token"]  # no model call


# -- Gemini on Vertex -------------------------------------------------------------------------
def test_gemini_chat(http, upstream):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"t": 1}'},
    ]
    response = invoke(http, "chat", {"messages": messages, "temperature": 1.5, "max_tokens": 9})
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert sent.headers["Authorization"].startswith("Bearer ya29.")
    assert sent.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {}}}]},  # no ids on Vertex
            {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"t": 1}}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 1.5, "maxOutputTokens": 9, "candidateCount": 1},
    }
    data = response.json()
    assert data["provider"] == "vertex_ai" and data["model"] == "gemini-2.5-flash"
    assert data["choices"][0]["message"]["content"] == "Hello from Gemini!"
    assert data["usage"]["prompt_tokens"] == 5 and data["usage"]["completion_tokens"] == 7


def test_global_location_by_default(http, upstream):
    assert invoke(http, "global", HI).status_code == 200
    assert upstream.last().path.startswith(
        f"/v1/projects/{PROJECT}/locations/global/publishers/google/models/"
    )


def test_gemini_stream(http, upstream):
    status, events = stream_events(http, "chat", HI)
    assert status == 200 and events[-1] == b"[DONE]"
    sent = upstream.last()
    assert sent.path.endswith("/models/gemini-2.5-flash:streamGenerateContent") and sent.query == "alt=sse"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert check_stream_contract(chunks)["total_tokens"] == 12
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks) == "Hello from Gemini!"
    assert {chunk["provider"] for chunk in chunks} == {"vertex_ai"}


def test_gemini_completions_stream(http, upstream):
    status, events = stream_events(http, "completions", {"prompt": "hello"})
    assert status == 200 and events[-1] == b"[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert (
        "".join(chunk["choices"][0]["text"] for chunk in chunks if chunk["choices"]) == "Hello from Gemini!"
    )
    assert upstream.last().body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]


def test_error_mid_stream(http):
    status, events = stream_events(http, "stream-error", HI)
    assert status == 200
    assert orjson.loads(events[-1])["error"]["message"] == (
        "Gemini returned INTERNAL while streaming: Internal error encountered."
    )


@pytest.mark.parametrize(
    ("name", "status", "detail"),
    [
        ("denied", 403, "Permission denied on resource project demo."),
        ("overloaded", 503, "The model is overloaded. Please try again later."),
    ],
)
def test_google_errors_keep_status_and_message(http, name, status, detail):
    response = invoke(http, name, HI)
    assert response.status_code == status
    assert response.json() == {"detail": upstream_detail(name, "vertex_ai", status, detail)}


def test_malformed_answer_is_502_and_timeout_504(http):
    response = invoke(http, "malformed", HI)
    assert response.status_code == 502
    assert (
        response.json()["detail"]
        == "Malformed JSON in the response from endpoint 'malformed' (provider vertex_ai)."
    )
    response = invoke(http, "slow", HI)
    assert response.status_code == 504
    assert "endpoint 'slow' (provider vertex_ai)" in response.json()["detail"]


# -- embeddings -------------------------------------------------------------------------------
def test_embeddings_use_predict(http, upstream):
    body = {"input": ["one two", "three"], "dimensions": 3, "task_type": "RETRIEVAL_QUERY"}
    response = invoke(http, "embeddings", body)
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    )
    assert sent.body == {
        "instances": [
            {"content": "one two", "task_type": "RETRIEVAL_QUERY"},
            {"content": "three", "task_type": "RETRIEVAL_QUERY"},
        ],
        "parameters": {"outputDimensionality": 3},
    }
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [7.0, 0.5, -0.25], "index": 0},
            {"object": "embedding", "embedding": [5.0, 0.5, -0.25], "index": 1},
        ],
        "model": "text-embedding-005",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def test_gemini_embedding_sends_one_instance_per_request(http, upstream):
    before = len(upstream.requests)
    response = invoke(http, "gemini-embeddings", {"input": ["a", "bb", "ccc"]})
    assert response.status_code == 200, response.text
    sent = [request for request in upstream.requests[before:] if request.path.endswith(":predict")]
    assert sorted(request.body["instances"][0]["content"] for request in sent) == ["a", "bb", "ccc"]
    assert all(len(request.body["instances"]) == 1 for request in sent)
    data = response.json()
    assert [item["embedding"][0] for item in data["data"]] == [1.0, 2.0, 3.0]  # in input order
    assert [item["index"] for item in data["data"]] == [0, 1, 2]
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


# -- Claude and Model-as-a-Service partners ---------------------------------------------------
def test_claude_chat(http, upstream):
    response = invoke(http, "claude", {**HI, "temperature": 1.0})
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    )
    assert sent.headers["Authorization"].startswith("Bearer ya29.")
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07,other-beta"
    assert "anthropic-version" not in sent.headers
    assert sent.body == {
        "anthropic_version": "vertex-2023-10-16",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8192,
        "temperature": 0.5,  # Anthropic's range is half of the gateway's
    }
    data = response.json()
    assert data["provider"] == "vertex_ai"
    assert data["choices"][0]["message"]["content"] == "Hello from Claude!"
    assert data["usage"]["total_tokens"] == 12


def test_claude_stream(http, upstream):
    status, events = stream_events(http, "claude", HI)
    assert status == 200 and events[-1] == b"[DONE]"
    sent = upstream.last()
    assert sent.path.endswith("/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict")
    assert sent.body["stream"] is True and "model" not in sent.body
    chunks = [orjson.loads(event) for event in events[:-1]]
    text = "".join(chunk["choices"][0]["delta"]["content"] or "" for chunk in chunks if chunk["choices"])
    assert text == "Hello from Claude!"


def test_claude_completions(http, upstream):
    response = invoke(http, "claude-completions", {"prompt": "hello"})
    assert response.status_code == 200, response.text
    assert upstream.last().body["messages"] == [{"role": "user", "content": "hello"}]
    assert response.json()["choices"][0]["text"] == "Hello from Claude!"


def test_model_as_a_service_chat(http, upstream):
    response = invoke(http, "maas", HI)
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == f"/v1/projects/{PROJECT}/locations/us-central1/endpoints/openapi/chat/completions"
    assert sent.body == {
        "model": "meta/llama-3.3-70b-instruct-maas",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert response.json()["choices"][0]["message"]["content"] == "Hi there"
    status, events = stream_events(http, "maas", HI)
    assert status == 200 and events[-1] == b"[DONE]"
    assert upstream.last().body["stream_options"] == {"include_usage": True}
    text = "".join(orjson.loads(event)["choices"][0]["delta"]["content"] for event in events[:-1])
    assert text == "Hi there"


# -- configuration ----------------------------------------------------------------------------
def config_text(model: str, kind: str = "chat", extra: str = "") -> str:
    return f"""endpoints:
  - name: e
    endpoint_type: llm/v1/{kind}
    model:
      provider: vertex-ai
      name: {model}
      config:
        vertex_project: {PROJECT}
{extra}"""


def test_location_is_validated():
    with pytest.raises(ConfigError) as info:
        parse_config(config_text("gemini-2.5-flash", extra="        vertex_location: US_Central1\n"))
    assert str(info.value) == (
        "endpoint 'e': model.config: vertex_location must contain only lowercase letters, digits, and hyphens; "
        "got 'US_Central1'"
    )


def test_families_load_what_they_cannot_serve_with_the_reason():
    maas = parse_config(config_text("mistral-large-2411", "completions")).endpoints[0]
    assert maas.unavailable == (
        "The completions endpoint is not supported for mistral-large-2411 on Vertex AI. "
        "Use the chat endpoint instead."
    )
    claude = parse_config(config_text("claude-opus-4", "embeddings")).endpoints[0]
    assert claude.unavailable is not None
    assert claude.unavailable.startswith("The embeddings endpoint is not supported for claude-opus-4")


def test_bad_credentials_stop_the_load():
    with pytest.raises(ConfigError, match="vertex_credentials is not valid JSON"):
        parse_config(config_text("gemini-2.5-flash", extra="        vertex_credentials: '{not json'\n"))
    with pytest.raises(ConfigError, match="cannot read the file"):
        parse_config(
            config_text("gemini-2.5-flash", extra="        vertex_credentials: /nonexistent/sa.json\n")
        )
    with pytest.raises(ConfigError, match="of type 'external_account' is not supported"):
        parse_config(
            config_text(
                "gemini-2.5-flash", extra="""        vertex_credentials: '{"type": "external_account"}'\n"""
            )
        )
    with pytest.raises(ConfigError, match=r"model.config.vertex_project: Field required"):
        text = config_text("gemini-2.5-flash", extra="        vertex_location: us-east5\n")
        parse_config(text.replace(f"        vertex_project: {PROJECT}\n", ""))


def test_hosts_and_families():
    assert vertex_host("global") == "https://aiplatform.googleapis.com"
    assert vertex_host("us") == "https://aiplatform.us.rep.googleapis.com"
    assert vertex_host("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"
    assert model_family("Claude-3-5-Haiku@20241022") == "claude"
    assert model_family("meta/llama-4-maverick-17b-128e-instruct-maas") == "maas"
    assert model_family("codestral-2501") == "maas" and model_family("jamba-1.5-large") == "maas"
    assert model_family("gemini-2.5-pro") == "gemini" and model_family("text-embedding-005") == "gemini"
