"""Targets (an OpenAI-compatible or MLflow-style URL) and their pre-rendered requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

KIND_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
DEFAULT_MODELS = {
    "chat": "gpt-4o-mini",
    "completions": "gpt-3.5-turbo-instruct",
    "embeddings": "text-embedding-3-small",
}


class TargetError(ValueError):
    """A URL, body or flag combination the bench cannot use."""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    host: str
    port: int
    tls: bool
    path: str
    kind: str
    mlflow: bool  # an /invocations route: the endpoint is in the path, the body has no model
    model: str | None


def kind_of_path(path: str) -> str | None:
    for kind in ("chat", "completions", "embeddings"):  # chat first: /chat/completions
        if path.endswith(KIND_PATHS[kind]):
            return kind
    return None


def resolve(url: str, kind: str | None, endpoint: str | None, model: str | None, name: str | None) -> Target:
    """A full URL is used as given; a base URL (`http://h:p`, `.../v1`) gets the kind's path,
    or, with --endpoint and a base not ending in /v1, `/endpoints/{endpoint}/invocations`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"not an http(s) URL: {url}")
    tls = parts.scheme == "https"
    path = parts.path.rstrip("/")
    found = kind_of_path(path)
    mlflow = path.endswith("/invocations")
    if found is None and not mlflow:
        if endpoint and not path.endswith("/v1"):  # a .../v1 base is always OpenAI-style
            path = f"{path}/endpoints/{endpoint}/invocations"
            mlflow = True
        else:
            base = path if path.endswith("/v1") else f"{path}/v1"
            path = base + KIND_PATHS[kind or "chat"]
            found = kind or "chat"
    if found and kind and found != kind:
        raise TargetError(f"{url} is a {found} URL but --kind is {kind}")
    query = f"?{parts.query}" if parts.query else ""
    port = parts.port or (443 if tls else 80)
    resolved_kind = found or kind or "chat"
    full = f"{parts.scheme}://{parts.netloc}{path}{query}"
    return Target(
        name=name or f"{parts.netloc}{path}",
        url=full,
        host=parts.hostname,
        port=port,
        tls=tls,
        path=(path or "/") + query,
        kind=resolved_kind,
        mlflow=mlflow,
        model=model,
    )


def prepare_body(
    target: Target, body: dict[str, Any], stream: bool, include_usage: bool, model_given: bool
) -> dict[str, Any]:
    body = dict(body)
    if target.mlflow:
        body.pop("model", None)  # MLflow's invocations route names the endpoint in its path
    elif model_given or "model" not in body:
        body["model"] = target.model or DEFAULT_MODELS[target.kind]
    if stream:
        body["stream"] = True
        if include_usage and not target.mlflow:
            body["stream_options"] = {"include_usage": True}
    return body


def render(target: Target, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """One HTTP/1.1 POST, byte for byte as it goes on the wire."""
    default_port = 443 if target.tls else 80
    host = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not host.startswith("["):
        host = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {host}",
        "User-Agent: gateway-bench",
        "Accept: application/json, text/event-stream",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{key}: {value}" for key, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def requests_for(
    target: Target,
    bodies: list[dict[str, Any]],
    headers: list[tuple[str, str]],
    stream: bool,
    include_usage: bool,
    model_given: bool,
) -> tuple[bytes, ...]:
    if stream and target.kind == "embeddings":
        raise TargetError("embeddings do not stream: drop --stream")
    return tuple(
        render(target, orjson.dumps(prepare_body(target, body, stream, include_usage, model_given)), headers)
        for body in bodies
    )


def parse_header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep or not key.strip():
        raise TargetError(f"a header is 'Name: value', got {text!r}")
    return key.strip(), value.strip()


def load_bodies(text: str | None, path: str | None) -> list[dict[str, Any]] | None:
    """--body JSON, or --body-file with one JSON object or JSON lines (cycled in order)."""
    if text is not None:
        sources = [text]
    elif path is not None:
        with open(path, "rb") as handle:
            raw = handle.read()
        stripped = raw.strip()
        sources = (
            [stripped.decode()]
            if stripped.startswith(b"{") and _is_one_json(stripped)
            else raw.decode().splitlines()
        )
    else:
        return None
    bodies = []
    for line in sources:
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TargetError(f"request body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise TargetError("a request body must be a JSON object")
        bodies.append(value)
    if not bodies:
        raise TargetError("no request body found")
    return bodies


def _is_one_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True
