"""/docs (Swagger UI served from the local swagger-ui-bundle package, no CDN), /openapi.json,
/redoc, / and /favicon.ico."""

from __future__ import annotations

import copy
import mimetypes
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import orjson
import swagger_ui_bundle
from msgspec import UNSET, Struct, UnsetType

import gateway
from gateway.schemas.requests import ChatRequest, CompletionsRequest, EmbeddingsRequest
from gateway.schemas.responses import (
    ChatChunk,
    ChatResponse,
    CompletionsChunk,
    CompletionsResponse,
    EmbeddingsResponse,
)
from gateway.server.catalog import LIMIT_POSTS
from gateway.server.http import send_bytes
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Send

ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
ASSET_PREFIX = "/docs/assets/"
DOCS_HTML = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Gateway - Swagger UI</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"><link rel="icon" href="/favicon.ico"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout", deepLinking: true});</script>
</body></html>"""


DOCS_PATHS = ("/", "/docs", "/docs/", "/redoc", "/openapi.json", "/favicon.ico")


def is_docs_path(path: str) -> bool:
    return path in DOCS_PATHS or path.startswith(ASSET_PREFIX)


async def serve(path: str, send: Send, served: Served) -> bool:
    if path == "/":
        await send(
            {
                "type": "http.response.start",
                "status": 307,
                "headers": [(b"location", b"/docs"), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return True
    if path in ("/docs", "/docs/", "/redoc"):
        await send_bytes(send, 200, DOCS_HTML, b"text/html; charset=utf-8")
        return True
    if path == "/openapi.json":
        await send_bytes(send, 200, openapi_document(served))
        return True
    if path == "/favicon.ico":
        return await _file(send, ASSETS / "favicon-32x32.png")
    if path.startswith(ASSET_PREFIX):
        name = path[len(ASSET_PREFIX) :]
        if "/" not in name and not name.startswith("."):
            return await _file(send, ASSETS / name)
    return False


async def _file(send: Send, file: Path) -> bool:
    body = _read(str(file))
    if body is None:
        return False
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    await send_bytes(send, 200, body, kind.encode(), [(b"cache-control", b"public, max-age=86400")])
    return True


@cache
def _read(file: str) -> bytes | None:
    try:
        return Path(file).read_bytes()
    except OSError:
        return None


# -- /openapi.json ------------------------------------------------------------------------
# Response bodies the catalog routes and errors build as dicts, described as Structs so that
# msgspec writes their schemas next to the request and response Structs'.


class EndpointModel(Struct):
    name: str | None
    provider: str


class EndpointLimit(Struct):
    calls: int
    key: str | None
    renewal_period: str


class Endpoint(Struct):
    name: str
    endpoint_type: EndpointType
    model: EndpointModel
    endpoint_url: str
    limit: EndpointLimit | None


class ListEndpointsResponse(Struct):
    endpoints: list[Endpoint]
    next_page_token: str | None


class LegacyRoute(Struct):
    name: str
    route_type: EndpointType
    model: EndpointModel
    route_url: str
    limit: EndpointLimit | None


class LegacySearchRoutesResponse(Struct):
    routes: list[LegacyRoute]
    next_page_token: str | None


class TrafficRouteDestination(Struct):
    name: str
    traffic_percentage: int


class TrafficRoute(Struct):
    name: str
    task_type: EndpointType
    destinations: list[TrafficRouteDestination]
    routing_strategy: str


class OpenAIModel(Struct):
    id: str
    object: str
    created: int
    owned_by: str
    endpoint_type: EndpointType


class OpenAIModelList(Struct):
    object: str
    data: list[OpenAIModel]


class HealthResponse(Struct):
    status: str


class SetLimitsRequest(Struct):
    route: str
    limits: list[Any]


class OpenAIErrorObject(Struct):
    message: str
    type: str
    code: int


class HTTPError(Struct):
    """MLflow's error body; on /v1 routes `error` is added for the openai SDK. `detail` is a
    message, or the provider's own error body when it passes one through."""

    detail: Any
    error: OpenAIErrorObject | UnsetType = UNSET


class ValidationProblem(Struct):
    type: str
    loc: list[str | int]
    msg: str
    input: Any
    ctx: dict[str, Any] | UnsetType = UNSET


class HTTPValidationError(Struct):
    detail: list[ValidationProblem]
    error: OpenAIErrorObject | UnsetType = UNSET


