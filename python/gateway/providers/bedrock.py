"""Amazon Bedrock (`bedrock`, `amazon-bedrock`; spec §7.10) over the Bedrock Runtime HTTP API.

* chat and completions: Converse (`/model/{id}/converse`), streamed with ConverseStream
  (`/converse-stream`, AWS event-stream frames decoded by the Rust `EventStreamParser`);
  a completions prompt is one user turn (MLflow used per-family InvokeModel bodies);
* embeddings: InvokeModel (`/model/{id}/invoke`), Cohere's `{"texts", "input_type"}` for Cohere
  models and Titan's `{"inputText"}`, one call per input, for the rest.

Requests go through the shared upstream client; `authorize` signs the exact body bytes with
botocore's SigV4 (or sends the bearer key). See bedrock_auth.py and bedrock_converse.py.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from gateway._native import EventStreamError, EventStreamParser, ParamScaler, ScalingError
from gateway.errors import ConfigError, GatewayError, InvalidParameter, UpstreamError, UpstreamUnavailable
from gateway.providers.base import (
    MODEL_NOT_PERMITTED,
    HttpProvider,
    ProviderConfig,
    UpstreamRequest,
    upstream_json_error,
)
from gateway.providers.bedrock_auth import (
    BEARER_REGION_REQUIRED,
    BedrockAuth,
    parse_aws_config,
    resolve_region,
    runtime_endpoint,
)
from gateway.providers.bedrock_converse import (
    ConverseStreamTranslator,
    chat_response,
    completions_response,
    converse_request,
    stream_exception,
)
from gateway.schemas.responses import (
    ChatResponse,
    CompletionsResponse,
    EmbeddingItem,
    EmbeddingsResponse,
    Response,
)
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

EVENT_STREAM = "application/vnd.amazon.eventstream"
T = TypeVar("T")
# MLflow's completions temperature scaling for the families whose native range is 0-1
COMPLETION_SCALERS = {
    family: ParamScaler([{"field": "temperature", "scale": 0.5}]) for family in ("amazon", "anthropic")
}
# Titan embeds one text per call and Converse returns one choice: the calls a single request
# fans out to run at most this many at a time
FANOUT_CONCURRENCY = 8


class BedrockConfig(ProviderConfig):
    aws_config: dict[str, Any]


class BedrockProvider(HttpProvider):
    display_name = "Amazon Bedrock"
    config_type = BedrockConfig
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    stream_content_types = (EVENT_STREAM,)
    translator = ConverseStreamTranslator

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        settings = parse_aws_config(config.aws_config)
        if resolve_region(settings) is None:
            if settings.mode == "bearer":
                raise ConfigError(BEARER_REGION_REQUIRED)
            raise ConfigError(
                "aws_config.aws_region: no AWS region: set aws_region, AWS_REGION or AWS_DEFAULT_REGION, "
                "or a region in the AWS config file"
            )
        if not model_name:
            raise ConfigError("Amazon Bedrock endpoints need the model id (or an ARN) as model.name")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        settings = parse_aws_config(self.config.aws_config)
        region = resolve_region(settings) or "us-east-1"  # checked at load; the env may not change
        self.auth = BedrockAuth(settings, region)
        model = self.model or ""
        # ':' stays literal and '/' (ARNs) becomes %2F: both HTTP clients send such a path
        # unchanged, and SigV4 signs the path exactly as sent
        prefix = f"{runtime_endpoint(region)}/model/{quote(model, safe=':')}"
        self.converse_url = f"{prefix}/converse"
        self.stream_url = f"{prefix}/converse-stream"
        self.invoke_url = f"{prefix}/invoke"
        self.json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self.stream_headers = {"Content-Type": "application/json", "Accept": EVENT_STREAM}
        lowered = model.lower()
        self.family = next((f for f in ("amazon", "cohere", "ai21", "anthropic") if f in lowered), None)
        self.cohere_embeddings = "cohere" in lowered

    # -- hooks ---------------------------------------------------------------------------
    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if payload.get("n", 1) != 1:  # only streams get here with n: `invoke` fans out
            raise InvalidParameter("Amazon Bedrock streams one choice: 'n' must be 1 when streaming.")
        scaler = COMPLETION_SCALERS.get(self.family or "") if kind == COMPLETIONS else None
        if scaler is not None:
            try:
                scaler.apply(payload)
            except ScalingError as exc:
                raise InvalidParameter(str(exc)) from None
        body = converse_request(payload, self.model or "")
        if stream:
            return UpstreamRequest(self.stream_url, self.stream_headers, body)
        return UpstreamRequest(self.converse_url, self.json_headers, body)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == CHAT:
            return chat_response(data, self.model or "", self.name)
        return completions_response(data, self.model or "")

    async def authorize(self, request: UpstreamRequest, body: bytes) -> dict[str, str]:
        return await self.auth.headers(request.url, request.headers, body, self.label())

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        """Bedrock answers errors as `{"message": ...}` (typed by x-amzn-ErrorType)."""
        if isinstance(data, dict):
            message = data.get("message") or data.get("Message")
            if isinstance(message, str):
                return UpstreamError(message, status=status)
        return upstream_json_error(status, reason, data)

    async def decode_stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[list[tuple[str, Any]]]:
        """AWS event-stream frames -> (`:event-type`, JSON payload); an exception frame ends the
        stream with its error, after the events that preceded it."""
        parser = EventStreamParser()
        async for chunk in chunks:
            try:
                messages = parser.feed(chunk)
            except EventStreamError as exc:
                raise UpstreamUnavailable(f"Malformed event stream from {self.label()}: {exc}") from None
            batch: list[tuple[str, Any]] = []
            for headers, payload in messages:
                if headers.get(":message-type", "event") != "event":
                    if batch:
                        yield batch
                    raise stream_exception(headers, payload)
                batch.append((headers.get(":event-type", ""), orjson.loads(payload) if payload else {}))
            if batch:
                yield batch
        if parser.buffered():
            raise UpstreamUnavailable(f"{self.label()} ended the event stream mid-message.")

    # -- n > 1 and embeddings ------------------------------------------------------------
    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        if kind == EMBEDDINGS:
            return await self.embed(payload)
        n = payload.get("n") or 1
        single = {key: value for key, value in payload.items() if key != "n"}
        if n == 1:
            return await HttpProvider.invoke(self, kind, single)
        # Converse returns one choice: n choices are n calls (MLflow dropped n)
        answers = await fan_out([lambda: HttpProvider.invoke(self, kind, single)] * n)
        return merge_choices(answers)

    async def embed(self, payload: Payload) -> EmbeddingsResponse:
        if payload.get("model") is not None:
            raise InvalidParameter(MODEL_NOT_PERMITTED)
        texts = embedding_texts(payload["input"])
        if self.cohere_embeddings:
            body: Payload = {"texts": texts, "input_type": payload.get("input_type") or "search_document"}
            if payload.get("truncate") is not None:
                body["truncate"] = payload["truncate"]
            answers = [await self.call_json(self.invoke_url, body)]
        else:
            answers = await fan_out(
                [partial(self.call_json, self.invoke_url, titan_body(text, payload)) for text in texts]
            )
        try:
            return embeddings_response(answers, self.model or "", payload.get("encoding_format"))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise UpstreamUnavailable(
                f"Malformed response from {self.label()}: {type(exc).__name__}: {exc}"
            ) from None

    async def call_json(self, url: str, body: Payload) -> Payload:
        request = UpstreamRequest(url, self.json_headers, body)
        raw = self.encode_body(body)
        headers = await self.authorize(request, raw)
        response = await self.client.post(url, headers, raw, self.label())
        return self.answer(response, response.body)


async def fan_out(calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls concurrently, at most FANOUT_CONCURRENCY at a time, results in order."""
    limit = asyncio.Semaphore(FANOUT_CONCURRENCY)

    async def bounded(call: Callable[[], Awaitable[T]]) -> T:
        async with limit:
            return await call()

    return list(await asyncio.gather(*(bounded(call) for call in calls)))


