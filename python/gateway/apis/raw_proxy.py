"""The raw proxy, `/gateway/proxy/{endpoint}/{path}` (MLflow's): any method, path and body to the
endpoint's provider base URL with the gateway's credentials; the answer (event streams as they
arrive) back as the provider sent it, its usage read on the side for the usage record, cost and
token limits.

What it refuses to carry, since the client is not the provider's account holder:

* the client's credentials: no `?key=` (Google's style, the gateway key) in the query, no
  authorization header; only an allowlist of harmless request headers goes on, and never one
  the provider's own headers set (its key, organisation, project);
* paths outside the provider's base: dot segments, also percent-escaped (`%2e%2e`, `%252e`), are
  refused, and the URL is sent as built (no re-normalisation by the HTTP client).

An endpoint with a router (retries, breaker, fallback) is tried by the routing attempt loop when
every destination is of the endpoint's provider (the path is that provider's API); a 429 or 5xx
answer moves on, the last one relayed as the provider wrote it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
from yarl import URL

from gateway.apis.forwarding import (
    FORWARDER,
    Forwarded,
    credentials,
    meter_usage,
    relay_events,
    send_whole,
    watched_sse,
)
from gateway.apis.usage_watch import ANTHROPIC, GEMINI, OPENAI, StreamUsage, whole_usage
from gateway.errors import MLFLOW, BadRequest, GatewayError, NotImplementedByProvider, UpstreamError
from gateway.pipeline.context import RequestContext, StreamTally
from gateway.providers.base import Provider
from gateway.routing.attempts import attempts
from gateway.routing.strategies import Choice, Lane, Router
from gateway.server.http import read_body
from gateway.settings import settings

# request headers a client may send on (case-insensitive): content negotiation and the API
# versions and betas it speaks; everything else (credentials, cookies, hop-by-hop) stays here
CLIENT_HEADERS = frozenset(
    ("accept", "content-type", "anthropic-version", "anthropic-beta", "openai-beta", "user-agent")
)
# query parameters that carry credentials (Google's `?key=`): never forwarded
CREDENTIAL_PARAMS = frozenset(("key", "api_key", "api-key", "apikey", "access_token", "x-goog-api-key"))
RETRIED = 429  # and every 5xx: an answer the routing loop may take elsewhere


def proxy_root(provider: Provider) -> str:
    """The URL a raw proxy path is appended to, as MLflow computes it: the provider's base URL
    without its last segment (`https://api.openai.com/v1` -> `https://api.openai.com`), so
    callers pass the provider's whole API path (`v1/chat/completions`); Google's APIs: the
    origin (`v1beta/models/...`, `v1/projects/...`)."""
    config = provider.config
    name = provider.name.lower().replace("_", "-")
    if name in ("gemini", "palm"):
        return _origin(getattr(config, f"{name}_api_base"))
    if name == "vertex-ai":
        prefix = str(getattr(provider, "prefix", ""))
        return _origin(prefix)
    for attribute in dir(config):
        if attribute.endswith("api_base") and isinstance(getattr(config, attribute), str):
            base = getattr(config, attribute)
            if getattr(config, "openai_api_type", "openai").lower() != "openai":
                return str(base).rstrip("/")  # Azure: the resource's root
            return _parent(base)
    default = getattr(provider, "default_base", None)
    if name == "openai":
        default = "https://api.openai.com/v1"
    if isinstance(default, str) and default:
        return _parent(default)
    raise NotImplementedByProvider(f"The proxy endpoint is not implemented for {provider.label()}.")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _parent(url: str) -> str:
    parts = urlsplit(url.rstrip("/"))
    path = parts.path.rstrip("/")
    parent = path.rsplit("/", 1)[0] if "/" in path.lstrip("/") else ""
    return urlunsplit((parts.scheme, parts.netloc, parent, parts.query, ""))


def checked_path(rest: str) -> str:
    """The client's path, refused when it (or any decoding of it) has a dot segment."""
    decoded, previous = rest, None
    while decoded != previous:  # %252e -> %2e -> .: every layer an HTTP client might decode
        previous, decoded = decoded, unquote(decoded)
    if any(segment in ("..", ".") for segment in decoded.replace("\\", "/").split("/")):
        raise BadRequest("A proxy path may not contain '.' or '..' segments.")
    return rest


def proxy_url(root: str, rest: str, query: str) -> URL:
    """The upstream URL, sent as built; its path provably under the provider's base."""
    base = URL(root.rstrip("/") + "/", encoded=True)
    url = URL(f"{root.rstrip('/')}/{rest}" + (f"?{query}" if query else ""), encoded=True)
    if not url.raw_path.startswith(base.raw_path) or url.origin() != base.origin():
        raise BadRequest("A proxy path must stay under the provider's base URL.")
    return url


def forwarded_query(raw: bytes) -> str:
    """The client's query string without credential parameters, otherwise byte for byte."""
    kept = [
        part
        for part in raw.decode("latin-1").split("&")
        if part and unquote(part.partition("=")[0]).lower() not in CREDENTIAL_PARAMS
    ]
    return "&".join(kept)


