"""/openapi.json lists every route the gateway serves, with declared parameters, resolvable
references, required and nullable fields as the server treats them, and the responses each
route really gives."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import msgspec
import openapi_spec_validator
import orjson
import pytest
import referencing
import referencing.jsonschema

import gateway
from gateway.schemas.responses import ChatChunk
from gateway.server import docs
from tests.conftest import launch
from tests.integration.configs import openai_config

EXTRA = """
  - name: mock-chat
    endpoint_type: llm/v1/chat
    model: {provider: mock, config: {}}
  - name: limited
    endpoint_type: llm/v1/chat
    model: {provider: mock, config: {}}
    limit: {calls: 1, renewal_period: minute}
routes:
  - name: split
    task_type: llm/v1/chat
    destinations:
      - {name: chat, traffic_percentage: 50}
      - {name: mock-chat, traffic_percentage: 50}
"""

# every route app.handle serves (docs pages aside), with its methods
ROUTES = {
    "/health": {"get"},
    "/api/2.0/endpoints/": {"get"},
    "/api/2.0/endpoints/{endpoint_name}": {"get"},
    "/api/3.0/gateway/endpoint/{endpoint_name}": {"get"},
    "/api/3.0/gateway/route/{route_name}": {"get"},
    "/api/2.0/gateway/routes/": {"get"},
    "/api/2.0/gateway/routes/{route_name}": {"get"},
    "/endpoints/{endpoint_name}/invocations": {"post"},
    "/gateway/{endpoint_name}/invocations": {"post"},
    "/v1/chat/completions": {"post"},
    "/v1/completions": {"post"},
    "/v1/embeddings": {"post"},
    "/v1/models": {"get"},
    "/v1/models/{model_id}": {"get"},
    "/api/2.0/endpoints/limits/{endpoint}": {"get"},
    "/api/2.0/gateway/limits/{endpoint}": {"get"},
    "/api/2.0/endpoints/limits/": {"post"},
    "/api/2.0/gateway/limits/": {"post"},
}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gateway_process(upstream, tmp_path_factory):
    process = launch(tmp_path_factory.mktemp("openapi"), openai_config(upstream.base, EXTRA))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def http(gateway_process):
    with httpx.Client(base_url=gateway_process.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def spec(http) -> dict[str, Any]:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    return [
        (path, method, operation, item)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(spec["components"]["schemas"][name])


def allows_null(spec: dict[str, Any], node: dict[str, Any]) -> bool:
    if "$ref" in node:
        return allows_null(spec, resolve(spec, node["$ref"]))
    if "anyOf" in node or "oneOf" in node:
        return any(allows_null(spec, branch) for branch in node.get("anyOf", node.get("oneOf")))
    kind = node.get("type")
    return kind is None and "enum" not in node and "const" not in node or kind == "null"


# -- the document itself -----------------------------------------------------------------
def test_document_header(spec):
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["version"] == gateway.__version__
    assert spec["info"]["title"]


def test_every_route_is_listed_with_its_methods(spec):
    listed = {path: {m for m in item if m in METHODS} for path, item in spec["paths"].items()}
    assert listed == ROUTES


def test_every_path_parameter_is_declared(spec):
    for path, method, operation, item in operations(spec):
        declared = {
            p["name"]: p
            for p in [*item.get("parameters", []), *operation.get("parameters", [])]
            if p["in"] == "path"
        }
        in_path = set(re.findall(r"{([^}]+)}", path))
        assert set(declared) == in_path, f"{method} {path}"
        for parameter in declared.values():
            assert parameter["required"] is True and parameter["schema"]["type"] == "string", path


def test_every_ref_resolves(spec):
    found = refs(spec)
    assert found
    for ref in found:
        resolve(spec, ref)


def test_every_operation_lists_its_responses(spec):
    for path, method, operation, _ in operations(spec):
        responses = operation["responses"]
        codes = set(responses)
        if "limits" in path:
            assert "501" in codes and "200" not in codes, path
        else:
            assert "200" in codes, path
            assert "schema" in responses["200"]["content"]["application/json"], path
        if "{" in path and "limits" not in path:
            assert "404" in codes, path
        if method == "post":
            assert {"400", "413", "422"} <= codes, path
            assert operation["requestBody"]["required"] is True
            assert refs(operation["requestBody"]), path
        if method == "post" and "limits" not in path:
            assert {"429", "501", "502", "504"} <= codes, path
            assert "Retry-After" in responses["429"]["headers"], path


def test_request_bodies_reference_component_schemas(spec):
    def body(path: str) -> Any:
        return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body("/v1/chat/completions") == {"$ref": "#/components/schemas/OpenAIChatRequest"}
    assert body("/v1/completions") == {"$ref": "#/components/schemas/OpenAICompletionsRequest"}
    assert body("/v1/embeddings") == {"$ref": "#/components/schemas/OpenAIEmbeddingsRequest"}
    for path in ("/endpoints/{endpoint_name}/invocations", "/gateway/{endpoint_name}/invocations"):
        assert sorted(refs(body(path))) == [
            "#/components/schemas/ChatRequest",
            "#/components/schemas/CompletionsRequest",
            "#/components/schemas/EmbeddingsRequest",
        ]
    assert body("/api/2.0/endpoints/limits/") == {"$ref": "#/components/schemas/SetLimitsRequest"}


def test_required_fields(spec):
    assert "messages" in schema(spec, "ChatRequest")["required"]
    assert "prompt" in schema(spec, "CompletionsRequest")["required"]
    assert "input" in schema(spec, "EmbeddingsRequest")["required"]
    for kind, field in (("Chat", "messages"), ("Completions", "prompt"), ("Embeddings", "input")):
        openai = schema(spec, f"OpenAI{kind}Request")
        assert {"model", field} <= set(openai["required"]), kind
        assert openai["properties"]["model"]["type"] == "string"
    assert set(schema(spec, "SetLimitsRequest")["required"]) == {"route", "limits"}


def test_nullable_fields_follow_the_server(spec):
    chat = schema(spec, "ChatRequest")["properties"]
    # null is accepted for optional sampling parameters, never for the required inputs
    for name in ("max_tokens", "temperature", "stop", "stream", "tools", "tool_choice", "response_format"):
        assert allows_null(spec, chat[name]), name
    assert not allows_null(spec, chat["messages"])
    assert not allows_null(spec, chat["n"])
    prompt = schema(spec, "CompletionsRequest")["properties"]["prompt"]
    embeddings_input = schema(spec, "EmbeddingsRequest")["properties"]["input"]
    for field in (prompt, embeddings_input):
        assert not allows_null(spec, field)
        assert [branch["type"] for branch in field["anyOf"]] == ["string", "array", "array", "array"]
        assert [branch.get("items", {}).get("type") for branch in field["anyOf"]] == [
            None,
            "string",
            "integer",
            "array",
        ]
    assert all(branch.get("minItems") == 1 for branch in prompt["anyOf"][1:])
    assert all("minItems" not in branch for branch in embeddings_input["anyOf"])
    # a model on an invocation route is refused: the endpoint's model applies
    assert chat["model"]["type"] == "null"


def test_document_validates_with_openapi_spec_validator(spec):
    openapi_spec_validator.validate(spec)


# -- the server answers as the document says ------------------------------------------------
def test_server_accepts_and_refuses_what_the_schema_says(http):
    for value in ("one", ["a", "b"], [1, 2], [[1, 2], [3]], []):
        response = http.post("/v1/embeddings", json={"model": "embeddings", "input": value})
        assert response.status_code == 200, (value, response.text)
    for value in ("one", ["a", "b"], [1, 2], [[1, 2], [3]]):
        response = http.post("/v1/completions", json={"model": "completions", "prompt": value})
        assert response.status_code == 200, (value, response.text)
    refused = [
        ("/v1/embeddings", {"model": "embeddings", "input": None}),
        ("/v1/embeddings", {"model": "embeddings"}),
        ("/v1/embeddings", {"input": "x"}),
        ("/v1/completions", {"model": "completions", "prompt": None}),
        ("/v1/completions", {"model": "completions", "prompt": []}),
        ("/v1/chat/completions", {"model": "chat", "messages": None}),
        ("/v1/chat/completions", {"model": "chat", "messages": []}),
        ("/v1/chat/completions", {"model": None, **CHAT}),
        ("/api/2.0/endpoints/limits/", {"route": "chat"}),
    ]
    for path, body in refused:
        response = http.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        msgspec.convert(response.json(), docs.HTTPValidationError)
    response = http.post("/endpoints/chat/invocations", json={**CHAT, "model": "gpt-4o"})
    assert response.status_code == 422
    msgspec.convert(response.json(), docs.HTTPError)


def documented(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path} answered an undocumented {status}"
    return dict(responses[str(status)])


CALLS: list[tuple[str, str, str, dict[str, Any] | None, int, Any]] = [
    # method, documented path, concrete path, body, expected status, body type (docs Structs)
    ("get", "/health", "/health", None, 200, docs.HealthResponse),
    ("get", "/api/2.0/endpoints/", "/api/2.0/endpoints/", None, 200, docs.ListEndpointsResponse),
    ("get", "/api/2.0/endpoints/", "/api/2.0/endpoints/?page_token=nope!", None, 400, docs.HTTPError),
    ("get", "/api/2.0/endpoints/{endpoint_name}", "/api/2.0/endpoints/chat", None, 200, docs.Endpoint),
    ("get", "/api/2.0/endpoints/{endpoint_name}", "/api/2.0/endpoints/nope", None, 404, docs.HTTPError),
    (
        "get",
        "/api/3.0/gateway/endpoint/{endpoint_name}",
        "/api/3.0/gateway/endpoint/limited",
        None,
        200,
        docs.Endpoint,
    ),
    (
        "get",
        "/api/3.0/gateway/route/{route_name}",
        "/api/3.0/gateway/route/split",
        None,
        200,
        docs.TrafficRoute,
    ),
    ("get", "/api/3.0/gateway/route/{route_name}", "/api/3.0/gateway/route/chat", None, 404, docs.HTTPError),
    (
        "get",
        "/api/2.0/gateway/routes/",
        "/api/2.0/gateway/routes/",
        None,
        200,
        docs.LegacySearchRoutesResponse,
    ),
    (
        "get",
        "/api/2.0/gateway/routes/{route_name}",
        "/api/2.0/gateway/routes/chat",
        None,
        200,
        docs.LegacyRoute,
    ),
    ("get", "/v1/models", "/v1/models", None, 200, docs.OpenAIModelList),
    ("get", "/v1/models/{model_id}", "/v1/models/split", None, 200, docs.OpenAIModel),
    ("get", "/v1/models/{model_id}", "/v1/models/nope", None, 404, docs.HTTPError),
    (
        "get",
        "/api/2.0/endpoints/limits/{endpoint}",
        "/api/2.0/endpoints/limits/chat",
        None,
        501,
        docs.HTTPError,
    ),
    ("get", "/api/2.0/gateway/limits/{endpoint}", "/api/2.0/gateway/limits/chat", None, 501, docs.HTTPError),
    (
        "post",
        "/api/2.0/endpoints/limits/",
        "/api/2.0/endpoints/limits/",
        {"route": "a", "limits": []},
        501,
        docs.HTTPError,
    ),
    (
        "post",
        "/api/2.0/gateway/limits/",
        "/api/2.0/gateway/limits/",
        {"route": "a", "limits": []},
        501,
        docs.HTTPError,
    ),
    ("post", "/endpoints/{endpoint_name}/invocations", "/endpoints/chat/invocations", CHAT, 200, None),
    ("post", "/gateway/{endpoint_name}/invocations", "/gateway/split/invocations", CHAT, 200, None),
    ("post", "/gateway/{endpoint_name}/invocations", "/gateway/nope/invocations", CHAT, 404, docs.HTTPError),
    ("post", "/v1/chat/completions", "/v1/chat/completions", {"model": "chat", **CHAT}, 200, None),
    ("post", "/v1/chat/completions", "/v1/chat/completions", {"model": "nope", **CHAT}, 404, docs.HTTPError),
    (
        "post",
        "/v1/chat/completions",
        "/v1/chat/completions",
        {"model": "embeddings", **CHAT},
        400,
        docs.HTTPError,
    ),
    ("post", "/v1/completions", "/v1/completions", {"model": "completions", "prompt": "hi"}, 200, None),
    ("post", "/v1/embeddings", "/v1/embeddings", {"model": "embeddings", "input": "hi"}, 200, None),
]


@pytest.mark.parametrize(("method", "path", "url", "body", "status", "body_type"), CALLS)
def test_documented_responses_match_the_server(http, spec, method, path, url, body, status, body_type):
    response = http.request(method.upper(), url, json=body)
    assert response.status_code == status, response.text
    answer = documented(spec, method, path, status)
    assert response.headers["content-type"].startswith("application/json")
    assert "application/json" in answer["content"]
    if body_type is not None:
        msgspec.convert(response.json(), body_type, strict=True)


def test_streams_and_rate_limits_are_documented(http, spec):
    with http.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "stream": True, **CHAT}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    event = documented(spec, "post", "/v1/chat/completions", 200)["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["data"]
    assert events[-1] == "[DONE]"
    for data in events[:-1]:
        msgspec.convert(orjson.loads(data), ChatChunk, strict=True)
    http.post("/endpoints/limited/invocations", json=CHAT)
    limited = http.post("/endpoints/limited/invocations", json=CHAT)
    assert limited.status_code == 429
    answer = documented(spec, "post", "/endpoints/{endpoint_name}/invocations", 429)
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RateLimitExceeded"
    }
    msgspec.convert(limited.json(), docs.RateLimitExceeded, strict=True)
    for header, declared in answer["headers"].items():
        if declared.get("required"):
            assert int(limited.headers[header]) >= 1
    over = http.post("/v1/chat/completions", json={"model": "limited", **CHAT})
    assert over.status_code == 429
    msgspec.convert(over.json(), docs.HTTPError, strict=True)
    assert over.json()["error"]["code"] == 429


def test_responses_validate_against_the_document(http, spec):
    """Full JSON Schema validation of real answers."""
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("urn:openapi", resource)

    def check(method: str, path: str, status: int, value: Any, media: str = "application/json") -> None:
        node = documented(spec, method, path, status)["content"][media]["schema"]
        jsonschema.Draft202012Validator(_rebase(node), registry=registry).validate(value)

    for method, path, url, body, _status, _ in CALLS:
        response = http.request(method.upper(), url, json=body)
        if response.status_code == 429:
            continue  # the limited endpoint's one call a minute is spent
        check(method, path, response.status_code, response.json())
    problems = http.post("/v1/embeddings", json={"model": "embeddings", "input": None})
    check("post", "/v1/embeddings", 422, problems.json())
    # what schema tools generate from the request schemas is what the server accepts
    check_request = jsonschema.Draft202012Validator(
        {"$ref": "urn:openapi#/components/schemas/OpenAIEmbeddingsRequest"}, registry=registry
    )
    assert not check_request.is_valid({"model": "embeddings", "input": None})
    assert check_request.is_valid({"model": "embeddings", "input": [[1, 2], []]})


def _rebase(node: Any) -> Any:
    """Point the document's local refs at the registered resource."""
    if isinstance(node, dict):
        return {
            key: (f"urn:openapi{value}" if key == "$ref" else _rebase(value)) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebase(value) for value in node]
    return node
