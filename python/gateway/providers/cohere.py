"""Cohere (spec §7.3), spoken over Cohere's current v2 API.

MLflow targets the retired v1 API (`/v1/chat` with `chat_history`, `/v1/generate`, NDJSON
streams). The config is unchanged (`cohere_api_key`) and this module speaks v2 instead:
chat and completions (the prompt as one user message) go to `POST {base}/chat`, whose stream is
SSE (`message-start`, `content-delta`, `tool-call-*`, `message-end`); embeddings go to
`POST {base}/embed` with `embedding_types: ["float"]`. MLflow's temperature scaling (×2.5 when
non-zero: v2 still documents a 0-5 range after v1) and its request checks are kept; finish
reasons are mapped to OpenAI's (`COMPLETE` -> `stop`), in streams too, where MLflow leaks them raw.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import BadRequest, GatewayError, InvalidParameter, UpstreamError, UpstreamUnavailable
from gateway.providers.base import (
    ROUTE_WORD,
    HttpProvider,
    ProviderConfig,
    StreamTranslator,
    UpstreamRequest,
    upstream_json_error,
)
from gateway.schemas.responses import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatDelta,
    ChatMessageOut,
    ChatResponse,
    Chunk,
    CompletionsChoice,
    CompletionsChunk,
    CompletionsChunkChoice,
    CompletionsResponse,
    EmbeddingItem,
    EmbeddingsResponse,
    Response,
)
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
# v2 names for OpenAI's sampling fields; temperature keeps MLflow's ×2.5 (0-2 -> Cohere's 0-5)
TEXT_RULES: list[dict[str, Any]] = [
    {"field": "temperature", "scale": 2.5, "only_nonzero": True},
    {"field": "max_tokens", "fallback": "max_completion_tokens"},
    {"field": "max_completion_tokens", "drop": True},
    {"field": "stop", "rename": "stop_sequences"},
    {"field": "top_p", "rename": "p"},
    {"field": "top_k", "rename": "k"},
    {"field": "n", "drop": True},
    {"field": "stream_options", "drop": True},
]
EMBEDDING_RULES: list[dict[str, Any]] = [
    {"field": "dimensions", "rename": "output_dimension"},
    {"field": "encoding_format", "drop": True},  # floats are asked for; every client reads them
]
# the message keys v2 knows; `name` and `refusal` have no v2 equivalent
MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "tool_plan")


class CohereConfig(ProviderConfig):
    cohere_api_key: str
    # not in MLflow (which ignores unknown keys): a proxy or a private deployment
    cohere_api_base: str = "https://api.cohere.com/v2"


def finish_reason(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return FINISH_REASONS.get(value, value.lower())


def message_text(message: Payload) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text") or ""
        for part in content or ()
        if isinstance(part, dict) and part.get("type") == "text"
    )


def usage_counts(usage: Any) -> tuple[int | None, int | None]:
    """Input and output tokens: the model's own count, else the billed one."""
    if not isinstance(usage, dict):
        return None, None
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    return counts.get("input_tokens"), counts.get("output_tokens")