class RateLimitExceeded(Struct):
    error: str


class StreamError(Struct):
    """The last event of a stream that failed after it started."""

    error: OpenAIErrorObject


REQUEST_TYPES: tuple[Any, ...] = (ChatRequest, CompletionsRequest, EmbeddingsRequest, SetLimitsRequest)
RESPONSE_TYPES: tuple[Any, ...] = (
    ChatResponse,
    CompletionsResponse,
    EmbeddingsResponse,
    ChatChunk,
    CompletionsChunk,
    StreamError,
    HealthResponse,
    Endpoint,
    ListEndpointsResponse,
    LegacyRoute,
    LegacySearchRoutesResponse,
    TrafficRoute,
    OpenAIModel,
    OpenAIModelList,
    HTTPError,
    HTTPValidationError,
    RateLimitExceeded,
)
# integers the JSON parser reads as integers; larger ones become floats and get a 422
INTEGER_RANGE = {"minimum": -(2**63), "maximum": 2**64 - 1}
MODEL_ON_INVOCATIONS = {
    "type": "null",
    "description": "The endpoint's configured model applies: a model here gets 422 "
    "(only mlflow-model-serving endpoints take one)",
}
MODEL_ON_V1 = {
    "type": "string",
    "description": "The name of an endpoint or traffic route of the endpoint type of this route (GET /v1/models)",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _token_input(non_empty: bool) -> dict[str, Any]:
    """`str | list[str] | list[int] | list[list[int]]`: the request Structs type these `Any`
    (msgspec cannot hold several list types in one union) and check them by hand."""
    size = {"minItems": 1} if non_empty else {}
    integer = {"type": "integer"}
    return {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, **size},
            {"type": "array", "items": integer, **size},
            {"type": "array", "items": {"type": "array", "items": integer}, **size},
        ]
    }


def _bound_integers(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            for key, bound in INTEGER_RANGE.items():
                schema.setdefault(key, bound)
        for value in schema.values():
            _bound_integers(value)
    elif isinstance(schema, list):
        for value in schema:
            _bound_integers(value)


def _components(served: Served) -> dict[str, Any]:
    """The request Structs' schemas, made to say what the server accepts where the Structs say
    less (`Any` fields, `model`), then the response schemas."""
    template = "#/components/schemas/{name}"
    _, schemas = msgspec.json.schema_components(REQUEST_TYPES, ref_template=template)
    schemas["CompletionsRequest"]["properties"]["prompt"] = {
        **_token_input(non_empty=True),
        "description": "A string, or a non-empty list of strings, of token ids or of token-id lists",
    }
    schemas["EmbeddingsRequest"]["properties"]["input"] = {
        **_token_input(non_empty=False),
        "description": "A string, or a list of strings, of token ids or of token-id lists",
    }
    _bound_integers(schemas)
    for kind in ("Chat", "Completions", "Embeddings"):
        request = schemas[f"{kind}Request"]
        # the /v1 routes: the same body, with `model` (an endpoint or route name) required
        openai = copy.deepcopy(request)
        openai["title"] = f"OpenAI{kind}Request"
        names = served.of_kind(kind)
        # the names this gateway serves for this type: any other gets 404
        openai["properties"]["model"] = {**MODEL_ON_V1, "enum": list(names)} if names else MODEL_ON_V1
        openai["required"] = ["model", *request.get("required", [])]
        schemas[f"OpenAI{kind}Request"] = openai
        request["properties"]["model"] = MODEL_ON_INVOCATIONS
    _, responses = msgspec.json.schema_components(RESPONSE_TYPES, ref_template=template)
    if schemas.keys() & responses.keys():
        raise RuntimeError(f"schema names used twice: {sorted(schemas.keys() & responses.keys())}")
    return schemas | responses


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _error(description: str) -> dict[str, Any]:
    return _json("HTTPError", description)


RATE_LIMIT_HEADERS = {
    "Retry-After": {
        "description": "Seconds until a request may be admitted",
        "required": True,
        "schema": {"type": "integer"},
    },
    "RateLimit-Limit": {"description": "Calls per renewal period", "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Calls left in this period", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the bucket is full", "schema": {"type": "integer"}},
}


def _invocation_responses(success: dict[str, Any], openai_style: bool) -> dict[str, Any]:
    rate_limited = (
        _error("Over the endpoint's limit")
        if openai_style
        else _json("RateLimitExceeded", "Over the endpoint's limit")
    )
    return {
        "200": success,
        "400": _error(
            "A body that is not JSON text, a request the provider cannot take"
            + (", or a model of another endpoint type" if openai_style else "")
        ),
        "404": _error("No endpoint or route has this name"),
        "413": _error("The body is larger than the gateway accepts"),
        "422": {
            "description": "The body does not match the request schema (a list of problems), or the "
            "provider refuses a parameter (a message)",
            "content": {
                "application/json": {"schema": {"anyOf": [_ref("HTTPValidationError"), _ref("HTTPError")]}}
            },
        },
        "429": rate_limited | {"headers": RATE_LIMIT_HEADERS},
        "501": _error("The endpoint's provider cannot serve this endpoint type or the call"),
        "502": _error("The provider could not be reached or answered malformed data"),
        "503": _error("The rate-limit storage is unreachable (limits_failure_mode: closed)"),
        "504": _error("The provider did not answer in time"),
        "default": _error("The provider's own error, passed through with its status"),
    }


def _stream_event(chunks: list[str]) -> dict[str, Any]:
    """One server-sent event (Open API 3.1 tools read a text/event-stream `schema` per event):
    a JSON chunk, the error object that ends a stream failing after it started, or [DONE]."""
    payloads = [_ref(name) for name in [*chunks, "StreamError"]]
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": payloads},
    }
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data]}, "event": {"type": "string"}},
    }


