"""The ASGI application: lifespan, and routing of every MLflow route plus /v1/*, /admin/v1/*
and the docs. Invocations run the request pipeline (gateway/pipeline/); the catalog routes read
the current EndpointTable; every error is rendered here, once, in the client's style.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.control.reload import ConfigWatcher
from gateway.control.table import EndpointTable
from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.pipeline import RequestContext, run_invocation
from gateway.pipeline.authenticate import authenticate
from gateway.pipeline.record import record_failure
from gateway.pipeline.relay import watch_stop_signals
from gateway.proxy.upstream import UpstreamClient
from gateway.redact import RedactingFilter
from gateway.server import catalog, docs
from gateway.server.http import send_bytes, send_json
from gateway.server.keys import Keys
from gateway.settings import settings
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Receive, Scope, Send

logger = logging.getLogger("gateway")

HEALTHY = {"status": "OK"}
OPENAI_ROUTES: dict[str, EndpointType] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
}
Handler = Callable[[Scope, Receive, Send, str], Awaitable[None]]


class GatewayApp:
    def __init__(self, table: EndpointTable, client: UpstreamClient, config_path: str | None = None) -> None:
        self.table = table
        self.client = client
        # consumer keys: this worker's in-memory copy, kept current from the database in the
        # background (never on the request path); None when no database is configured
        self.keys: Keys | None = Keys(table.config.database_url) if table.config.database_url else None
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
                # no configured secret in any log line, whoever logs it (libraries included)
                redacting = RedactingFilter(lambda: self.table.redactor)
                for handler in logging.getLogger().handlers:
                    handler.addFilter(redacting)
                # after the server's own signal handling is in place: add the stream drain clock
                watch_stop_signals(lambda: settings().drain_seconds)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.watcher:
                    await self.watcher.stop()
                if self.keys is not None:
                    await self.keys.stop()
                await self.client.close()
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
            if method == "POST":
                kind = OPENAI_ROUTES.get(path)
                name = invocation_name(path) if kind is None else None
                if kind is not None or name is not None:
                    return await run_invocation(ctx, name, kind)
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

    def context(self, scope: Scope, receive: Receive, send: Send) -> RequestContext:
        keys = self.keys
        return RequestContext(
            scope, receive, send, self.table, keys, keys.limiters if keys is not None else None
        )

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
        if path in OPENAI_ROUTES or path in catalog.LIMIT_POSTS:
            return MethodNotAllowed("POST")
        if path in self.get_routes or catalog.is_get_path(path) or docs.is_docs_path(path):
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
