"""MLflow's new-gateway route family (`mlflow server`'s `/gateway/...`), so its clients can point
here unchanged, and the dispatch of every API family other than MLflow's invocations and the
OpenAI Chat routes.

    /gateway/mlflow/v1/chat/completions                    -> the OpenAI chat route (/v1/chat/completions)
    /gateway/openai/v1/chat/completions                    -> the OpenAI chat route
    /gateway/openai/v1/embeddings                          -> the OpenAI embeddings route
    /gateway/openai/v1/responses, /v1/responses            -> the Responses API (apis/responses/)
    GET|DELETE /v1/responses/{id}                          -> a response served earlier
    /gateway/gemini/v1beta/models/{e}:generateContent,
    /v1beta/models/{e}:generateContent (and :streamGenerateContent)
                                                           -> Gemini's native API (apis/gemini/)
    /gateway/anthropic/v1/messages                         -> the Anthropic Messages adapter (apis/anthropic/,
                                                              dispatched by `gateway.apis.api_adapter`)
    /gateway/proxy/{endpoint}/{path}                       -> the raw proxy (apis/raw_proxy.py)

MLflow's `/gateway/openai/...` routes pass through to OpenAI endpoints only; here they serve every
chat or embeddings endpoint (OpenAI's shapes, the provider translated), a superset.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any
from urllib.parse import unquote

from gateway.apis import api_adapter
from gateway.apis.forwarding import FORWARDER
from gateway.apis.gemini.adapter import GeminiApi, gemini_target
from gateway.apis.raw_proxy import ProxyApi
from gateway.apis.responses import ResponsesApi, ResponseStates, stored_response
from gateway.errors import OPENAI
from gateway.pipeline import RequestContext, run_api, run_invocation
from gateway.types import CHAT, EMBEDDINGS, EndpointType

Pipeline = Coroutine[Any, Any, None]
OPENAI_FAMILY: dict[str, EndpointType] = {
    "/gateway/mlflow/v1/chat/completions": CHAT,
    "/gateway/openai/v1/chat/completions": CHAT,
    "/gateway/openai/v1/embeddings": EMBEDDINGS,
}
RESPONSES_PATHS = ("/v1/responses", "/gateway/openai/v1/responses")
STORED_RESPONSE = "/v1/responses/"
PROXY_PREFIX = "/gateway/proxy/"


class ApiRoutes:
    """Which pipeline a request of another API family runs (Anthropic Messages first, through
    `gateway.apis.api_adapter`); None for paths none of them has."""

    def __init__(self, database_url: str | None) -> None:
        self.states = ResponseStates(database_url)

    def route(self, ctx: RequestContext) -> Pipeline | None:
        path, method = ctx.path, ctx.method
        if path.startswith(PROXY_PREFIX):
            endpoint, _, rest = path[len(PROXY_PREFIX) :].partition("/")
            if endpoint and rest:
                return run_api(ctx, ProxyApi(rest), unquote(endpoint))
            return None
        if method == "POST":
            api = api_adapter(path)  # Anthropic Messages (apis/anthropic/)
            if api is not None:
                return run_api(ctx, api)
            if path in RESPONSES_PATHS:
                return run_api(ctx, ResponsesApi(self.states))
            kind = OPENAI_FAMILY.get(path)
            if kind is not None:
                ctx.openai_route, ctx.style = True, OPENAI  # OpenAI's shapes and errors
                return run_invocation(ctx, None, kind)
            native = gemini_target(path)
            if native is not None:
                return run_api(ctx, GeminiApi(native[1]), unquote(native[0]))
        elif method in ("GET", "DELETE") and path.startswith(STORED_RESPONSE):
            response_id = path[len(STORED_RESPONSE) :]
            if response_id and "/" not in response_id:
                ctx.style = OPENAI
                return stored_response(ctx, self.states, response_id)
        return None

    async def close(self) -> None:
        """At worker shutdown: the forwarding session's connections."""
        await FORWARDER.close()

    def known_post(self, path: str) -> bool:
        """A POST-only path of these families (another method on it gets 405)."""
        return path in RESPONSES_PATHS or path in OPENAI_FAMILY or gemini_target(path) is not None