def _success(schemas: list[str], chunks: list[str]) -> dict[str, Any]:
    schema = _ref(schemas[0]) if len(schemas) == 1 else {"anyOf": [_ref(name) for name in schemas]}
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if chunks:
        content["text/event-stream"] = {"schema": _stream_event(chunks)}
    return {
        "description": "The provider's answer; with `stream: true`, server-sent `data:` events: "
        "chunks, then `[DONE]`",
        "content": content,
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_parameter(name: str, description: str, served: tuple[str, ...] = ()) -> dict[str, Any]:
    """A path parameter; `served` lists the names the server answers (any other gets 404)."""
    schema: dict[str, Any] = {"type": "string"}
    if served:
        schema["enum"] = list(served)
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


PAGE_TOKEN = {
    "name": "page_token",
    "in": "query",
    "required": False,
    "description": "The next_page_token of the previous page",
    "schema": {"type": "string"},
}


def _get(
    summary: str,
    ok: str | None,
    tag: str,
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if parameters:
        operation["parameters"] = parameters
    success = {"200": _json(ok, "Successful Response")} if ok else {}
    operation["responses"] = success | (errors or {})
    return {"get": operation}


def _invocation(summary: str, served: Served) -> dict[str, Any]:
    body = {"anyOf": [_ref("ChatRequest"), _ref("CompletionsRequest"), _ref("EmbeddingsRequest")]}
    success = _success(
        ["ChatResponse", "CompletionsResponse", "EmbeddingsResponse"], ["ChatChunk", "CompletionsChunk"]
    )
    return {
        "post": {
            "summary": summary,
            "tags": ["invocations"],
            "parameters": [
                _path_parameter("endpoint_name", "An endpoint or traffic route name", served.invocable)
            ],
            "requestBody": _body(body),
            "responses": _invocation_responses(success, openai_style=False),
        }
    }


def _openai(kind: str, summary: str, chunks: list[str]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["OpenAI-compatible"],
            "requestBody": _body(_ref(f"OpenAI{kind}Request")),
            "responses": _invocation_responses(_success([f"{kind}Response"], chunks), openai_style=True),
        }
    }


def _limits_get() -> dict[str, Any]:
    return _get(
        "Get limits (not available yet: 501, as in MLflow)",
        None,
        "limits",
        [_path_parameter("endpoint", "An endpoint name")],
        {"501": _error("Not available yet")},
    )


def _limits_post() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Set limits (not available yet: 501, as in MLflow)",
            "tags": ["limits"],
            "requestBody": _body(_ref("SetLimitsRequest")),
            "responses": {
                "400": _error("A body that is not valid JSON text"),
                "413": _error("The body is larger than the gateway accepts"),
                "422": _json("HTTPValidationError", "The body does not match the request schema"),
                "501": _error("Not available yet"),
            },
        }
    }


