"""The ASGI application: lifespan, and routing of every MLflow route plus /v1/*, /admin/v1/*
and the docs. Invocations run the request pipeline (gateway/pipeline/); the catalog routes read
the current EndpointTable; every error is rendered here, once, in the client's style.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.apis import api_adapter
from gateway.apis.mlflow_routes import ApiRoutes
from gateway.control.reload import ConfigWatcher
from gateway.control.table import EndpointTable
from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.observe import Observer
from gateway.observe.metrics import scrape
from gateway.pipeline import RequestContext, run_invocation
from gateway.pipeline.authenticate import authenticate
from gateway.pipeline.context import Services
from gateway.pipeline.record import record_failure, record_request
from gateway.pipeline.relay import watch_stop_signals
from gateway.proxy.upstream import UpstreamClient
from gateway.redact import RedactingFilter
from gateway.server import catalog, docs
from gateway.server.http import send_bytes, send_json
from gateway.server.keys import Keys
from gateway.server.process import SUPERVISOR_ENV
from gateway.server.sinks import BACKGROUND_SINKS, build_sinks
from gateway.settings import settings
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Receive, Scope, Send

logger = logging.getLogger("gateway")

HEALTHY = {"status": "OK"}
METRICS = "/metrics"  # Prometheus text (observe/metrics.py)
OPENAI_ROUTES: dict[str, EndpointType] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
}
Handler = Callable[[Scope, Receive, Send, str], Awaitable[None]]


# the cyclic collector's first-generation threshold (CPython's default: 700 allocations)
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once a worker has loaded everything: what it loaded is never garbage, so the cyclic
    collector stops scanning it (`gc.freeze`), and young collections run less often. A request
    allocates a few hundred containers and frees them by reference counting; collecting every
    700 allocations, with full passes over the ~100,000 objects of the loaded modules, took
    about 5% of a worker's CPU (perf, benches/results/2026-12-02-profile.md)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class GatewayApp:
    def __init__(self, table: EndpointTable, client: UpstreamClient, config_path: str | None = None) -> None:
        self.table = table
        self.client = client
        # consumer keys: this worker's in-memory copy, kept current from the database in the
        # background (never on the request path); None when no database is configured
        self.keys: Keys | None = Keys(table.config.database_url) if table.config.database_url else None
        # what every request is given: keys, their limiters, the sinks of its usage record
        self.services = Services(
            self.keys,
            self.keys.limiters if self.keys is not None else None,
            build_sinks(table.config, self.keys),
        )
        self.observer = Observer()  # in-flight gauge, trace spans (observe/)
        self.apis = ApiRoutes(table.config.database_url)  # the API families of apis/mlflow_routes.py
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
                if self.keys is not None:
                    await self.keys.start()
                for sink in self.services.sinks:  # the usage database's batch writer (off the loop)
                    if isinstance(sink, BACKGROUND_SINKS):
                        sink.start()
                # no configured secret in any log line, whoever logs it (libraries included)
                redacting = RedactingFilter(lambda: self.table.redactor)
                for handler in logging.getLogger().handlers:
                    handler.addFilter(redacting)
                # after the server's own signal handling is in place: add the stream drain clock
                watch_stop_signals(lambda: settings().drain_seconds)
                if os.environ.get(SUPERVISOR_ENV):  # a `gateway start` worker, not an embedding host
                    settle_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.watcher:
                    await self.watcher.stop()
                if self.keys is not None:
                    await self.keys.stop()
                for sink in self.services.sinks:  # what is buffered, written within a deadline
                    if isinstance(sink, BACKGROUND_SINKS):
                        await sink.stop()
                await self.client.close()
                await self.apis.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        openai_style = path.startswith("/v1/")
        started = time.perf_counter()
        try:
            if path == "/health" and method in ("GET", "HEAD"):
                return await send_json(send, 200, HEALTHY)  # always open: load balancers probe it
            if path == "/admin" or path.startswith("/admin/"):
                return await self.admin(scope, receive, send)
            ctx = self.context(scope, receive, send)
            if path == METRICS and method in ("GET", "HEAD"):
                return await self.metrics(ctx)
            if method == "POST":  # MLflow's invocation routes and OpenAI's first: the busiest
                kind = OPENAI_ROUTES.get(path)
                name = invocation_name(path) if kind is None else None
                if kind is not None or name is not None:
                    return await self.invocation(ctx, run_invocation(ctx, name, kind))
            # Anthropic Messages, Responses, Gemini's native API, MLflow's /gateway/... family (apis/)
            routed = self.apis.route(ctx)
            if routed is not None:
                return await self.invocation(ctx, routed)
            # every other route answers only whom the access rules let in (IP lists, keys)
            await authenticate(ctx)
            if method == "POST":
                if path in catalog.LIMIT_POSTS:
                    return await catalog.set_limits(scope, receive, send, settings().max_request_bytes)
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
            record_failure(scope, exc, started)
            await send_bytes(send, exc.status, exc.body(openai_style), extra=exc.headers())
        except Exception:
            logger.exception("unhandled error on %s %s", method, path)
            await send_json(send, 500, {"detail": "Internal server error: see the gateway log."})

    async def invocation(self, ctx: RequestContext, pipeline: Coroutine[Any, Any, None]) -> None:
        """A pipeline run (`run_invocation`, or `run_api` for another API family), its errors
        rendered in the client's style with the request's headers, and its usage record written
        however it ended."""
        self.observer.begin(ctx)
        try:
            await pipeline
        except GatewayError as exc:
            ctx.error = exc
            exc.detail = ctx.table.redactor.value(exc.detail)
            record_failure(ctx.scope, exc, ctx.started)
            headers = [*exc.headers(), *ctx.answer_headers()]
            await send_bytes(ctx.send, exc.status, exc.body(ctx.style), extra=headers)
        finally:
            self.observer.end()
            record_request(ctx)
            # the error's traceback holds this frame, and so the context and the request's
            # `receive`: a cycle that would keep the connection (and its unread body) open
            # until the garbage collector runs
            ctx.error = None

    async def metrics(self, ctx: RequestContext) -> None:
        """Prometheus text, every worker summed (observe/metrics.py). Asks for what the other
        non-invocation routes ask for, unless GATEWAY_METRICS_REQUIRE_KEY=0 (scrapers without a
        key): then only the IP lists apply."""
        if settings().metrics_require_key:
            await authenticate(ctx)
        else:
            ctx.table.access.check_address(ctx.scope)
        content_type, body = await scrape()
        await send_bytes(ctx.send, 200, body, content_type)

    def context(self, scope: Scope, receive: Receive, send: Send) -> RequestContext:
        return RequestContext(scope, receive, send, self.table, self.services)

    async def admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The admin API (server/admin.py, loaded with the key database): 404 when it is off."""
        self.table.access.check_address(scope)
        if self.keys is None:
            raise NotFound("Not Found")
        from gateway.server.admin import handle_admin

        await handle_admin(scope, receive, send, self.keys.admin(self.table.config.auth.admin_key))

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
        if path in OPENAI_ROUTES or path in catalog.LIMIT_POSTS or api_adapter(path) is not None:
            return MethodNotAllowed("POST")
        if self.apis.known_post(path):
            return MethodNotAllowed("POST")
        if path in self.get_routes or catalog.is_get_path(path) or docs.is_docs_path(path) or path == METRICS:
            return MethodNotAllowed("GET")
        return NotFound("Not Found")


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
