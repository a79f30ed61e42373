"""The provider protocol: one small class per provider.

A provider object serves one endpoint. It is built once per config load (in every worker) and
called per request with the client's JSON payload (a dict, already validated). Two kinds:

* `Provider`: answers by itself (the built-in mock);
* `HttpProvider`: translates to an upstream HTTP API through three hooks, `build_request`,
  `parse_response` and `parse_chunk`, plus per-endpoint-type parameter-scaling rules that run in
  the Rust `ParamScaler`. The upstream call, error mapping and SSE relay are shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import orjson

from gateway._native import ParamScaler, ScalingError
from gateway.errors import (
    GatewayError,
    InvalidParameter,
    NotImplementedByProvider,
    RequestValidationError,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.providers.openai_shapes import embeddings_from_bytes
from gateway.proxy.limits import ResponseTooLarge
from gateway.proxy.streaming import sse_events
from gateway.schemas.responses import Chunk, Response
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

if TYPE_CHECKING:
    from gateway.config import EndpointConfig
    from gateway.proxy.upstream import Transport, UpstreamResponse, UpstreamStream

ROUTE_WORD = {CHAT: "chat", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}
MODEL_NOT_PERMITTED = (
    "The parameter 'model' is not permitted to be passed. The route being queried already "
    "defines a model instance."
)


class ProviderConfig(msgspec.Struct, kw_only=True):
    """Base of provider config classes; unknown keys are ignored as MLflow does."""


class Provider:
    display_name: ClassVar[str] = ""
    config_type: ClassVar[type[ProviderConfig]] = ProviderConfig
    # config fields resolved as `$VAR` / key file / literal
    secret_fields: ClassVar[tuple[str, ...]] = ()
    endpoint_types: ClassVar[frozenset[EndpointType]] = frozenset()
    streaming_types: ClassVar[frozenset[EndpointType]] = frozenset()
    # whether the upstream takes a completions `prompt` list (several prompts, token arrays)
    # itself; otherwise the gateway answers one prompt per call (providers/prompts.py)
    native_prompt_lists: ClassVar[bool] = False

    def __init__(self, endpoint: EndpointConfig, client: Transport) -> None:
        self.endpoint = endpoint
        self.name = endpoint.provider
        self.model = endpoint.model_name
        self.config: Any = endpoint.provider_config
        self.client = client

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        """Cross-field checks at load time; raise ConfigError with the reason."""

    @classmethod
    def unavailable(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> str | None:
        """Why an endpoint that MLflow loads cannot be served here: the message every call gets
        with a 501 (the config still loads, with a warning). None when it can be served."""
        if endpoint_type not in cls.endpoint_types:
            return f"The {ROUTE_WORD[endpoint_type]} route is not implemented for {cls.display_name} models."
        return None

    # -- called per request -------------------------------------------------------------
    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        raise self.unsupported(kind)

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        """Start a stream. Errors known before the first event are raised here, so the client
        gets a real status; the iterator yields batches of standard chunks."""
        raise NotImplementedByProvider(
            f"Streaming is not supported for {self.display_name} {ROUTE_WORD[kind]} endpoints."
        )

    def unsupported(self, kind: EndpointType) -> NotImplementedByProvider:
        return NotImplementedByProvider(
            f"The {ROUTE_WORD[kind]} route is not implemented for {self.display_name} models."
        )

    def label(self) -> str:
        return f"endpoint '{self.endpoint.name}' (provider {self.name})"


class UnavailableProvider(Provider):
    """Stands in for the provider of an endpoint that loads but cannot be served (see
    `Provider.unavailable`): every call answers 501 with the reason, streams before they start."""

    def __init__(self, endpoint: EndpointConfig, client: Transport) -> None:
        super().__init__(endpoint, client)
        from gateway.providers import provider_class

        self.display_name = provider_class(endpoint.provider).display_name  # type: ignore[misc]
        self.reason = endpoint.unavailable or self.unsupported(endpoint.endpoint_type).message

    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        raise NotImplementedByProvider(self.reason)

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        raise NotImplementedByProvider(self.reason)


class UpstreamRequest(msgspec.Struct):
    url: str
    headers: dict[str, str]
    body: Payload


class StreamTranslator:
    """Per-stream state: the provider's events in, standard chunks out.

    The default hands each event's JSON to `HttpProvider.parse_chunk`; providers whose streams
    carry state across events (Anthropic's content blocks, tool-call indices, ...) subclass it.
    """

    def __init__(self, provider: HttpProvider, kind: EndpointType) -> None:
        self.provider = provider
        self.kind = kind

    def event(self, name: str, data: Any) -> list[Chunk]:
        chunk = self.provider.parse_chunk(self.kind, data)
        return [chunk] if chunk is not None else []

    def finish(self) -> list[Chunk]:
        """Called once the upstream stream ends normally."""
        return []


class HttpProvider(Provider):
    # rules for the Rust ParamScaler, per endpoint type (see gateway._native.ParamScaler)
    scaling_rules: ClassVar[Mapping[EndpointType, list[dict[str, Any]]]] = {}
    # TogetherAI-style providers let the client pick the model; most refuse it
    allows_model_override: ClassVar[bool] = False
    # embeddings answered in OpenAI's shape: decoded from the bytes, vectors kept as sent (only
    # for the class that declares it; msgspec encodes the Raw vectors, orjson could not)
    openai_embeddings: ClassVar[bool] = False
    stream_content_types: ClassVar[tuple[str, ...]] = ("text/event-stream",)
    translator: ClassVar[type[StreamTranslator]] = StreamTranslator

    _scalers: ClassVar[dict[EndpointType, ParamScaler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # build the native scalers once per provider class, not per request
        cls._scalers = {kind: ParamScaler(rules) for kind, rules in cls.scaling_rules.items() if rules}

    # -- hooks ---------------------------------------------------------------------------
    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        raise NotImplementedError

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        raise NotImplementedError

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        raise NotImplementedError

    async def authorize(self, request: UpstreamRequest, body: bytes) -> dict[str, str]:
        """Final headers for a request (request signing, refreshed OAuth tokens, ...)."""
        return request.headers

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        """An error answer from the upstream, as the client will see it (spec §5.1)."""
        return upstream_json_error(status, reason, data)

    def encode_body(self, body: Payload) -> bytes:
        return orjson.dumps(body)

    def decode_stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[list[tuple[str, Any]]]:
        """How the upstream frames a stream: raw bytes to batches of (event name, JSON)."""
        return sse_events(chunks)

    # -- shared pipeline -----------------------------------------------------------------
    def prepare(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind not in self.endpoint_types:
            raise self.unsupported(kind)
        if stream and kind not in self.streaming_types:
            raise NotImplementedByProvider(
                f"Streaming is not supported for {self.display_name} {ROUTE_WORD[kind]} endpoints."
            )
        if payload.get("model") is not None and not self.allows_model_override:
            raise InvalidParameter(MODEL_NOT_PERMITTED)
        body = {key: value for key, value in payload.items() if value is not None}
        scaler = self._scalers.get(kind)
        if scaler is not None:
            try:
                scaler.apply(body)
            except ScalingError as exc:
                raise InvalidParameter(str(exc)) from None
        return self.build_request(kind, body, stream)

    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        request = self.prepare(kind, payload, stream=False)
        body = self.encode_body(request.body)
        headers = await self.authorize(request, body)
        response = await self.client.post(request.url, headers, body, self.label())
        # declared by the class itself: a subclass (a plugin) may parse its answers otherwise
        if kind == EMBEDDINGS and response.status == 200 and type(self).__dict__.get("openai_embeddings"):
            fast = embeddings_from_bytes(response.body) if "json" in response.content_type else None
            if fast is not None:
                return fast
        data = self.answer(response, response.body)
        try:
            return self.parse_response(kind, data)
        except GatewayError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise UpstreamUnavailable(
                f"Malformed response from {self.label()}: {type(exc).__name__}: {exc}"
            ) from None

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        stream = await self.open_upstream_stream(kind, payload)
        return self._relay(self.translator(self, kind), stream)

    async def open_upstream_stream(self, kind: EndpointType, payload: Payload) -> UpstreamStream:
        """The upstream's event stream, opened: an answer that is not one is an error here."""
        request = self.prepare(kind, payload, stream=True)
        body = self.encode_body(request.body)
        headers = await self.authorize(request, body)
        stream = await self.client.stream(request.url, headers, body, self.label())
        if stream.status >= 400 or not any(t in stream.content_type for t in self.stream_content_types):
            raw = await stream.read_all()
            # an upstream that answers a stream request with plain JSON is an error or a
            # provider that cannot stream: either way the client gets a real status
            data = self.answer(stream, raw)
            raise UpstreamUnavailable(
                f"{self.label()} did not return an event stream: {orjson.dumps(data).decode()[:500]}"
            )
        return stream

    async def _relay(self, translator: StreamTranslator, stream: Any) -> AsyncIterator[list[Chunk]]:
        clean = False
        produced = False
        reads = stream.iter_chunks()
        try:
            async for events in self.decode_stream(reads):
                batch: list[Chunk] = []
                try:
                    for name, data in events:
                        batch.extend(translator.event(name, data))
                except Exception:
                    # events that arrived in the same read as a failing one still reach the client
                    if batch:
                        yield batch
                    raise
                if batch:
                    produced = True
                    yield batch
            tail = translator.finish()
            if tail:
                produced = True
                yield tail
            if not produced:
                raise UpstreamUnavailable(f"{self.label()} ended its stream without sending any event.")
            clean = True
        except STREAM_FAULTS as exc:
            raise stream_failure(self.label(), exc) from None
        finally:
            await reads.aclose()  # its idle timer; the decoder may have stopped at [DONE]
            await end_stream(stream, clean)

    def answer(self, response: UpstreamResponse | UpstreamStream, body: bytes) -> Payload:
        """`decode`, with the upstream's back-off headers kept on its errors and a server-side
        failure naming the endpoint and provider."""
        try:
            return self.decode(response.status, response.content_type, response.reason, body)
        except UpstreamError as exc:
            exc.from_upstream(response.headers, self.label(), response.status)
            raise

    def decode(self, status: int, content_type: str, reason: str, body: bytes) -> Payload:
        """Decode an upstream answer or raise the error MLflow's clients expect (spec §5.1)."""
        if "json" in content_type or (not content_type and body[:1] in (b"{", b"[")):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise UpstreamUnavailable(f"Malformed JSON in the response from {self.label()}.") from None
            if status >= 400:
                raise self.upstream_error(status, reason, data)
            if not isinstance(data, dict):
                raise UpstreamUnavailable(f"Unexpected response from {self.label()}: not a JSON object.")
            return data
        if "text/plain" in content_type:
            text = body.decode("utf-8", "replace")
            if status >= 400:
                raise UpstreamError({"message": text}, status=status)
            raise UpstreamUnavailable(f"Unexpected text response from {self.label()}: {text[:200]}")
        raise UpstreamUnavailable(
            "The returned data type from the route service is not supported. "
            f"Received content type: {content_type or None}"
        )


_BACKGROUND: set[asyncio.Task[None]] = set()


# what a malformed or oversized stream event raises while it is read or translated
STREAM_FAULTS = (ResponseTooLarge, KeyError, TypeError, ValueError, IndexError, AttributeError)


def stream_failure(label: str, exc: Exception) -> UpstreamUnavailable:
    if isinstance(exc, ResponseTooLarge):  # an SSE event over GATEWAY_MAX_STREAM_EVENT_BYTES
        return UpstreamUnavailable(f"{label} {exc}")
    return UpstreamUnavailable(f"Malformed stream event from {label}: {type(exc).__name__}: {exc}")


async def end_stream(stream: UpstreamStream, clean: bool) -> None:
    """A stream that ended by its own marker keeps its upstream connection alive: at once when
    the HTTP framing was read with the last event (usually), else by reading the rest in the
    background (the client's [DONE] must not wait for it). Any other end lets it go."""
    if not clean:
        stream.release()
    elif not await stream.release_if_complete():
        _background(stream.drain())


def _background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_BACKGROUND.discard)


def upstream_json_error(status: int, reason: str, data: Any) -> UpstreamError:
    if isinstance(data, dict) and "error" in data:
        error = data["error"]
        if isinstance(error, dict):
            message = error.get("message")
            return UpstreamError(message if isinstance(message, str) else reason, status=status)
        return UpstreamError(str(error), status=status)
    return UpstreamError(data, status=status)


def json_schema_of(response_format: dict[str, Any]) -> dict[str, Any]:
    """The `json_schema` object of a `{"type": "json_schema"}` response_format, required there."""
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise invalid_field(("response_format", "json_schema"), "Field required", spec, "missing")
    return spec


def invalid_field(
    loc: tuple[str | int, ...], msg: str, value: Any, kind: str = "value_error"
) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}])