def usage_payload(usage: Any) -> Payload:
    prompt, completion = usage_counts(usage)
    total = prompt + completion if prompt is not None and completion is not None else None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class CohereStream(StreamTranslator):
    """v2 chat events -> standard chunks. Tool calls are numbered as they start, so their
    argument deltas (which carry only Cohere's block index) land on the right call."""

    provider: CohereProvider

    def __init__(self, provider: HttpProvider, kind: EndpointType) -> None:
        super().__init__(provider, kind)
        self.id: str | None = None
        self.created = int(time.time())
        self.tool_calls = 0

    def event(self, name: str, data: Any) -> list[Chunk]:
        kind = data.get("type") or name
        delta = data.get("delta") or {}
        message = delta.get("message") or {}
        if kind == "message-start":
            self.id = data.get("id")
            return [self.chat(ChatDelta(role="assistant"))] if self.kind == CHAT else []
        if kind == "content-delta":
            text = (message.get("content") or {}).get("text")
            if not text:
                return []  # thinking deltas and empty pieces
            if self.kind == CHAT:
                return [self.chat(ChatDelta(content=text))]
            return [self.completion(text)]
        if kind in ("tool-call-start", "tool-call-delta") and self.kind == CHAT:
            return [self.tool_call_chunk(kind, message.get("tool_calls") or {})]
        if kind == "message-end":
            if delta.get("error"):
                raise UpstreamUnavailable(f"Cohere stopped the stream: {delta['error']}")
            finish = finish_reason(delta.get("finish_reason"))
            usage = usage_payload(delta.get("usage")) if delta.get("usage") else None
            if self.kind == CHAT:
                return [self.chat(ChatDelta(), finish, usage)]
            return [self.completion(None, finish, usage)]
        return []  # content-start/-end, tool-plan-delta, citations, tool-call-end

    def tool_call_chunk(self, kind: str, call: Payload) -> ChatChunk:
        function = call.get("function") or {}
        if kind == "tool-call-start":
            self.tool_calls += 1
            entry = {
                "index": self.tool_calls - 1,
                "id": call.get("id"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": function.get("arguments") or ""},
            }
        else:
            entry = {
                "index": max(self.tool_calls - 1, 0),
                "id": None,
                "type": None,
                "function": {"name": None, "arguments": function.get("arguments") or ""},
            }
        return self.chat(ChatDelta(tool_calls=[entry]))

    def chat(self, delta: ChatDelta, finish: str | None = None, usage: Payload | None = None) -> ChatChunk:
        return ChatChunk(
            id=self.id,
            created=self.created,
            model=self.provider.model,
            choices=[ChatChunkChoice(index=0, finish_reason=finish, delta=delta)],
            usage=usage,
            provider=self.provider.name,
        )

    def completion(
        self, text: str | None, finish: str | None = None, usage: Payload | None = None
    ) -> CompletionsChunk:
        return CompletionsChunk(
            id=self.id,
            created=self.created,
            model=self.provider.model,
            choices=[CompletionsChunkChoice(index=0, finish_reason=finish, text=text)],
            usage=usage,
        )


class CohereProvider(HttpProvider):
    display_name = "Cohere"
    config_type = CohereConfig
    secret_fields = ("cohere_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    scaling_rules = {CHAT: TEXT_RULES, COMPLETIONS: TEXT_RULES, EMBEDDINGS: EMBEDDING_RULES}
    translator = CohereStream

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: CohereConfig = self.config
        base = config.cohere_api_base.rstrip("/")
        self.chat_url = f"{base}/chat"
        self.embed_url = f"{base}/embed"
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config.cohere_api_key}",
        }

    def prepare(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        # MLflow's checks run on the client's field names, before the scaler renames them
        if kind == EMBEDDINGS:
            if "texts" in payload:
                raise InvalidParameter("Invalid parameter texts. Use input instead.")
        else:
            n = payload.get("n")
            if n is not None and n != 1:
                # v2 generates one answer per request (v1's num_generations is gone)
                raise InvalidParameter(f"Parameter n must be 1 for Cohere {ROUTE_WORD[kind]}, got {n}.")
        if kind == COMPLETIONS:
            for native, ours in (("stop_sequences", "stop"), ("num_generations", "n")):
                if native in payload:
                    raise BadRequest(f"Invalid parameter {native}. Use {ours} instead.")
        return super().prepare(kind, payload, stream)

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        payload.pop("stream", None)
        if kind == EMBEDDINGS:
            texts = payload.pop("input")
            body = {
                "model": self.model,
                "texts": texts if isinstance(texts, list) else [texts],
                # required by embed v3+; retrieval documents are the common case
                "input_type": payload.pop("input_type", "search_document"),
                "embedding_types": ["float"],
                **payload,
            }
            return UpstreamRequest(self.embed_url, self.headers, body)
        if kind == COMPLETIONS:
            messages: list[Payload] = [{"role": "user", "content": payload.pop("prompt")}]
        else:
            messages = [cohere_message(message) for message in payload.pop("messages")]
        body = {"model": self.model, "messages": messages, **payload}
        translate_tools(body)
        if stream:
            body["stream"] = True
        return UpstreamRequest(self.chat_url, self.headers, body)

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        # Cohere's error body is {"message": "..."}
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return UpstreamError(data["message"], status=status)
        return upstream_json_error(status, reason, data)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == EMBEDDINGS:
            return self.embeddings(data)
        message = data["message"]
        text = message_text(message)
        finish = finish_reason(data.get("finish_reason"))
        created = int(time.time())
        if kind == COMPLETIONS:
            return CompletionsResponse(
                id=data.get("id"),
                created=created,
                model=self.model or "",
                choices=[CompletionsChoice(index=0, text=text, finish_reason=finish)],
                usage=usage_payload(data.get("usage")),
            )
        calls = [openai_tool_call(call) for call in message.get("tool_calls") or ()]
        out = ChatMessageOut(
            role="assistant", content=text or (None if calls else ""), tool_calls=calls or None
        )
        return ChatResponse(
            id=data.get("id"),
            created=created,
            model=self.model or "",
            choices=[ChatChoice(index=0, message=out, finish_reason=finish)],
            usage=usage_payload(data.get("usage")),
            provider=self.name,
        )

    def embeddings(self, data: Payload) -> EmbeddingsResponse:
        vectors = data["embeddings"]
        if isinstance(vectors, dict):  # v2 answers by type: {"float": [[...]]}
            vectors = vectors["float"]
        tokens = ((data.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
        return EmbeddingsResponse(
            data=[EmbeddingItem(embedding=vector, index=index) for index, vector in enumerate(vectors)],
            model=self.model or "",
            usage={"prompt_tokens": tokens, "total_tokens": tokens},
        )


def cohere_message(message: Payload) -> Payload:
    out = {key: message[key] for key in MESSAGE_KEYS if message.get(key) is not None}
    calls = out.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {"id": call["id"], "type": call.get("type", "function"), "function": call["function"]}
            for call in calls
        ]
    return out


def translate_tools(body: Payload) -> None:
    """OpenAI's tool_choice and response_format in v2's terms (tools themselves match)."""
    choice = body.pop("tool_choice", None)
    if choice == "required":
        body["tool_choice"] = "REQUIRED"
    elif choice == "none":
        body["tool_choice"] = "NONE"
    elif isinstance(choice, dict):
        # v2 cannot name a tool: offer only that one, and require a call
        name = (choice.get("function") or {}).get("name")
        body["tools"] = [t for t in body.get("tools") or () if (t.get("function") or {}).get("name") == name]
        body["tool_choice"] = "REQUIRED"
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            body["response_format"] = {"type": "json_object", "json_schema": schema}
        else:
            body["response_format"] = {"type": response_format.get("type")}


def openai_tool_call(call: Payload) -> Payload:
    function = call.get("function") or {}
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": function.get("arguments") or "{}"},
    }
