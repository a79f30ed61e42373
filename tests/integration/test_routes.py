"""Every route of spec §3 with MLflow's status codes and bodies."""

from __future__ import annotations

import base64
import json
from collections import Counter

import httpx
import pytest

from tests.conftest import launch
from tests.integration.configs import openai_config

ROUTES = """
routes:
  - name: split
    task_type: llm/v1/chat
    destinations:
      - {name: chat, traffic_percentage: 70}
      - {name: mock-chat, traffic_percentage: 30}
"""
MOCK = """
  - name: mock-chat
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      config: {}
"""


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    process = launch(tmp_path_factory.mktemp("routes"), openai_config(upstream.base, MOCK) + ROUTES)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def test_health(http):
    response = http.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "OK"}


def test_root_redirects_to_docs(http):
    response = http.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/docs"


def test_docs_work_offline(http):
    page = http.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "cdn" not in page.text and "http" not in page.text.split("<body>")[1].split("</script>")[0]
    for asset in ("/docs/assets/swagger-ui.css", "/docs/assets/swagger-ui-bundle.js", "/favicon.ico"):
        response = http.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100
    spec = http.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    assert "/endpoints/{endpoint_name}/invocations" in spec["paths"]
    assert "ChatRequest" in spec["components"]["schemas"]


def test_list_endpoints_exact_shape(http):
    body = http.get("/api/2.0/endpoints/").json()
    assert body["next_page_token"] is None
    assert [e["name"] for e in body["endpoints"]] == ["chat", "completions", "embeddings", "mock-chat"]
    assert body["endpoints"][0] == {
        "name": "chat",
        "endpoint_type": "llm/v1/chat",
        "model": {"name": "gpt-4o-mini", "provider": "openai"},
        "endpoint_url": "/gateway/chat/invocations",
        "limit": None,
    }


def test_page_tokens(http):
    token = base64.b64encode(json.dumps({"index": 2}).encode()).decode()
    body = http.get("/api/2.0/endpoints/", params={"page_token": token}).json()
    # page size is 3000: a token past the start just skips
    assert [e["name"] for e in body["endpoints"]] == ["embeddings", "mock-chat"]
    for bad in ("garbage!", base64.b64encode(b'{"index": -1}').decode(), base64.b64encode(b"[1]").decode()):
        response = http.get("/api/2.0/endpoints/", params={"page_token": bad})
        assert response.status_code == 400, bad
        assert "page_token" in response.json()["detail"]


def test_get_endpoint(http):
    assert http.get("/api/2.0/endpoints/chat").json()["model"]["provider"] == "openai"
    assert http.get("/api/3.0/gateway/endpoint/chat").json()["name"] == "chat"
    missing = http.get("/api/2.0/endpoints/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "detail": "The endpoint 'nope' is not present or active on the server. Please verify the endpoint name."
    }
    # traffic routes are not endpoints
    assert http.get("/api/2.0/endpoints/split").status_code == 404


def test_legacy_routes(http):
    body = http.get("/api/2.0/gateway/routes/").json()
    assert body["routes"][0] == {
        "name": "chat",
        "route_type": "llm/v1/chat",
        "model": {"name": "gpt-4o-mini", "provider": "openai"},
        "route_url": "/gateway/chat/invocations",
        "limit": None,
    }
    assert http.get("/api/2.0/gateway/routes/chat").json()["route_type"] == "llm/v1/chat"
    missing = http.get("/api/2.0/gateway/routes/nope")
    assert missing.status_code == 404
    assert "The route 'nope' is not present" in missing.json()["detail"]


def test_v3_route(http):
    assert http.get("/api/3.0/gateway/route/split").json() == {
        "name": "split",
        "task_type": "llm/v1/chat",
        "destinations": [
            {"name": "chat", "traffic_percentage": 70},
            {"name": "mock-chat", "traffic_percentage": 30},
        ],
        "routing_strategy": "TRAFFIC_SPLIT",
    }
    assert http.get("/api/3.0/gateway/route/chat").status_code == 404


def test_limits_stubs(http):
    for path in ("/api/2.0/endpoints/limits/chat", "/api/2.0/gateway/limits/chat"):
        response = http.get(path)
        assert response.status_code == 501
        assert response.json() == {"detail": "The get_limits API is not available yet."}
    for path in ("/api/2.0/endpoints/limits/", "/api/2.0/gateway/limits/"):
        assert http.post(path, json={"route": "chat", "limits": []}).status_code == 501
        invalid = http.post(path, json={"limits": []})
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["body", "route"]


@pytest.mark.parametrize("prefix", ["/endpoints", "/gateway"])
def test_invocation_aliases(http, prefix):
    body = http.post(f"{prefix}/chat/invocations", json=CHAT).json()
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello from the mock upstream!",
        "tool_calls": None,
        "refusal": None,
    }
    assert list(body) == ["id", "object", "created", "model", "choices", "usage", "provider"]
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}


def test_invocation_unknown_and_wrong_method(http):
    assert http.post("/endpoints/nope/invocations", json=CHAT).json() == {"detail": "Not Found"}
    wrong = http.get("/endpoints/chat/invocations")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json() == {"detail": "Method Not Allowed"}
    assert http.get("/no/such/path").status_code == 404


def test_model_field_refused_on_native_routes(http):
    response = http.post("/endpoints/chat/invocations", json={**CHAT, "model": "gpt-4"})
    assert response.status_code == 422
    assert "The parameter 'model' is not permitted" in response.json()["detail"]


def test_models_include_routes(http):
    data = http.get("/v1/models").json()["data"]
    assert {m["id"] for m in data} == {"chat", "completions", "embeddings", "mock-chat", "split"}
    assert http.get("/v1/models/split").json()["owned_by"] == "traffic-route"


def test_traffic_split_follows_percentages(http):
    providers = Counter(
        http.post("/endpoints/split/invocations", json=CHAT).json()["provider"] for _ in range(200)
    )
    assert set(providers) == {"openai", "mock"}
    # 70/30 split: 200 draws land within a generous band of 140
    assert 110 <= providers["openai"] <= 170
    v1 = http.post("/v1/chat/completions", json={**CHAT, "model": "split"})
    assert v1.status_code == 200


def test_sse_framing(http):
    with http.stream("POST", "/endpoints/chat/invocations", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0][len("data: ") :])
    assert first["object"] == "chat.completion.chunk" and first["provider"] == "openai"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "Hello", "tool_calls": None}


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/endpoints/chat/invocations", 405, "POST"),
        ("PUT", "/gateway/chat/invocations", 405, "POST"),
        ("GET", "/endpoints/unknown/invocations", 404, None),
        ("GET", "/v1/chat/completions", 405, "POST"),
        ("DELETE", "/v1/embeddings", 405, "POST"),
        ("POST", "/api/2.0/endpoints/unknown", 405, "GET"),
        ("POST", "/health", 405, "GET"),
        ("OPTIONS", "/api/2.0/endpoints/", 405, "GET"),
        ("GET", "/api/2.0/endpoints/limits/", 405, "POST"),
        ("POST", "/docs", 405, "GET"),
    ],
)
def test_wrong_methods(http, method, path, status, allow):
    response = http.request(method, path, json={})
    assert response.status_code == status
    if allow:
        assert response.headers["allow"] == allow
        assert response.json()["detail"] == "Method Not Allowed"
    else:
        assert response.json()["detail"] == "Not Found"
