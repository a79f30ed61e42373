"""Databricks Model Serving (spec §7.14): `databricks` and `databricks-model-serving`.

The calls are MLflow's: the workspace's OpenAI-compatible routes
`{host}/serving-endpoints/chat/completions` and `{host}/serving-endpoints/embeddings`, with
`"model": <model.name>` (the serving endpoint) first in the body; a Unity Catalog name (two dots
or more) goes to the AI Gateway's `{host}/ai-gateway/mlflow/v1/...` the same way. A host that
already contains `/serving-endpoints` is not given a second one. Chat streams (with
`stream_options.include_usage` added unless the client set it, as for OpenAI); completions load
with a warning and answer MLflow's 501.

Credentials come from the config or the Databricks SDK's environment variables, without the SDK:
`host` / DATABRICKS_HOST, then a personal access token `token` / DATABRICKS_TOKEN, or OAuth
machine-to-machine `client_id` + `client_secret` / DATABRICKS_CLIENT_ID + DATABRICKS_CLIENT_SECRET.
For OAuth the token comes from `{host}/oidc/v1/token` (client-credentials grant, scope
`all-apis`) over the pooled client and is reused until a minute before it expires; one refresh
runs at a time. `~/.databrickscfg` profiles are not read.

Responses whose content is a list of parts keep text, image and audio parts (an all-text list
becomes one string joined by newlines); list-valued stream deltas become their joined text.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.errors import ConfigError, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest
from gateway.providers.openai_shapes import chat_chunk, chat_response, embeddings_response
from gateway.schemas.responses import Chunk, Response
from gateway.types import CHAT, EMBEDDINGS, EndpointType, Payload

KEPT_PARTS = ("text", "image_url", "input_audio")
REFRESH_MARGIN_SECONDS = 60.0
TOKEN_FORM = urlencode({"grant_type": "client_credentials", "scope": "all-apis"}).encode()
PATHS = {CHAT: "chat/completions", EMBEDDINGS: "embeddings"}
SERVING_ENDPOINTS = "/serving-endpoints"
AI_GATEWAY = "/ai-gateway/mlflow/v1"


class DatabricksConfig(ProviderConfig):
    host: str | None = None
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class Credentials:
    """Host and auth from the config, falling back to the SDK's environment variables. The
    config's own credentials win over the environment's, whichever kind they are."""

    def __init__(self, config: DatabricksConfig) -> None:
        env = os.environ.get
        host = config.host or env("DATABRICKS_HOST")
        if not host:
            raise ConfigError("Databricks host is not set: give model.config.host or DATABRICKS_HOST")
        self.host = (host if "://" in host else f"https://{host}").rstrip("/")
        self.token: str | None = None
        self.client: tuple[str, str] | None = None
        if config.token:
            self.token = config.token
        elif config.client_id and config.client_secret:
            self.client = (config.client_id, config.client_secret)
        elif env("DATABRICKS_TOKEN"):
            self.token = env("DATABRICKS_TOKEN")
        else:
            client_id = config.client_id or env("DATABRICKS_CLIENT_ID")
            client_secret = config.client_secret or env("DATABRICKS_CLIENT_SECRET")
            if not (client_id and client_secret):
                raise ConfigError(
                    "Databricks credentials are not set: give model.config.token (or DATABRICKS_TOKEN), "
                    "or client_id and client_secret (or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET)"
                )
            self.client = (client_id, client_secret)


class DatabricksProvider(HttpProvider):
    display_name = "Databricks"
    config_type = DatabricksConfig
    secret_fields = ("token", "client_secret")
    endpoint_types = frozenset((CHAT, EMBEDDINGS))
    streaming_types = frozenset((CHAT,))
    openai_embeddings = True

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        Credentials(config)
        if not model_name:
            raise ConfigError("model.name is required: it names the Databricks serving endpoint")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        credentials = Credentials(self.config)
        host = credentials.host
        self.urls = {kind: f"{api_base(host, self.model or '')}/{path}" for kind, path in PATHS.items()}
        self.headers = {"Content-Type": "application/json"}
        self.oauth: OAuthToken | None = None
        if credentials.client is not None:
            self.oauth = OAuthToken(self, host, *credentials.client)
        else:
            self.headers["Authorization"] = f"Bearer {credentials.token}"

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        body = {"model": self.model, **payload}
        if stream:
            options = body.get("stream_options")
            if not isinstance(options, dict) or "include_usage" not in options:
                body["stream_options"] = {**(options or {}), "include_usage": True}
        return UpstreamRequest(self.urls[kind], self.headers, body)

    async def authorize(self, request: UpstreamRequest, body: bytes) -> dict[str, str]:
        if self.oauth is None:
            return request.headers
        return {**request.headers, "Authorization": f"Bearer {await self.oauth.get()}"}

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        # custom serving endpoints may leave out what OpenAI's format always has
        data.setdefault("created", int(time.time()))
        data.setdefault("model", self.model)
        if kind == EMBEDDINGS:
            data.setdefault("usage", {"prompt_tokens": None, "total_tokens": None})
            return embeddings_response(data)
        for choice in data["choices"]:
            message = choice["message"]
            message["content"] = kept_content(message.get("content"))
        return chat_response(data, self.name)

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        if "error" in data or "error_code" in data:
            error = data.get("error", data)
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(str(message))
        for choice in data.get("choices") or ():
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), list):
                delta["content"] = "".join(
                    part.get("text") or ""
                    for part in delta["content"]
                    if isinstance(part, dict) and part.get("type") == "text"
                )
        return chat_chunk(data, self.name)


def api_base(host: str, model: str) -> str:
    """Where the OpenAI-style routes live: the AI Gateway for a Unity Catalog name
    (catalog.schema.model), else the workspace's serving endpoints."""
    if model.count(".") >= 2:
        return f"{host}{AI_GATEWAY}"
    return host if SERVING_ENDPOINTS in host else f"{host}{SERVING_ENDPOINTS}"


def kept_content(content: Any) -> Any:
    """Text, image and audio parts only; an all-text list becomes one newline-joined string."""
    if not isinstance(content, list):
        return content
    parts = [part for part in content if isinstance(part, dict) and part.get("type") in KEPT_PARTS]
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part.get("text") or "" for part in parts)
    return parts


class OAuthToken:
    """An OAuth M2M access token, fetched on first use and refreshed shortly before it expires."""

    def __init__(self, provider: DatabricksProvider, host: str, client_id: str, client_secret: str) -> None:
        self.provider = provider
        self.url = f"{host}/oidc/v1/token"
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self.token = ""
        self.expires_at = 0.0
        self.lock = asyncio.Lock()

    async def get(self) -> str:
        if time.monotonic() < self.expires_at:
            return self.token
        async with self.lock:  # concurrent requests share one refresh
            if time.monotonic() >= self.expires_at:
                await self.refresh()
        return self.token

    async def refresh(self) -> None:
        label = self.provider.label()
        response = await self.provider.client.post(self.url, self.headers, TOKEN_FORM, label)
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            data = None
        if response.status != 200 or not isinstance(data, dict) or not data.get("access_token"):
            reason = response.reason
            if isinstance(data, dict):
                reason = str(data.get("error_description") or data.get("error") or reason)
            raise UpstreamUnavailable(
                f"{label} could not get a Databricks OAuth token (HTTP {response.status}): {reason}"
            )
        lifetime = float(data.get("expires_in") or 3600)
        self.token = str(data["access_token"])
        self.expires_at = time.monotonic() + lifetime - REFRESH_MARGIN_SECONDS