def _paths(served: Served) -> dict[str, Any]:
    endpoint = [_path_parameter("endpoint_name", "An endpoint name", served.endpoints)]
    route = [_path_parameter("route_name", "A traffic route name", served.routes)]
    legacy = [_path_parameter("route_name", "An endpoint name", served.endpoints)]
    model = [_path_parameter("model_id", "An endpoint or traffic route name", served.invocable)]
    endpoint_missing = {"404": _error("No endpoint has this name")}
    route_missing = {"404": _error("No traffic route has this name")}
    model_missing = {"404": _error("No endpoint or traffic route has this name")}
    bad_token = {"400": _error("A page_token this server did not issue")}
    return {
        "/health": _get("Health check", "HealthResponse", "health"),
        "/api/2.0/endpoints/": _get(
            "List endpoints (paginated with page_token)",
            "ListEndpointsResponse",
            "endpoints",
            [PAGE_TOKEN],
            bad_token,
        ),
        "/api/2.0/endpoints/{endpoint_name}": _get(
            "Get one endpoint", "Endpoint", "endpoints", endpoint, endpoint_missing
        ),
        "/api/3.0/gateway/endpoint/{endpoint_name}": _get(
            "Get one endpoint (MLflow 3 path)", "Endpoint", "endpoints", endpoint, endpoint_missing
        ),
        "/api/3.0/gateway/route/{route_name}": _get(
            "Get one traffic route", "TrafficRoute", "endpoints", route, route_missing
        ),
        "/endpoints/{endpoint_name}/invocations": _invocation(
            "Invoke an endpoint or traffic route; the body follows its type", served
        ),
        "/gateway/{endpoint_name}/invocations": _invocation(
            "Invoke an endpoint or traffic route (alias of /endpoints/{endpoint_name}/invocations)", served
        ),
        "/v1/chat/completions": _openai(
            "Chat", "OpenAI-compatible chat; model = endpoint or route name", ["ChatChunk"]
        ),
        "/v1/completions": _openai("Completions", "OpenAI-compatible completions", ["CompletionsChunk"]),
        "/v1/embeddings": _openai("Embeddings", "OpenAI-compatible embeddings", []),
        "/v1/models": _get(
            "List the endpoints and routes as OpenAI models", "OpenAIModelList", "OpenAI-compatible"
        ),
        "/v1/models/{model_id}": _get(
            "Get one endpoint or route as an OpenAI model",
            "OpenAIModel",
            "OpenAI-compatible",
            model,
            model_missing,
        ),
        "/api/2.0/gateway/routes/": _get(
            "List endpoints in the legacy route shape (deprecated)",
            "LegacySearchRoutesResponse",
            "legacy",
            [PAGE_TOKEN],
            bad_token,
        ),
        "/api/2.0/gateway/routes/{route_name}": _get(
            "Get one endpoint in the legacy route shape (deprecated)",
            "LegacyRoute",
            "legacy",
            legacy,
            endpoint_missing,
        ),
        "/api/2.0/endpoints/limits/{endpoint}": _limits_get(),
        "/api/2.0/gateway/limits/{endpoint}": _limits_get(),
        **{path: _limits_post() for path in LIMIT_POSTS},
    }


class Served(NamedTuple):
    """The names the current configuration serves, which the document lists as the only values
    of its name parameters (and of `model` on the /v1 routes)."""

    endpoints: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    invocable: tuple[str, ...] = ()
    by_kind: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ("Chat", names), ...

    def of_kind(self, word: str) -> tuple[str, ...]:
        return dict(self.by_kind).get(word, ())


def served_names(endpoints: dict[str, EndpointType], routes: dict[str, EndpointType]) -> Served:
    invocable = {**endpoints, **routes}
    words = {CHAT: "Chat", COMPLETIONS: "Completions", EMBEDDINGS: "Embeddings"}
    by_kind = tuple(
        (word, tuple(n for n, t in invocable.items() if t == kind)) for kind, word in words.items()
    )
    return Served(tuple(endpoints), tuple(routes), tuple(invocable), by_kind)


NOTHING_SERVED = Served()


@lru_cache(maxsize=4)  # rebuilt only when a reload changes the names
def openapi_document(served: Served = NOTHING_SERVED) -> bytes:
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Gateway (MLflow AI Gateway compatible)",
            "description": "The core deployments API for reverse proxy interface using remote inference endpoints",
            "version": gateway.__version__,
        },
        "paths": _paths(served),
        "components": {"schemas": _components(served)},
    }
    return orjson.dumps(document)
