"""/docs (Swagger UI served from the local swagger-ui-bundle package, no CDN), /openapi.json,
/redoc, / and /favicon.ico."""

from __future__ import annotations

import mimetypes
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import orjson
import swagger_ui_bundle

import gateway
from gateway.schemas.requests import ChatRequest, CompletionsRequest, EmbeddingsRequest
from gateway.server.http import send_bytes
from gateway.types import Send

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


async def serve(path: str, send: Send) -> bool:
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
        await send_bytes(send, 200, openapi_document())
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


def _post(summary: str, schema: str | None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "Successful Response"}},
    }
    if schema:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    return {"post": operation}


def _get(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "Successful Response"}}}}


@cache
def openapi_document() -> bytes:
    _, components = msgspec.json.schema_components(
        [ChatRequest, CompletionsRequest, EmbeddingsRequest], ref_template="#/components/schemas/{name}"
    )
    name_param = [{"name": "endpoint_name", "in": "path", "required": True, "schema": {"type": "string"}}]
    invocation = _post("Invoke an endpoint (chat, completions or embeddings by its type)", None)
    invocation["post"]["parameters"] = name_param
    invocation["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Gateway (MLflow AI Gateway compatible)",
            "description": "The core deployments API for reverse proxy interface using remote inference endpoints",
            "version": gateway.__version__,
        },
        "paths": {
            "/health": _get("Health check"),
            "/api/2.0/endpoints/": _get("List endpoints (paginated with page_token)"),
            "/api/2.0/endpoints/{endpoint_name}": _get("Get one endpoint") | {"parameters": name_param},
            "/api/2.0/endpoints/limits/{endpoint}": _get("Get limits (not available yet: 501)"),
            "/api/2.0/endpoints/limits/": _post("Set limits (not available yet: 501)", None),
            "/endpoints/{endpoint_name}/invocations": invocation,
            "/v1/chat/completions": _post(
                "OpenAI-compatible chat; model = endpoint or route name", "ChatRequest"
            ),
            "/v1/completions": _post("OpenAI-compatible completions", "CompletionsRequest"),
            "/v1/embeddings": _post("OpenAI-compatible embeddings", "EmbeddingsRequest"),
            "/v1/models": _get("List the endpoints and routes as OpenAI models"),
        },
        "components": {"schemas": components},
    }
    return orjson.dumps(document)