def merge_choices(answers: list[Response]) -> Response:
    """n single-choice answers -> one answer with n choices; usage summed (each call is billed)."""
    first = answers[0]
    choices: list[Any] = []
    for index, answer in enumerate(answers):
        if isinstance(answer, ChatResponse | CompletionsResponse):
            choice = answer.choices[0]
            choice.index = index
            choices.append(choice)
    if isinstance(first, ChatResponse | CompletionsResponse):
        first.choices = choices
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        counts = [a.usage.get(key) for a in answers if a.usage.get(key) is not None]
        first.usage[key] = sum(counts) if counts else None
    # the cache counts too, or every call after the first would be priced as fresh input
    writes = [a.usage.get("cache_creation_input_tokens") or 0 for a in answers]
    if any(writes):
        first.usage["cache_creation_input_tokens"] = sum(writes)
    reads = [(a.usage.get("prompt_tokens_details") or {}).get("cached_tokens") for a in answers]
    if any(read is not None for read in reads):
        first.usage["prompt_tokens_details"] = {"cached_tokens": sum(read or 0 for read in reads)}
    return first


def embedding_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise InvalidParameter("Amazon Bedrock embeddings take text input, not token arrays.")


def titan_body(text: str, payload: Payload) -> Payload:
    body: Payload = {"inputText": text}
    for key in ("dimensions", "normalize"):  # Titan v2 options, under their OpenAI/Titan names
        if payload.get(key) is not None:
            body[key] = payload[key]
    return body


def embeddings_response(answers: list[Payload], model: str, encoding: Any) -> EmbeddingsResponse:
    vectors: list[list[float]] = []
    tokens: int | None = None
    for answer in answers:
        if "embedding" in answer:  # Titan: one vector and its token count
            vectors.append(answer["embedding"])
            tokens = (tokens or 0) + int(answer.get("inputTextTokenCount") or 0)
        else:  # Cohere: every vector, floats by default or under "float" when typed
            found = answer["embeddings"]
            vectors.extend(found["float"] if isinstance(found, dict) else found)
    data = [
        EmbeddingItem(embedding=_base64(vector) if encoding == "base64" else vector, index=index)
        for index, vector in enumerate(vectors)
    ]
    # Cohere's body carries no token count (Bedrock sends it in a response header)
    return EmbeddingsResponse(data=data, model=model, usage={"prompt_tokens": tokens, "total_tokens": tokens})


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
