"""LiteLLM (spec §7.16): any provider LiteLLM supports, called through the `litellm` package.

An optional extra: `pip install 'gateway[litellm]'`. Without it the config still loads (with a
warning) and every call answers 501 saying so; MLflow fails at start-up instead.

config: `litellm_provider` (optional; the model string is `"{litellm_provider}/{name}"`, or
just the name) and `litellm_auth_config` (optional mapping merged into every call's kwargs, e.g.
`api_key`, `api_base`, `api_version`, AWS or Vertex settings). Its `api_key` is resolved as
`$VAR` / key file / literal, an `auth_mode` key is dropped, and for `litellm_provider:
databricks` the `api_base` gets `/serving-endpoints` appended unless it already has it, all as
MLflow does.

Per call the kwargs are the client's payload (nulls dropped) with the model first, then the auth
config on top. A request that sets `api_base`, `base_url`, `model_list`, `fallbacks` or
`custom_llm_provider` is refused with 400: the destination is the configuration's to choose.
Chat uses `litellm.acompletion` (streams always with `stream_options.include_usage`, so usage
reaches the limits and the usage record; the client sees the usage chunk when it asked), embeddings
`litellm.aembedding`; completions answer MLflow's 501. LiteLLM's errors keep the status LiteLLM
gives them (`status_code`, e.g. 401, 429); its timeouts are 504, anything else 502, and the
configured secrets are masked in every message. The gateway's route timeout bounds each call
and each wait for a stream chunk.

`litellm` is imported when the provider object is built, in a worker (never at config parse, so
not in the supervisor), once per process, with `LITELLM_LOCAL_MODEL_COST_MAP=True` so that it
never fetches its model cost map from the network. The import takes seconds: a config reload
that adds the first LiteLLM endpoint of a worker holds that worker for as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

from gateway.errors import (
    BadRequest,
    ConfigError,
    GatewayError,
    InvalidParameter,
    NotImplementedByProvider,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.base import MODEL_NOT_PERMITTED, Provider, ProviderConfig
from gateway.providers.openai_shapes import with_usage
from gateway.schemas.responses import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatDelta,
    ChatMessageOut,
    ChatResponse,
    Chunk,
    EmbeddingItem,
    EmbeddingsResponse,
    Response,
)
from gateway.secrets import resolve_secret
from gateway.types import CHAT, EMBEDDINGS, EndpointType, Payload

logger = logging.getLogger("gateway.providers.litellm")

NOT_INSTALLED = (
    "The LiteLLM provider needs the `litellm` package, which is not installed on this gateway. "
    "Install it with: pip install 'gateway[litellm]'"
)
# request keys that would let a client pick where LiteLLM sends the call (MLflow refuses them)
DESTINATION_KEYS = frozenset(("api_base", "base_url", "model_list", "fallbacks", "custom_llm_provider"))
# auth-config keys whose values are masked in error messages
SECRET_KEY = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)
SERVING_ENDPOINTS = "/serving-endpoints"
MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError)
T = TypeVar("T")


class LiteLLMConfig(ProviderConfig):
    litellm_provider: str | None = None
    litellm_auth_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.litellm_auth_config is None:
            return
        auth = dict(self.litellm_auth_config)
        auth.pop("auth_mode", None)  # MLflow's own setting, unknown to LiteLLM
        if isinstance(auth.get("api_key"), str):
            try:
                auth["api_key"] = resolve_secret(auth["api_key"])
            except ConfigError as exc:
                raise ConfigError(f"model.config.litellm_auth_config.api_key: {exc}") from None
        base = auth.get("api_base")
        if self.litellm_provider == "databricks" and isinstance(base, str) and base:
            base = base.rstrip("/")
            auth["api_base"] = base if SERVING_ENDPOINTS in base else base + SERVING_ENDPOINTS
        self.litellm_auth_config = auth


_LITELLM: ModuleType | None = None


def load_litellm() -> ModuleType:
    """The `litellm` module, imported on first use in this process."""
    global _LITELLM
    if _LITELLM is None:
        # read by litellm at import: use the cost map it ships, never fetch one
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        module = importlib.import_module("litellm")
        if "LITELLM_LOG" not in os.environ:
            # LiteLLM logs every call at INFO: keep its warnings and errors only, unless the
            # operator asked for its logs
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
                logging.getLogger(name).setLevel(logging.WARNING)
        setattr(module, "suppress_debug_info", True)  # noqa: B010 (no "Give Feedback" banners)
        _LITELLM = module
    return _LITELLM


class LiteLLMProvider(Provider):
    display_name = "LiteLLM"
    config_type = LiteLLMConfig
    endpoint_types = frozenset((CHAT, EMBEDDINGS))
    streaming_types = frozenset((CHAT,))

    @classmethod
    def unavailable(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> str | None:
        reason = super().unavailable(config, model_name, endpoint_type)
        if reason is None and importlib.util.find_spec("litellm") is None:
            return NOT_INSTALLED
        return reason

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: LiteLLMConfig = self.config
        name = self.model or ""
        self.model_string = f"{config.litellm_provider}/{name}" if config.litellm_provider else name
        self.auth: dict[str, Any] = dict(config.litellm_auth_config or {})
        self.secrets = sorted(
            (str(v) for k, v in self.auth.items() if SECRET_KEY.search(k) and len(str(v)) >= 4),
            key=len,
            reverse=True,
        )
        self.timeout: float | None = getattr(self.client, "timeout_seconds", None)
        self.litellm: ModuleType | None = None
        self.import_error: str | None = None
        try:
            self.litellm = load_litellm()
        except Exception as exc:  # a broken install: this endpoint fails, the others serve
            self.import_error = f"The `litellm` package could not be imported: {type(exc).__name__}: {exc}"
            logger.error("%s: %s", self.label(), self.import_error)

    # -- called per request -------------------------------------------------------------
    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        litellm, kwargs = self._prepare(kind, payload)
        if kind == EMBEDDINGS:
            result = await self._call(litellm.aembedding, kwargs)
            return self._built(self._embeddings_response, result)
        result = await self._call(litellm.acompletion, kwargs)
        return self._built(self._chat_response, result)

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        if kind not in self.streaming_types:
            return await super().open_stream(kind, payload)
        litellm, kwargs = self._prepare(kind, payload)
        kwargs["stream"] = True
        kwargs["stream_options"] = with_usage(kwargs.get("stream_options"))
        # errors LiteLLM knows before the first chunk (auth, rate limits, ...) are raised here
        stream = await self._call(litellm.acompletion, kwargs)
        return self._relay(stream)

    # -- helpers -------------------------------------------------------------------------
    def _prepare(self, kind: EndpointType, payload: Payload) -> tuple[Any, dict[str, Any]]:
        if kind not in self.endpoint_types:
            raise self.unsupported(kind)
        if self.litellm is None:
            raise NotImplementedByProvider(self.import_error or NOT_INSTALLED)
        if payload.get("model") is not None:
            raise InvalidParameter(MODEL_NOT_PERMITTED)
        body = {key: value for key, value in payload.items() if value is not None and key != "model"}
        fixed = sorted(DESTINATION_KEYS & body.keys())
        if fixed:
            raise BadRequest(
                f"The request must not set {', '.join(map(repr, fixed))}: the upstream destination "
                "is fixed by the endpoint configuration."
            )
        return self.litellm, {"model": self.model_string, **body, **self.auth}

    async def _call(self, function: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await function(**kwargs)
        except TimeoutError:
            raise self._timed_out("did not answer within") from None
        except GatewayError:
            raise
        except Exception as exc:
            raise self._error(exc) from None

    async def _relay(self, stream: Any) -> AsyncIterator[list[Chunk]]:
        try:
            chunks = aiter(stream)
            while True:
                try:
                    async with asyncio.timeout(self.timeout):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                yield [self._built(self._chat_chunk, chunk)]
        except TimeoutError:
            raise self._timed_out("stopped sending for") from None
        except GatewayError:
            raise
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _timed_out(self, waited: str) -> UpstreamTimeout:
        if self.timeout is None:  # a TimeoutError of LiteLLM's own
            return UpstreamTimeout(f"{self.label()} timed out.")
        return UpstreamTimeout(f"{self.label()} {waited} {self.timeout:g}s.")

    def _error(self, exc: Exception) -> GatewayError:
        """A LiteLLM exception as the client sees it, with the configured secrets masked."""
        message = self._masked(str(exc) or type(exc).__name__)
        litellm = self.litellm
        if litellm is not None and isinstance(exc, litellm.Timeout):
            return UpstreamTimeout(f"{self.label()} timed out: {message}")
        status = getattr(exc, "status_code", None)
        connection = litellm is not None and isinstance(exc, litellm.APIConnectionError)
        if isinstance(status, int) and 400 <= status <= 599 and not connection:
            return UpstreamError(message, status=status)
        return UpstreamUnavailable(f"{self.label()} failed: {message}")

    def _masked(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _built(self, build: Callable[[Any], T], result: Any) -> T:
        try:
            return build(result)
        except MALFORMED as exc:
            raise UpstreamUnavailable(
                f"Malformed response from {self.label()}: {type(exc).__name__}: {self._masked(str(exc))}"
            ) from None

    def _chat_response(self, result: Any) -> ChatResponse:
        choices = []
        for position, choice in enumerate(result.choices):
            message = choice.message
            calls = getattr(message, "tool_calls", None)
            out = ChatMessageOut(
                role=getattr(message, "role", None) or "assistant",
                content=getattr(message, "content", None),
                tool_calls=[_tool_call(call) for call in calls] if calls else None,
            )
            index = getattr(choice, "index", None)
            choices.append(
                ChatChoice(
                    index=index if isinstance(index, int) else position,
                    message=out,
                    finish_reason=getattr(choice, "finish_reason", None),
                )
            )
        return ChatResponse(
            id=getattr(result, "id", None),
            created=int(result.created),
            model=str(result.model),
            choices=choices,
            usage=_usage(getattr(result, "usage", None)),
            provider=self.name,
        )

    def _chat_chunk(self, chunk: Any) -> ChatChunk:
        choices = []
        for position, choice in enumerate(getattr(chunk, "choices", None) or ()):
            delta = getattr(choice, "delta", None)
            calls = getattr(delta, "tool_calls", None)
            index = getattr(choice, "index", None)
            choices.append(
                ChatChunkChoice(
                    index=index if isinstance(index, int) else position,
                    finish_reason=getattr(choice, "finish_reason", None),
                    delta=ChatDelta(
                        role=getattr(delta, "role", None),
                        content=getattr(delta, "content", None),
                        tool_calls=[_tool_call_delta(call, i) for i, call in enumerate(calls)]
                        if calls
                        else None,
                    ),
                )
            )
        usage = getattr(chunk, "usage", None)
        # LiteLLM reports usage on the last chunk only (asked for with include_usage)
        with_usage = usage is not None and getattr(usage, "total_tokens", None) is not None
        created = getattr(chunk, "created", None)
        model = getattr(chunk, "model", None)
        return ChatChunk(
            id=getattr(chunk, "id", None),
            created=int(created) if created is not None else None,
            model=str(model) if model is not None else None,
            choices=choices,
            usage=_usage(usage) if with_usage else None,
            provider=self.name,
        )

    def _embeddings_response(self, result: Any) -> EmbeddingsResponse:
        usage = getattr(result, "usage", None)
        return EmbeddingsResponse(
            data=[
                EmbeddingItem(embedding=_field(item, "embedding"), index=index)
                for index, item in enumerate(result.data)
            ],
            model=str(result.model),
            usage={
                "prompt_tokens": getattr(usage, "prompt_tokens", None),
                "total_tokens": getattr(usage, "total_tokens", None),
            },
        )


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _usage(usage: Any) -> Payload:
    """OpenAI's usage shape, with the prompt-cache hits (`cached_tokens`, part of prompt_tokens)
    when the provider reports them."""
    out: Payload = {
        "prompt_tokens": getattr(usage, "prompt_tokens", None),
        "completion_tokens": getattr(usage, "completion_tokens", None),
        "total_tokens": getattr(usage, "total_tokens", None),
    }
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _tool_call(call: Any) -> Payload:
    function = getattr(call, "function", None)
    return {
        "id": getattr(call, "id", None),
        "type": getattr(call, "type", None) or "function",
        "function": {
            "name": getattr(function, "name", None),
            "arguments": getattr(function, "arguments", None),
        },
    }


def _tool_call_delta(call: Any, position: int) -> Payload:
    function = getattr(call, "function", None)
    index = getattr(call, "index", None)
    return {
        "index": index if isinstance(index, int) else position,
        "id": getattr(call, "id", None),
        "type": getattr(call, "type", None),
        "function": {
            "name": getattr(function, "name", None),
            "arguments": getattr(function, "arguments", None),
        },
    }
