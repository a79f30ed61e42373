"""The ASGI application: routing and handlers for every MLflow route plus /v1/models.

Control-plane decisions (which endpoint, limits) come from the current EndpointTable; the data
plane (provider call, SSE relay) is behind `Provider.invoke` / `Provider.open_stream`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.control.reload import ConfigWatcher
from gateway.control.table import EndpointTable, Target
from gateway.errors import BadRequest, GatewayError, MethodNotAllowed, NotFound, RequestValidationError
from gateway.providers.base import Provider
from gateway.providers.prompts import invoke_each, prepare_prompt
from gateway.proxy.openai_contract import openai_response, openai_stream_contract, wants_usage
from gateway.proxy.upstream import UpstreamClient
from gateway.redact import RedactingFilter
from gateway.schemas.responses import Response
from gateway.schemas.validation import decode_json_body, validate_payload
from gateway.server import catalog, docs
from gateway.server.http import SSE_HEADERS, header, read_body, send_bytes, send_json
from gateway.server.relay import ClientWatch, relay_stream, watch_stop_signals
from gateway.settings import settings
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload, Receive, Scope, Send

logger = logging.getLogger("gateway")

OPENAI_ROUTES: dict[str, EndpointType] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
}
KIND_WORD = {CHAT: "a chat", COMPLETIONS: "a completions", EMBEDDINGS: "an embeddings"}
TARGET_KEY = "gateway.target"  # the scope key holding the endpoint a request resolved to
Handler = Callable[[Scope, Receive, Send, str], Awaitable[None]]


class GatewayApp:
    def __init__(self, table: EndpointTable, client: UpstreamClient, config_path: str | None = None) -> None:
        self.table = table
        self.client = client
        self.max_body = settings().max_request_bytes
        self.watcher = ConfigWatcher(config_path, self) if config_path else None
        self.get_routes: dict[str, Callable[[str], tuple[int, Any]]] = catalog.static_get_routes(self)

    # ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.watcher:
                    self.watcher.start()
                # no configured secret in any log line, whoever logs it (libraries included)
                redacting = RedactingFilter(lambda: self.table.redactor)
                for handler in logging.getLogger().handlers:
                    handler.addFilter(redacting)
                # after the server's own signal handling is in place: add the stream drain clock
                watch_stop_signals(lambda: float(getattr(settings(), "drain_seconds", 30.0)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.watcher:
                    await self.watcher.stop()
                await self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        openai_style = path.startswith("/v1/")
        started = time.perf_counter()
        try:
            if method == "POST":
                kind = OPENAI_ROUTES.get(path)
                if kind is not None:
                    return await self.openai_invocation(scope, receive, send, kind)
                name = invocation_name(path)
                if name is not None:
                    return await self.invocation(scope, receive, send, name)
                if path in catalog.LIMIT_POSTS:
                    return await catalog.set_limits(scope, receive, send, self.max_body)
            elif method in ("GET", "HEAD"):
                route = self.get_routes.get(path)
                if route is not None:
                    status, body = route(path)
                    return await send_json(send, status, body)
                if await docs.serve(path, send, self.served_names()):
                    return
                answer = catalog.dynamic_get(self, path, scope.get("query_string", b""))
                if answer is not None:
                    return await send_json(send, *answer)
            raise self.no_route(method, path)
        except GatewayError as exc:
            exc.detail = self.table.redactor.value(exc.detail)
            log_failure(scope, exc, started)
            await send_bytes(send, exc.status, exc.body(openai_style), extra=exc.headers())
        except Exception:
            logger.exception("unhandled error on %s %s", method, path)
            await send_json(send, 500, {"detail": "Internal server error: see the gateway log."})

    def served_names(self) -> docs.Served:
        table = self.table
        endpoints = {name: target.endpoint_type for name, target in table.targets.items()}
        routes = {name: route.endpoint_type for name, route in table.routes.items()}
        return docs.served_names(endpoints, routes)

    def no_route(self, method: str, path: str) -> GatewayError:
        """A path that exists under another method gets 405 with `allow`; any other 404.
        Invocation paths exist only for configured names, as in MLflow."""
        name = invocation_name(path)
        if name is not None:
            return MethodNotAllowed("POST") if name in self.table.invocable else NotFound("Not Found")
        if path in OPENAI_ROUTES or path in catalog.LIMIT_POSTS:
            return MethodNotAllowed("POST")
        if path in self.get_routes or catalog.is_get_path(path) or docs.is_docs_path(path):
            return MethodNotAllowed("GET")
        return NotFound("Not Found")

    # -- invocations --------------------------------------------------------------------
    async def invocation(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        table = self.table
        target = table.resolve(name)
        if target is None:
            raise NotFound("Not Found")
        scope[TARGET_KEY] = target
        payload = await self.read_payload(scope, receive, target.endpoint_type)
        await self.dispatch(scope, receive, send, target, payload, openai_route=False)

    async def openai_invocation(self, scope: Scope, receive: Receive, send: Send, kind: EndpointType) -> None:
        payload = await self.read_payload(scope, receive, kind)
        name = payload.get("model")
        if not isinstance(name, str):
            raise RequestValidationError(
                [{"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": payload}]
            )
        target = self.table.resolve(name)
        if target is None:
            raise NotFound(
                f"Model '{name}' is not served by this gateway: no endpoint or route has that name. "
                "GET /v1/models lists them."
            )
        scope[TARGET_KEY] = target
        if target.endpoint_type != kind:
            raise BadRequest(f"Endpoint '{name}' is not {KIND_WORD[kind]} endpoint.")
        payload["model"] = None  # the endpoint's configured model applies
        await self.dispatch(scope, receive, send, target, payload, openai_route=True)

    async def read_payload(self, scope: Scope, receive: Receive, kind: EndpointType) -> Payload:
        body = await read_body(scope, receive, self.max_body)
        # limits on what the body may cost are checked before it is decoded (a large body's in a
        # worker thread): schemas/validation.py
        payload = await decode_json_body(body, header(scope, b"content-type"))
        validate_payload(payload, kind)
        return payload

    async def dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        target: Target,
        payload: Payload,
        openai_route: bool,
    ) -> None:
        kind = target.endpoint_type
        streaming = payload.get("stream") is True and kind != EMBEDDINGS
        prompts = prepare_prompt(target.provider, kind, payload, streaming)
        # the client may go away at any point: that cancels this task, the upstream call with it
        watch = ClientWatch(receive)
        grant = None
        try:
            # limits are decided before the provider is called and settled once the response or
            # stream has ended, however it ended (tokens reconciled, concurrency place given back)
            if target.limiter is not None:
                grant = await target.limiter.admit(scope, kind, payload)
            if streaming:
                usage = wants_usage(payload)
                stream = await target.provider.open_stream(kind, payload)
                headers = SSE_HEADERS
                if grant is not None:
                    stream = grant.meter.watch(stream)
                    headers = [*SSE_HEADERS, *grant.headers]
                contract = openai_stream_contract(stream, usage, openai_route)
                await relay_stream(
                    send, contract, self.table.redactor, headers, lambda exc: log_failure(scope, exc, None)
                )
            else:
                response = await invoke(target.provider, kind, payload, prompts)
                if grant is not None:
                    grant.meter.response(response)
                if openai_route:
                    response = openai_response(response)
                await send_json(send, 200, response, grant.headers if grant is not None else None)
        except asyncio.CancelledError:
            watch.absorb()
            logger.info("%s: the client went away; its request was cancelled", target_label(target))
        finally:
            watch.stop()
            if grant is not None:
                grant.settle()


async def invoke(
    provider: Provider, kind: EndpointType, payload: Payload, prompts: list[str] | None
) -> Response:
    if prompts is not None:
        return await invoke_each(provider, payload, prompts)
    return await provider.invoke(kind, payload)


def target_label(target: Target) -> str:
    return f"endpoint '{target.name}' (provider {target.config.provider})"


def log_failure(scope: Scope, exc: GatewayError, started: float | None) -> None:
    """One line per failed request: where, which endpoint and provider, the error's class and
    status, how long it took; the message only for server-side failures (a client error's detail
    can quote the request), redacted like every answer."""
    target = scope.get(TARGET_KEY)
    where = target_label(target) if target is not None else "no endpoint"
    took = f" after {1000 * (time.perf_counter() - started):.1f} ms" if started is not None else " mid-stream"
    line = f"{scope['method']} {scope['path']} {where}: {exc.status} {type(exc).__name__}{took}"
    if exc.status >= 500:
        logger.warning("%s: %s", line, exc.message[:300])
    else:
        logger.info("%s", line)


def invocation_name(path: str) -> str | None:
    """'/endpoints/{name}/invocations' or '/gateway/{name}/invocations' -> name."""
    if not path.endswith("/invocations"):
        return None
    for prefix in ("/endpoints/", "/gateway/"):
        if path.startswith(prefix):
            name = path[len(prefix) : -len("/invocations")]
            return name if name and "/" not in name else None
    return None


def create_app() -> GatewayApp:
    """Granian's factory target: one app per worker process, built from MLFLOW_GATEWAY_CONFIG."""
    from gateway.control.reload import initial_config
    from gateway.control.snapshot import remember
    from gateway.server.process import die_with_parent

    die_with_parent()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    path = os.environ.get("MLFLOW_GATEWAY_CONFIG") or os.environ.get("MLFLOW_DEPLOYMENTS_CONFIG")
    if not path:
        raise RuntimeError(
            "Environment variable 'MLFLOW_GATEWAY_CONFIG' is not set. Please set it to the path of the "
            "gateway configuration file."
        )
    client = UpstreamClient(settings().route_timeout_seconds)
    # the live file, else the last good config: a worker respawned while the file is invalid
    # or deleted still starts (a worker that cannot start takes the gateway down)
    config, signature = initial_config(path)
    table = EndpointTable(config, client)
    remember(config.text)
    app = GatewayApp(table, client, path)
    if app.watcher is not None:
        app.watcher.set_baseline(signature)
    return app