def forwarded_headers(
    scope_headers: list[tuple[bytes, bytes]], provider_headers: dict[str, str]
) -> dict[str, str]:
    """The allowed client headers, then the provider's own (which win, compared by lowercased
    name, so no header goes up twice); the client's content type describes its body."""
    own = {name.lower(): value for name, value in provider_headers.items()}
    client: dict[str, str] = {}
    for raw_name, raw_value in scope_headers:
        name = raw_name.decode("latin-1").lower()
        if name in CLIENT_HEADERS and name not in client:
            client[name] = raw_value.decode("latin-1")
    if "content-type" in client:
        own.pop("content-type", None)
    return {**{k: v for k, v in client.items() if k not in own}, **own}


class ProxyApi:
    """Any method, path and body to the endpoint's provider, with the gateway's credentials."""

    style = MLFLOW

    def __init__(self, rest: str) -> None:
        self.rest = rest
        self.raw = b""

    async def read(self, ctx: RequestContext) -> str:
        self.rest = checked_path(self.rest)
        self.raw = await read_body(ctx.scope, ctx.receive, settings().max_request_bytes)
        assert ctx.target is not None
        ctx.kind = ctx.target.endpoint_type
        try:
            payload = orjson.loads(self.raw) if self.raw else {}
        except orjson.JSONDecodeError:
            payload = {}
        ctx.payload = payload if isinstance(payload, dict) else {}
        ctx.streaming = ctx.payload.get("stream") is True
        return ctx.asked or ""

    async def forward(self, ctx: RequestContext, provider: Provider) -> Forwarded:
        query = forwarded_query(ctx.scope.get("query_string", b""))
        url = proxy_url(proxy_root(provider), self.rest, query)
        own = await credentials(provider, str(url), self.raw)
        headers = forwarded_headers(ctx.scope["headers"], own)
        if not self.raw:
            headers.pop("content-type", None)
        return await FORWARDER.request(ctx.method, url, headers, self.raw, provider.label())

    async def call(self, ctx: RequestContext) -> None:
        target = ctx.target
        assert target is not None
        router = target.router
        if router is not None and same_provider(router, target.provider):
            answer, lane = await self.routed(ctx, router)
        else:
            answer, lane = await self.forward(ctx, target.provider), None
        assert ctx.target is not None
        family = usage_family(ctx.target.provider)
        if answer.pieces is None:
            if lane is not None:
                lane.in_flight -= 1
            ctx.usage = whole_usage(answer.body or b"", family)
            meter_usage(ctx, ctx.usage, streamed=False)
            content_type = dict(answer.headers).get(b"content-type", b"application/json")
            return await send_whole(ctx, answer.status, answer.body or b"", content_type, answer.headers)
        await self.relay(ctx, answer, family, lane)

    async def routed(self, ctx: RequestContext, router: Router) -> tuple[Forwarded, Lane | None]:
        async def call(choice: Choice) -> tuple[Forwarded, Lane]:
            try:
                answer = await self.forward(ctx, choice.lane.target.provider)
            except BaseException:
                choice.lane.in_flight -= 1
                raise
            if answer.pieces is None and (answer.status == RETRIED or answer.status >= 500):
                choice.lane.in_flight -= 1
                raise Answered(answer)  # the routing loop may try elsewhere
            return answer, choice.lane

        try:
            return await attempts(ctx, router, call)
        except Answered as last:  # the last destination's own answer, as it wrote it
            return last.answer, None

    async def relay(self, ctx: RequestContext, answer: Forwarded, family: str, lane: Lane | None) -> None:
        ctx.status = answer.status
        ctx.streaming = True
        tally = ctx.tally = StreamTally()
        watch = StreamUsage(family, tally)
        headers = [*answer.headers, (b"cache-control", b"no-cache"), *ctx.answer_headers()]
        await ctx.send({"type": "http.response.start", "status": answer.status, "headers": headers})
        pieces = answer.pieces
        assert pieces is not None

        def failed(exc: GatewayError) -> bytes:
            return b"event: error\ndata: " + exc.body(MLFLOW) + b"\n\n"

        async def close() -> None:
            if lane is not None:
                lane.in_flight -= 1
            await pieces.aclose()  # type: ignore[attr-defined]

        assert ctx.target is not None
        await relay_events(ctx, watched_sse(pieces, ctx.target.provider.label(), watch), failed, close)
        meter_usage(ctx, tally.usage, streamed=True)


class Answered(UpstreamError):
    """A destination's 429 or 5xx answer, for the routing loop to classify."""

    def __init__(self, answer: Forwarded) -> None:
        super().__init__(f"upstream HTTP {answer.status}", status=answer.status)
        self.answer = answer


def same_provider(router: Router, provider: Provider) -> bool:
    """Every destination is of the endpoint's provider: the client's path means the same there."""
    kind = _kind(provider)
    return all(_kind(choice.lane.target.provider) == kind for tier in router.tiers for choice in tier)


def _kind(provider: Provider) -> tuple[type, Any]:
    return type(provider), getattr(provider, "api_type", None)  # Azure's paths are not OpenAI's


def usage_family(provider: Provider) -> str:
    """Whose usage shape a proxied answer has: "anthropic", "gemini" or "openai"."""
    from gateway.apis.anthropic.passthrough import claude_upstream
    from gateway.apis.gemini.adapter import native_prefix

    if claude_upstream(provider) is not None:
        return ANTHROPIC
    if native_prefix(provider) is not None:
        return GEMINI
    return OPENAI
